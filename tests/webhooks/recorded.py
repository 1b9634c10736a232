"""Stripe-shaped events the sandbox never sends, as Stripe documents and delivers them.

Disputes come from the bank, and a dashboard user's actions carry no
idempotency key of payport's (`request.id` null for Stripe-initiated events).
"""

from __future__ import annotations

import time
from typing import Any

from payport.providers.base import STRIPE_API_VERSION


def event(event_type: str, obj: dict[str, Any], *, event_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "account": None,
        "api_version": STRIPE_API_VERSION,
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def dispute_created(
    *,
    event_id: str,
    dispute_id: str,
    charge_id: str | None,
    intent_id: str | None,
    amount: int,
    reason: str = "fraudulent",
) -> dict[str, Any]:
    now = int(time.time())
    dispute = {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge_id,
        "created": now,
        "currency": "usd",
        "evidence": {"customer_name": None, "uncategorized_text": None},
        "evidence_details": {
            "due_by": now + 7 * 86_400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": intent_id,
        "reason": reason,
        "status": "needs_response",
    }
    return event("charge.dispute.created", dispute, event_id=event_id)


def transfer_reversed(
    transfer: dict[str, Any], *, event_id: str, amount_reversed: int
) -> dict[str, Any]:
    """A transfer.reversed as it might arrive late: an older snapshot of the transfer."""
    snapshot = transfer | {"amount_reversed": amount_reversed, "reversed": False}
    return event("transfer.reversed", snapshot, event_id=event_id)


def charge_refunded(
    charge: dict[str, Any], *, event_id: str, amount_refunded: int
) -> dict[str, Any]:
    snapshot = charge | {"amount_refunded": amount_refunded, "refunded": False}
    return event("charge.refunded", snapshot, event_id=event_id)
