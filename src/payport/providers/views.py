"""Stripe-shaped objects (plain dicts) turned into the port's views.

One converter for both providers: the sandbox stores Stripe's shapes and the
Stripe SDK returns them. Fields Stripe may expand (`latest_charge`,
`destination`…) arrive as an id or as the whole object; the views hold the id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payport.providers.base import (
    ChargeView,
    CheckoutSessionView,
    IntentView,
    RefundView,
    TransferReversalView,
    TransferView,
)


def intent_view(pi: Mapping[str, Any]) -> IntentView:
    error = pi.get("last_payment_error") or {}
    return IntentView(
        id=pi["id"],
        status=pi["status"],
        amount_minor=pi["amount"],
        currency=pi["currency"],
        amount_capturable=pi.get("amount_capturable") or 0,
        amount_received=pi.get("amount_received") or 0,
        latest_charge=expandable_id(pi.get("latest_charge")),
        next_action_url=redirect_url(pi),
        last_error_code=error.get("code"),
        last_decline_code=error.get("decline_code"),
        last_error_message=error.get("message"),
        cancellation_reason=pi.get("cancellation_reason"),
        metadata=dict(pi.get("metadata") or {}),
        raw=pi,
    )


def redirect_url(pi: Mapping[str, Any]) -> str | None:
    """Where the customer authenticates; only `redirect_to_url` actions have a page."""
    action = pi.get("next_action") or {}
    if action.get("type") != "redirect_to_url":
        return None
    url: str | None = (action.get("redirect_to_url") or {}).get("url")
    return url


def refund_view(refund: Mapping[str, Any]) -> RefundView:
    return RefundView(
        id=refund["id"],
        status=refund["status"],
        amount_minor=refund["amount"],
        currency=refund["currency"],
        payment_intent=expandable_id(refund.get("payment_intent")),
        charge=expandable_id(refund.get("charge")),
        reason=refund.get("reason"),
        raw=refund,
    )


def charge_view(charge: Mapping[str, Any]) -> ChargeView:
    captured = bool(charge.get("captured"))
    return ChargeView(
        id=charge["id"],
        amount_minor=charge["amount"],
        currency=charge["currency"],
        captured=captured,
        amount_captured=charge.get("amount_captured") or 0,
        amount_refunded=charge.get("amount_refunded") or 0,
        raw=charge,
    )


def transfer_view(transfer: Mapping[str, Any]) -> TransferView:
    destination = expandable_id(transfer.get("destination"))
    return TransferView(
        id=transfer["id"],
        amount_minor=transfer["amount"],
        currency=transfer["currency"],
        destination=destination or "",
        amount_reversed=transfer.get("amount_reversed") or 0,
        reversed=bool(transfer.get("reversed")),
        transfer_group=transfer.get("transfer_group"),
        source_transaction=expandable_id(transfer.get("source_transaction")),
        raw=transfer,
    )


def reversal_view(reversal: Mapping[str, Any]) -> TransferReversalView:
    return TransferReversalView(
        id=reversal["id"],
        transfer=expandable_id(reversal.get("transfer")) or "",
        amount_minor=reversal["amount"],
        raw=reversal,
    )


def checkout_session_view(session: Mapping[str, Any]) -> CheckoutSessionView:
    details = session.get("customer_details") or {}
    email = session.get("customer_email") or details.get("email")
    return CheckoutSessionView(
        id=session["id"],
        status=session.get("status") or "open",
        payment_status=session.get("payment_status") or "unpaid",
        url=session.get("url"),
        amount_total_minor=session.get("amount_total") or 0,
        currency=session.get("currency") or "",
        payment_intent=expandable_id(session.get("payment_intent")),
        client_reference_id=session.get("client_reference_id"),
        expires_at=int(session.get("expires_at") or 0),
        customer_email=email if isinstance(email, str) else None,
        metadata=dict(session.get("metadata") or {}),
        raw=session,
    )


def expandable_id(value: object) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, Mapping):
        inner = value.get("id")
        return inner if isinstance(inner, str) else None
    return value if isinstance(value, str) else None
