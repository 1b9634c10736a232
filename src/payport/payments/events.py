"""Payloads of the events CONTRACT.md defines, built from a payment."""

from __future__ import annotations

from typing import Any

from payport.errors import PayportError
from payport.payments.models import Payment

AUTHORIZED = "payment.authorized"
FAILED = "payment.failed"
RELEASED = "payment.released"
REVERTED = "payment.reverted"
CAPTURED = "payment.captured"
DISPUTED = "payment.disputed"


def authorized(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "payment_intent_id": payment.payment_intent_id,
        "status": payment.status,
        "amount": payment.amount_minor,
        "currency": payment.currency,
    }


def failed(
    error: PayportError, *, payment: Payment | None = None, order_id: str | None = None
) -> dict[str, Any]:
    payload = error.as_event_payload()
    if payment is not None:
        payload["payment_id"] = payment.id
        payload["order_id"] = payment.order_id
    elif order_id is not None:
        payload["order_id"] = order_id
    return payload


def released(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "runner_id": payment.runner_id,
        "amount": payment.amount_captured_minor,
        "currency": payment.currency,
        "platform_fee": payment.fee_minor,
        "transfer_amount": payment.transfer_amount_minor,
        "transfer_id": payment.transfer_id,
        "status": payment.status,
    }


def reverted(payment: Payment) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "status": payment.status,
        "reason": payment.revert_reason,
    }
    if payment.refund_id:
        payload["refund_id"] = payment.refund_id
    if payment.transfer_reversal_id:
        payload["transfer_reversal_id"] = payment.transfer_reversal_id
    return payload


def captured(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "amount": payment.amount_captured_minor,
        "currency": payment.currency,
        "status": payment.status,
    }


def disputed(
    payment: Payment, *, amount_minor: int, reason: str | None, dispute_status: str | None
) -> dict[str, Any]:
    return {
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "dispute_id": payment.dispute_id,
        "amount": amount_minor,
        "reason": reason,
        "status": dispute_status,
    }
