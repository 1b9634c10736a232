"""Request bodies for the billing API, parsed exactly, and the errors that name the field.

Bodies are read with `json.loads(parse_float=Decimal)` before pydantic sees
them, so `29.99` arrives as Decimal("29.99"), never as a float.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from payport.billing.periods import BillingCycle
from payport.errors import InvalidPayload
from payport.money import MAX_AMOUNT_MINOR, currency_exponent, is_known_currency

M = TypeVar("M", bound=BaseModel)
_ID_PATTERN = r"^[A-Za-z0-9_.\-]+$"


class InvalidRequest(InvalidPayload):
    """A billing request that cannot be accepted as sent (HTTP 400, naming the field)."""

    http_status = 400


class ProrationBehavior(StrEnum):
    CREATE_PRORATIONS = "create_prorations"  # on the next invoice
    ALWAYS_INVOICE = "always_invoice"  # invoiced and charged at once
    NONE = "none"


def _refuse_booleans(value: object) -> object:
    """JSON `true` is not an amount, though Python counts it as 1."""
    if isinstance(value, bool):
        raise ValueError("must be a number")
    return value


# An optional amount in major units, exact (bodies are parsed with Decimal floats).
MajorAmount = Annotated[Decimal | None, BeforeValidator(_refuse_booleans)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PlanBody(StrictBody):
    plan_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=_ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)
    tier: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=2000)
    price: MajorAmount = None
    price_minor: int | None = Field(default=None, ge=0, le=MAX_AMOUNT_MINOR, strict=True)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    billing_cycle: BillingCycle = BillingCycle.MONTHLY
    trial_days: int = Field(default=0, ge=0, le=730, strict=True)
    features: list[str] | dict[str, Any] = Field(default_factory=list)
    active: bool = True


class SubscriptionBody(StrictBody):
    user_id: str = Field(min_length=1, max_length=255)
    plan_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(default=1, ge=1, le=10_000, strict=True)
    payment_method_id: str | None = Field(default=None, min_length=1, max_length=255)
    customer_id: str | None = Field(default=None, min_length=1, max_length=255)
    trial_days: int | None = Field(default=None, ge=0, le=730, strict=True)
    test_clock: str | None = Field(default=None, min_length=1, max_length=64)


class SubscriptionUpdateBody(StrictBody):
    plan_id: str | None = Field(default=None, min_length=1, max_length=64)
    quantity: int | None = Field(default=None, ge=1, le=10_000, strict=True)
    cancel_at_period_end: bool | None = None
    payment_method_id: str | None = Field(default=None, min_length=1, max_length=255)
    proration_behavior: ProrationBehavior = ProrationBehavior.CREATE_PRORATIONS


class CancelBody(StrictBody):
    at_period_end: bool = False
    prorate: bool = False  # cancel now and credit the unused time to the customer's balance
    # Cancel now: a final invoice bills the period's usage and pending prorations. Stripe's
    # default is false; here true, since no later invoice of the customer would bill them.
    invoice_now: bool = True
    reason: str | None = Field(default=None, max_length=500)


class TestClockBody(StrictBody):
    __test__ = False

    frozen_time: datetime
    name: str | None = Field(default=None, max_length=255)


class AdvanceBody(StrictBody):
    frozen_time: datetime


class PayInvoiceBody(StrictBody):
    """Pay an open invoice now (Stripe's `POST /v1/invoices/{id}/pay`).

    Without `return_url` the card is charged off-session, as a renewal is (a card that
    wants 3-D Secure is refused); with it the customer is present and can authenticate.
    `payment_method` (`payment_method_id` is accepted too) defaults to the customer's saved
    card. `paid_out_of_band`: the customer paid outside payport; nothing is charged.
    """

    payment_method_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        validation_alias=AliasChoices("payment_method", "payment_method_id"),
    )
    return_url: str | None = Field(default=None, min_length=1, max_length=2048)
    paid_out_of_band: bool = Field(default=False, strict=True)


def read_json(raw: bytes, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object with exact decimals; an empty optional body is `{}`."""
    if optional and not raw.strip():
        return {}
    try:
        document = json.loads(raw, parse_float=Decimal)
    except ValueError:
        raise InvalidRequest("body is not valid JSON", field="body") from None
    if not isinstance(document, dict):
        raise InvalidRequest("body must be a JSON object", field="body")
    return document


def parse_body(model: type[M], raw: bytes, *, optional: bool = False) -> M:
    """Validate a body, turning pydantic's first complaint into a 400 naming the field."""
    document = read_json(raw, optional=optional)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidRequest(f"{field}: {first['msg']}", field=field) from None


def requested_currency(requested: str | None, default: str) -> str:
    """A body's `currency`, or the configured default; an unknown code is refused by name."""
    code = (requested or default).lower()
    if not is_known_currency(code):
        raise InvalidRequest(f"unknown currency {requested!r}", field="currency")
    return code


def plan_amount_minor(body: PlanBody, currency: str) -> int:
    """The plan's price in minor units, from exactly one of `price` (major) or `price_minor`."""
    return one_amount_minor(body.price, body.price_minor, currency, name="price")


def one_amount_minor(major: Decimal | None, minor: int | None, currency: str, *, name: str) -> int:
    """Exactly one of `{name}` (major units) and `{name}_minor`, in minor units."""
    if (major is None) == (minor is None):
        raise InvalidRequest(f"give exactly one of `{name}` and `{name}_minor`", field=name)
    if minor is not None:
        return minor
    assert major is not None
    return major_to_minor(major, currency, field=name)


def major_to_minor(amount: Decimal, currency: str, *, field: str) -> int:
    """Exact conversion; more decimals than the currency has is refused, never rounded."""
    exponent = currency_exponent(currency)
    try:
        if not amount.is_finite():
            raise InvalidOperation
        minor = amount.scaleb(exponent)
    except InvalidOperation:
        raise InvalidRequest("must be a finite number", field=field) from None
    if minor != minor.to_integral_value():
        raise InvalidRequest(
            f"{currency} amounts have at most {exponent} decimal places", field=field
        )
    value = int(minor)
    if value < 0:
        raise InvalidRequest("must not be negative", field=field)
    if value > MAX_AMOUNT_MINOR:
        raise InvalidRequest(f"must be at most {MAX_AMOUNT_MINOR} minor units", field=field)
    return value


def as_utc(moment: datetime) -> datetime:
    """A timestamp without a zone is UTC (as in the CampusG envelope)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
