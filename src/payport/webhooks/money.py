"""Events about money that may have moved without payport: refunds, disputes, transfer reversals.

Payport's own refunds and reversals also produce these events; they are
recognised by the idempotency key payport sent (`refund:{payment_id}` …) or by
a revert under way, and change nothing here, since the revert records them.
Everything else is recorded on the payment, keyed so that a replayed or late
event changes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.payments import repository as payments
from payport.payments import service as payment_service
from payport.payments.models import Payment
from payport.payments.states import PaymentStatus
from payport.providers import base
from payport.providers.errors import with_retries

log = logging.getLogger(__name__)

REFUNDED = "charge.refunded"
DISPUTE_CREATED = "charge.dispute.created"
TRANSFER_REVERSED = "transfer.reversed"
MONEY_EVENTS = frozenset({REFUNDED, DISPUTE_CREATED, TRANSFER_REVERSED})

# Keys payport derives from a cause (README: crash-safe provider calls).
PAYPORT_KEY_PREFIXES = (
    "authorize:",
    "capture:",
    "transfer:",
    "cancel:",
    "refund:",
    "reverse_transfer:",
)


def caused_by_payport(request_key: str | None) -> bool:
    """Whether the API request behind an event carried one of payport's idempotency keys."""
    return request_key is not None and request_key.startswith(PAYPORT_KEY_PREFIXES)


def _reverting(payment: Payment) -> bool:
    return payment.revert_reason is not None or payment.payment_status is PaymentStatus.REVERTED


def _text(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) and value else None


def _amount(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    return value if isinstance(value, int) else 0


async def fetch_truth(
    provider: base.PaymentProvider, event_type: str, object_id: str | None
) -> base.TransferView | None:
    """The object as the provider has it now, where order matters (asked before any lock)."""
    if event_type != TRANSFER_REVERSED or object_id is None:
        return None
    return await with_retries(lambda: provider.retrieve_transfer(object_id))


async def apply_money_event(
    session: AsyncSession,
    event_type: str,
    obj: Mapping[str, Any],
    request_key: str | None,
    *,
    transfer: base.TransferView | None = None,
) -> bool:
    """Apply one money event; False when no payment of payport's is concerned."""
    if event_type == REFUNDED:
        return await _apply_refund(session, obj, request_key)
    if event_type == DISPUTE_CREATED:
        return await _apply_dispute(session, obj)
    if event_type == TRANSFER_REVERSED and transfer is not None:
        return await _apply_reversal(session, obj, request_key, transfer)
    return False


async def _payment_for_charge(session: AsyncSession, obj: Mapping[str, Any]) -> Payment | None:
    """The payment behind a charge or a dispute: by intent, then by charge id."""
    intent_id = _text(obj, "payment_intent")
    if intent_id is not None:
        payment = await payments.get_by_intent_id(session, intent_id, for_update=True)
        if payment is not None:
            return payment
    charge_id = _text(obj, "charge") or (
        _text(obj, "id") if obj.get("object") == "charge" else None
    )
    if charge_id is None:
        return None
    query = select(Payment).where(Payment.charge_id == charge_id).with_for_update()
    return (await session.execute(query)).scalars().first()


async def _apply_refund(
    session: AsyncSession, charge: Mapping[str, Any], request_key: str | None
) -> bool:
    payment = await _payment_for_charge(session, charge)
    if payment is None:
        return False
    if caused_by_payport(request_key) or _reverting(payment):
        return True
    total = _amount(charge, "amount_refunded")
    if payment_service.record_outside_refund(session, payment, refunded_total_minor=total):
        log.warning(
            "refund made outside payport payment_id=%s refunded_total=%d", payment.id, total
        )
    return True


async def _apply_dispute(session: AsyncSession, dispute: Mapping[str, Any]) -> bool:
    payment = await _payment_for_charge(session, dispute)
    dispute_id = _text(dispute, "id")
    if payment is None or dispute_id is None:
        return False
    facts = payment_service.DisputeFacts(
        id=dispute_id,
        amount_minor=_amount(dispute, "amount"),
        reason=_text(dispute, "reason"),
        status=_text(dispute, "status"),
    )
    if payment_service.flag_dispute(session, payment, facts):
        log.warning("payment disputed payment_id=%s dispute_id=%s", payment.id, dispute_id)
    return True


async def _payment_for_transfer(
    session: AsyncSession, transfer: Mapping[str, Any]
) -> Payment | None:
    metadata = transfer.get("metadata")
    payment_id = _text(metadata, "payment_id") if isinstance(metadata, Mapping) else None
    if payment_id is not None:
        return await payments.get(session, payment_id, for_update=True)
    transfer_id = _text(transfer, "id")
    if transfer_id is None:
        return None
    query = select(Payment).where(Payment.transfer_id == transfer_id).with_for_update()
    return (await session.execute(query)).scalars().first()


async def _apply_reversal(
    session: AsyncSession,
    obj: Mapping[str, Any],
    request_key: str | None,
    transfer: base.TransferView,
) -> bool:
    """Reversals may arrive in any order: the transfer as fetched now is the truth."""
    payment = await _payment_for_transfer(session, obj)
    if payment is None or payment.transfer_id != transfer.id:
        return False
    if caused_by_payport(request_key) or _reverting(payment):
        return True
    total = transfer.amount_reversed
    if payment_service.record_outside_reversal(session, payment, reversed_total_minor=total):
        log.warning(
            "transfer reversed outside payport payment_id=%s reversed_total=%d", payment.id, total
        )
    return True
