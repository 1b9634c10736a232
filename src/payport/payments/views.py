"""How a payment is shown: camelCase major units for CampusG, Stripe-like for /api/v1.

Views take a plain row mapping, so the hot read routes can skip the ORM; an
ORM `Payment` is turned into one with `payment_row`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select

from payport.money import major_json_number
from payport.payments.models import Payment

_TABLE = Payment.__table__
BY_ORDER_ID = select(_TABLE).where(_TABLE.c.order_id == bindparam("order_id"))
BY_ID = select(_TABLE).where(_TABLE.c.id == bindparam("payment_id"))

Row = Mapping[str, Any]


def payment_row(payment: Payment) -> dict[str, Any]:
    return {column.key: getattr(payment, column.key) for column in _TABLE.columns}


def iso_utc(value: datetime | str) -> str:
    """ISO 8601 UTC with microseconds, from a datetime or SQLite's stored text."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def legacy_payment(row: Row) -> dict[str, Any]:
    """The PAYMENT object of CONTRACT.md (amount in major units, as CampusG expects)."""
    view: dict[str, Any] = {
        "paymentId": row["id"],
        "orderId": row["order_id"],
        "customerId": row["customer_user_id"],
        "runnerId": row["runner_id"],
        "amount": major_json_number(row["amount_minor"], row["currency"]),
        "currency": row["currency"],
        "status": row["status"],
        "description": row["description"],
        "paymentIntentId": row["payment_intent_id"],
        "transferId": row["transfer_id"],
        "createdAt": iso_utc(row["created_at"]),
        "updatedAt": iso_utc(row["updated_at"]),
    }
    if row["next_action_url"]:
        view["nextActionUrl"] = row["next_action_url"]
    return view


def api_payment(row: Row) -> dict[str, Any]:
    """payport's own representation: integer minor units, snake_case, Stripe-like."""
    return {
        "id": row["id"],
        "object": "payment",
        "order_id": row["order_id"],
        "status": row["status"],
        "amount": row["amount_minor"],
        "currency": row["currency"],
        "amount_captured": row["amount_captured_minor"],
        "amount_refunded": row["amount_refunded_minor"],
        "platform_fee": row["fee_minor"],
        "transfer_amount": row["transfer_amount_minor"],
        "customer_user_id": row["customer_user_id"],
        "provider_customer_id": row["provider_customer_id"],
        "runner_id": row["runner_id"],
        "runner_connect_account_id": row["runner_account_id"],
        "description": row["description"],
        "payment_intent_id": row["payment_intent_id"],
        "charge_id": row["charge_id"],
        "transfer_id": row["transfer_id"],
        "refund_id": row["refund_id"],
        "transfer_reversal_id": row["transfer_reversal_id"],
        "next_action_url": row["next_action_url"],
        "revert_reason": row["revert_reason"],
        "failure_code": row["failure_code"],
        "failure_message": row["failure_message"],
        "disputed": bool(row["disputed"]),
        "created_at": iso_utc(row["created_at"]),
        "updated_at": iso_utc(row["updated_at"]),
    }
