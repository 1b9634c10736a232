"""Usage bodies: one event or `{"events": [...]}`; metered prices in major or minor units."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import AliasChoices, Field

from payport.billing.schemas import StrictBody, one_amount_minor
from payport.money import MAX_AMOUNT_MINOR
from payport.usage.models import Aggregation

MAX_BATCH = 1000
_METRIC = r"^[A-Za-z0-9_.:\-]+$"


class UsageEventBody(StrictBody):
    event_id: str = Field(min_length=1, max_length=255)
    subscription_id: str = Field(min_length=1, max_length=64)
    metric: str = Field(
        min_length=1, max_length=64, pattern=_METRIC,
        validation_alias=AliasChoices("metric", "metric_name"),
    )  # fmt: skip
    quantity: int = Field(ge=0, le=MAX_AMOUNT_MINOR, strict=True)
    timestamp: datetime | None = None  # default: the subscription's clock now
    user_id: str | None = Field(default=None, max_length=255)  # accepted, not needed


class UsageBatchBody(StrictBody):
    events: list[UsageEventBody] = Field(min_length=1, max_length=MAX_BATCH)


class MeteredPriceBody(StrictBody):
    metric: str = Field(min_length=1, max_length=64, pattern=_METRIC)
    aggregation: Aggregation = Aggregation.SUM
    unit_amount: Decimal | None = None
    unit_amount_minor: int | None = Field(default=None, ge=0, le=MAX_AMOUNT_MINOR, strict=True)


def unit_minor(body: MeteredPriceBody, currency: str) -> int:
    return one_amount_minor(body.unit_amount, body.unit_amount_minor, currency, name="unit_amount")
