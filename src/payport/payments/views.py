"""How a payment is shown: camelCase major units for CampusG, Stripe-like for /api/v1."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from payport.money import major_json_number
from payport.payments.models import Payment


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def legacy_payment(payment: Payment) -> dict[str, Any]:
    """The PAYMENT object of CONTRACT.md (amount in major units, as CampusG expects)."""
    view: dict[str, Any] = {
        "paymentId": payment.id,
        "orderId": payment.order_id,
        "customerId": payment.customer_user_id,
        "runnerId": payment.runner_id,
        "amount": major_json_number(payment.amount_minor, payment.currency),
        "currency": payment.currency,
        "status": payment.status,
        "description": payment.description,
        "paymentIntentId": payment.payment_intent_id,
        "transferId": payment.transfer_id,
        "createdAt": _iso(payment.created_at),
        "updatedAt": _iso(payment.updated_at),
    }
    if payment.next_action_url:
        view["nextActionUrl"] = payment.next_action_url
    return view


def api_payment(payment: Payment) -> dict[str, Any]:
    """payport's own representation: integer minor units, snake_case, Stripe-like."""
    return {
        "id": payment.id,
        "object": "payment",
        "order_id": payment.order_id,
        "status": payment.status,
        "amount": payment.amount_minor,
        "currency": payment.currency,
        "amount_captured": payment.amount_captured_minor,
        "amount_refunded": payment.amount_refunded_minor,
        "platform_fee": payment.fee_minor,
        "transfer_amount": payment.transfer_amount_minor,
        "customer_user_id": payment.customer_user_id,
        "provider_customer_id": payment.provider_customer_id,
        "runner_id": payment.runner_id,
        "runner_connect_account_id": payment.runner_account_id,
        "description": payment.description,
        "payment_intent_id": payment.payment_intent_id,
        "charge_id": payment.charge_id,
        "transfer_id": payment.transfer_id,
        "refund_id": payment.refund_id,
        "transfer_reversal_id": payment.transfer_reversal_id,
        "next_action_url": payment.next_action_url,
        "revert_reason": payment.revert_reason,
        "failure_code": payment.failure_code,
        "failure_message": payment.failure_message,
        "disputed": payment.disputed,
        "created_at": _iso(payment.created_at),
        "updated_at": _iso(payment.updated_at),
    }
