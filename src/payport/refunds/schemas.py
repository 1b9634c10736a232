"""Refund request bodies: `amount` in major units (exact) or `amount_minor`; none is full."""

from __future__ import annotations

from pydantic import Field

from payport.billing.schemas import InvalidRequest, MajorAmount, StrictBody, major_to_minor
from payport.money import MAX_AMOUNT_MINOR


class RefundBody(StrictBody):
    payment_id: str = Field(min_length=1, max_length=36)
    amount: MajorAmount = None
    amount_minor: int | None = Field(default=None, ge=1, le=MAX_AMOUNT_MINOR, strict=True)
    reason: str | None = Field(default=None, max_length=500)
    requested_by: str | None = Field(default=None, max_length=255)


class ApproveBody(StrictBody):
    approved_by: str | None = Field(default=None, max_length=255)


class RejectBody(StrictBody):
    reason: str | None = Field(default=None, max_length=500)
    rejected_by: str | None = Field(default=None, max_length=255)


def requested_minor(body: RefundBody, currency: str) -> int | None:
    """The amount asked for in minor units, or None for everything still refundable."""
    if body.amount is not None and body.amount_minor is not None:
        raise InvalidRequest("give at most one of `amount` and `amount_minor`", field="amount")
    if body.amount_minor is not None:
        return body.amount_minor
    if body.amount is None:
        return None
    value = major_to_minor(body.amount, currency, field="amount")
    if value == 0:
        raise InvalidRequest("must be more than zero", field="amount")
    return value
