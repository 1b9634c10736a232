"""revert_payment: cancel an uncaptured hold, or reverse the transfer and refund."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.errors import InvalidStatus, NotFound, PayportError
from payport.messaging.envelope import Envelope
from payport.payments import events, repository, service
from payport.payments.commands import (
    Outcome,
    PaymentsContext,
    Snapshot,
    open_entry,
    recorded_event,
    reject,
    snapshot,
    start,
)
from payport.payments.models import Payment
from payport.payments.schemas import parse_revert
from payport.payments.states import PaymentStatus
from payport.providers import base
from payport.providers.errors import to_payport_error, with_retries
from payport.refunds.models import Refund
from payport.refunds.states import RefundStatus

log = logging.getLogger(__name__)
S = PaymentStatus


def cancellation_reason(reason: str | None) -> str:
    return reason if reason in base.CANCELLATION_REASONS else "requested_by_customer"


def refund_reason(reason: str | None) -> str:
    return reason if reason in base.REFUND_REASONS else "requested_by_customer"


async def revert(ctx: PaymentsContext, envelope: Envelope, source_ref: str | None) -> Outcome:
    async with ctx.db.transaction() as session:
        target, entry, done = await start(session, envelope, source_ref)
        if done is not None:
            return done
        try:
            command = parse_revert(envelope.payload)
        except PayportError as error:
            return reject(session, envelope, target, source_ref, error, entry=entry)
        payment = await repository.get(session, command.payment_id, for_update=True)
        if entry is not None and payment is not None and payment.payment_status is S.REVERTED:
            # A webhook finished this revert before a crash let us record it.
            return Outcome(
                service.answer(session, entry, events.REVERTED, events.reverted(payment)),
                payment.id,
            )
        problem = _revert_problem(payment) or await _refund_in_flight(session, payment)
        if problem is not None:
            return reject(
                session, envelope, target, source_ref, problem, payment=payment, entry=entry
            )
        assert payment is not None
        needs_refund = payment.payment_status is S.SUCCEEDED or payment.captured
        payment.revert_reason = (
            refund_reason(command.reason) if needs_refund else cancellation_reason(command.reason)
        )
        entry = entry or open_entry(session, envelope, source_ref, payment_id=payment.id)
        snap = snapshot(payment)
        command_key = entry.command_key
    return await resume_revert(ctx, snap, command_key, needs_refund=needs_refund)


def _revert_problem(payment: Payment | None) -> PayportError | None:
    if payment is None:
        return NotFound("payment not found", field="payment_id")
    if payment.payment_status in (S.INITIATING, S.FAILED, S.REVERTED):
        return InvalidStatus(f"a {payment.status} payment cannot be reverted", field="status")
    return None


async def _refund_in_flight(session: AsyncSession, payment: Payment | None) -> PayportError | None:
    """A refund sent to the provider but not finished shares the transfer and the capture
    with a revert; the revert waits until that refund is processed (it resumes on request)."""
    if payment is None:
        return None
    processing = await session.scalar(
        select(Refund.id)
        .where(Refund.payment_id == payment.id, Refund.status == RefundStatus.PROCESSING.value)
        .limit(1)
    )
    if processing is None:
        return None
    return InvalidStatus(
        f"refund {processing} of this payment is processing; process it before reverting",
        field="status",
    )


async def _undo_with_provider(
    ctx: PaymentsContext, snap: Snapshot, *, needs_refund: bool
) -> dict[str, Any]:
    """Cancel an uncaptured hold, or reverse the runner's transfer and refund the capture."""
    reason = snap.revert_reason or "requested_by_customer"
    if not needs_refund:
        try:
            await with_retries(
                lambda: ctx.provider.cancel_payment_intent(
                    snap.intent_id or "", reason=reason, idempotency_key=f"cancel:{snap.id}"
                )
            )
        except base.ProviderInvalidRequest as exc:
            if exc.payment_intent is None or exc.payment_intent.status != base.PI_CANCELED:
                raise
        return {}
    result: dict[str, Any] = {}
    if snap.transfer_id:
        reversal = await with_retries(
            lambda: ctx.provider.create_transfer_reversal(
                snap.transfer_id or "",
                amount_minor=None,
                idempotency_key=f"reverse_transfer:{snap.id}",
            )
        )
        result["transfer_reversal_id"] = reversal.id
    refund = await with_retries(
        lambda: ctx.provider.create_refund(
            payment_intent=snap.intent_id or "",
            amount_minor=None,
            reason=reason,
            idempotency_key=f"refund:{snap.id}",
            metadata={"payment_id": snap.id},
        )
    )
    result["refund_id"] = refund.id
    result["amount_refunded_minor"] = refund.amount_minor
    return result


async def resume_revert(
    ctx: PaymentsContext, snap: Snapshot, command_key: str, *, needs_refund: bool
) -> Outcome:
    """The provider calls of a revert, each keyed by its cause: also how reconcile finishes
    a revert a crash left half done."""
    error: PayportError | None = None
    result: dict[str, Any] = {}
    try:
        result = await _undo_with_provider(ctx, snap, needs_refund=needs_refund)
    except base.ProviderError as exc:
        error = to_payport_error(exc)
        log.warning("revert failed payment_id=%s code=%s", snap.id, error.code)
    async with ctx.db.transaction() as session:
        payment = await repository.get(session, snap.id, for_update=True)
        entry = await repository.get_inbox_entry(session, command_key)
        assert payment is not None and entry is not None
        if entry.status == "done":  # finished meanwhile: a redelivered copy or reconcile
            return Outcome(recorded_event(entry), snap.id)
        if error is not None:
            payment.revert_reason = None
            event = service.answer(
                session, entry, events.FAILED, events.failed(error, payment=payment)
            )
            return Outcome(event, snap.id)
        payment.refund_id = result.get("refund_id", payment.refund_id)
        payment.transfer_reversal_id = result.get(
            "transfer_reversal_id", payment.transfer_reversal_id
        )
        if payment.payment_status is not S.REVERTED:
            await service.complete_revert(
                session, payment, refunded_minor=result.get("amount_refunded_minor", 0)
            )
        event = service.answer(session, entry, events.REVERTED, events.reverted(payment))
    return Outcome(event, snap.id)
