"""Seed 004's request and response shapes (camelCase, amounts in major units)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

from payport.checkout.errors import OrderIdRequired
from payport.checkout.models import CheckoutPayment
from payport.money import major_json_number


class SessionCreated(BaseModel):
    checkoutUrl: str  # noqa: N815 - the seed's field names
    sessionId: str  # noqa: N815


class PaymentStatusView(BaseModel):
    orderId: str  # noqa: N815
    status: str
    amount: float | int
    currency: str
    createdAt: str  # noqa: N815


def order_id_from_body(body: bytes) -> str:
    """`{"orderId": "…"}`; anything else is seed 004's 400 `orderId is required`."""
    try:
        document: Any = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise OrderIdRequired() from None
    value = document.get("orderId") if isinstance(document, dict) else None
    if value is None or value == "":
        raise OrderIdRequired()
    if not isinstance(value, str) or len(value) > 255 or not value.strip():
        raise OrderIdRequired("orderId must be a non-empty string of at most 255 characters")
    return value


def payment_status_view(payment: CheckoutPayment) -> PaymentStatusView:
    created = payment.created_at
    return PaymentStatusView(
        orderId=payment.order_id,
        status=payment.status,
        amount=major_json_number(payment.amount_minor, payment.currency),
        currency=payment.currency,
        createdAt=created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z",
    )
