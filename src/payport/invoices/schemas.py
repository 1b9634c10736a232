"""Bodies for one-off invoices: lines in major (`amount`) or minor units (`amount_minor`)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from payport.billing.schemas import InvalidRequest, MajorAmount, StrictBody, major_to_minor
from payport.money import MAX_AMOUNT_MINOR

MAX_LINES = 100


class LineKind(StrEnum):
    ONE_OFF = "one_off"
    TAX = "tax"  # tax is not computed here: the caller sends it as its own line
    DISCOUNT = "discount"


class InvoiceLineBody(StrictBody):
    description: str = Field(min_length=1, max_length=500)
    kind: LineKind = LineKind.ONE_OFF
    quantity: int = Field(default=1, ge=1, le=1_000_000, strict=True)
    amount: MajorAmount = None  # unit amount
    amount_minor: int | None = Field(
        default=None, ge=-MAX_AMOUNT_MINOR, le=MAX_AMOUNT_MINOR, strict=True
    )


class InvoiceBody(StrictBody):
    user_id: str = Field(min_length=1, max_length=255)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    subscription_id: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=2000)
    lines: list[InvoiceLineBody] = Field(min_length=1, max_length=MAX_LINES)
    draft: bool = False  # true: stays a draft until finalized


def unit_amount_minor(line: InvoiceLineBody, currency: str, index: int) -> int:
    """A line's unit amount in minor units; discounts are credits, so never positive."""
    field = f"lines.{index}.amount"
    if (line.amount is None) == (line.amount_minor is None):
        raise InvalidRequest("give exactly one of `amount` and `amount_minor`", field=field)
    if line.amount_minor is not None:
        value = line.amount_minor
    else:
        assert line.amount is not None
        negative = line.amount < 0
        value = major_to_minor(abs(line.amount), currency, field=field)
        value = -value if negative else value
    if line.kind is LineKind.DISCOUNT and value > 0:
        value = -value
    if line.kind is not LineKind.DISCOUNT and value < 0:
        raise InvalidRequest("must not be negative (use kind `discount`)", field=field)
    return value
