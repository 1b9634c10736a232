"""Refunds: reserve under the payment's lock, approve, then execute through the provider.

The sum of a payment's reserving refunds (plus what was refunded outside them)
never exceeds what was captured: each request is checked while the payment
row is locked (FOR UPDATE on PostgreSQL; SQLite serializes writers). The
provider calls run outside any transaction, each keyed by the refund: for a
released payment first the reversal of the runner's share
(`reverse_transfer:{refund_id}`, recorded as soon as it is answered), then the
refund itself (`refund:{refund_id}`). Processing again after a crash resumes
with the same keys; an answer that never came (retries exhausted) leaves the
refund `processing` for that. Its ledger entries are caused
`{kind}:{payment_id}:{refund_id}`, so they post once and never collide with a
revert's `{kind}:{payment_id}`. How the refund is shared out: `split.py`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.clock import new_id
from payport.billing.schemas import InvalidRequest
from payport.db import Database, utcnow
from payport.errors import InvalidStatus, NotFound, PayportError
from payport.messaging.outbox import emit
from payport.payments import repository as payments
from payport.payments.models import Payment
from payport.payments.revert import refund_reason
from payport.payments.states import PaymentStatus
from payport.providers import base
from payport.providers.errors import to_payport_error, with_retries
from payport.refunds import split
from payport.refunds.models import Refund
from payport.refunds.schemas import RefundBody, requested_minor
from payport.refunds.states import RESERVING, RefundStatus, check_refund_move
from payport.refunds.views import refund_view

log = logging.getLogger(__name__)
R = RefundStatus
# Refunds already in the payment's refunded total: counted when sent to the provider, so a
# `charge.refunded` webhook that overtakes our own commit finds nothing new to post.
COUNTED = (R.PROCESSING.value, R.SUCCEEDED.value)


async def reserved_minor(session: AsyncSession, payment_id: str) -> int:
    """What this payment's refunds hold: requested, approved, in flight or done."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
            Refund.payment_id == payment_id, Refund.status.in_([s.value for s in RESERVING])
        )
    )
    return int(total or 0)


async def refundable_minor(session: AsyncSession, payment: Payment) -> int:
    """Captured, less this service's refunds and any refund made outside them."""
    ours = await reserved_minor(session, payment.id)
    counted = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
            Refund.payment_id == payment.id, Refund.status.in_(COUNTED)
        )
    )
    outside = payment.amount_refunded_minor - int(counted or 0)
    return payment.amount_captured_minor - ours - max(outside, 0)


def _refund_problem(payment: Payment | None) -> PayportError | None:
    if payment is None:
        return NotFound("payment not found", field="payment_id")
    if payment.payment_status is not PaymentStatus.SUCCEEDED or not payment.captured:
        return InvalidStatus(
            f"only a captured payment can be refunded; this one is {payment.status}",
            field="payment_id",
        )
    if payment.revert_reason is not None:
        return InvalidStatus("a revert of this payment is under way", field="payment_id")
    return None


def _event(session: AsyncSession, event_type: str, refund: Refund, **extra: Any) -> None:
    payload = {"refund": refund_view(refund)} | extra
    emit(session, event_type, payload, correlation_id=refund.id, key=refund.payment_id)


async def request_refund(
    session: AsyncSession, body: RefundBody, *, approval_threshold_minor: int
) -> Refund:
    """Reserve a refund: approved at once up to the threshold, otherwise waiting for approval."""
    payment = await payments.get(session, body.payment_id, for_update=True)
    problem = _refund_problem(payment)
    if problem is not None:
        raise problem
    assert payment is not None
    available = await refundable_minor(session, payment)
    amount = requested_minor(body, payment.currency)
    amount = available if amount is None else amount
    if amount <= 0:
        raise InvalidStatus("nothing is left to refund on this payment", field="amount")
    if amount > available:
        raise InvalidRequest(
            f"at most {available} minor units can still be refunded", field="amount"
        )
    needs_approval = amount > approval_threshold_minor
    refund = Refund(
        id=new_id("rf_"),
        payment_id=payment.id,
        amount_minor=amount,
        currency=payment.currency,
        status=(R.PENDING_APPROVAL if needs_approval else R.APPROVED).value,
        reason=body.reason,
        provider_reason=refund_reason(body.reason),
        requested_by=body.requested_by,
    )
    session.add(refund)
    await session.flush()
    _event(session, "refund.created", refund)
    if needs_approval:
        _event(session, "refund.pending_approval", refund)
    return refund


async def get_refund(session: AsyncSession, refund_id: str, *, for_update: bool = False) -> Refund:
    refund = await session.get(Refund, refund_id, with_for_update=for_update)
    if refund is None:
        raise NotFound(f"refund {refund_id} not found", field="refund_id")
    return refund


async def refunds_of(session: AsyncSession, payment_id: str) -> Sequence[Refund]:
    rows = await session.scalars(
        select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.created_at)
    )
    return list(rows)


def approve(session: AsyncSession, refund: Refund, *, by: str | None, at: datetime) -> None:
    refund.status = check_refund_move(refund.refund_status, R.APPROVED).value
    refund.approved_by, refund.approved_at = by, at
    _event(session, "refund.approved", refund)


def reject(session: AsyncSession, refund: Refund, *, reason: str | None) -> None:
    """Rejected: its reservation is released (RESERVING no longer counts it)."""
    refund.status = check_refund_move(refund.refund_status, R.REJECTED).value
    refund.rejection_reason = reason
    _event(session, "refund.rejected", refund)


async def start_processing(session: AsyncSession, refund: Refund) -> Payment:
    """Approved -> processing (processing again resumes); the payment must still allow it."""
    if refund.refund_status is R.PENDING_APPROVAL:
        raise InvalidStatus("this refund is waiting for approval", field="status")
    payment = await payments.get(session, refund.payment_id, for_update=True)
    problem = _refund_problem(payment)
    if problem is not None:
        raise problem
    assert payment is not None
    if refund.refund_status is not R.PROCESSING:
        refund.status = check_refund_move(refund.refund_status, R.PROCESSING).value
        split.count(payment, refund)  # see COUNTED
    return payment


async def payment_of(session: AsyncSession, refund: Refund) -> Payment:
    """The refund's payment, locked: finishing a refund changes its refunded total."""
    payment = await payments.get(session, refund.payment_id, for_update=True)
    assert payment is not None  # a foreign key
    return payment


async def call_provider(
    provider: base.PaymentProvider, refund: Refund, intent_id: str
) -> base.RefundView:
    return await with_retries(
        lambda: provider.create_refund(
            payment_intent=intent_id,
            amount_minor=refund.amount_minor,
            reason=refund.provider_reason,
            idempotency_key=refund.idempotency_key,
            metadata={"payment_id": refund.payment_id, "refund_id": refund.id},
        )
    )


async def call_reversal(
    provider: base.PaymentProvider, refund: Refund, transfer_id: str
) -> base.TransferReversalView:
    return await with_retries(
        lambda: provider.create_transfer_reversal(
            transfer_id,
            amount_minor=refund.transfer_reversal_minor,
            idempotency_key=refund.reversal_idempotency_key,
        )
    )


async def record_reversal(db: Database, refund_id: str, reversal_id: str) -> Refund:
    """Remember the reversal at once: a refund resumed after a crash does not ask again."""
    async with db.transaction() as session:
        refund = await get_refund(session, refund_id, for_update=True)
        if refund.refund_status is R.PROCESSING and refund.transfer_reversal_id is None:
            refund.transfer_reversal_id = reversal_id
        return refund


def _outcome_unknown(error: base.ProviderError | None) -> bool:
    """Retries ran out without an answer: the provider may have acted, so nothing is undone."""
    return isinstance(error, base.ProviderTransientError)


async def finish(
    session: AsyncSession,
    refund: Refund,
    payment: Payment,
    *,
    result: base.RefundView | None,
    error: base.ProviderError | None,
) -> None:
    """Record the provider's answer once (a second finisher finds it done).

    A reversal that happened is posted even when the refund then failed: the runner's
    share is back in escrow, and a later refund or revert takes that into account.
    """
    if refund.refund_status is not R.PROCESSING or _outcome_unknown(error):
        return
    refund.processed_at = utcnow()
    others = await split.in_flight(session, payment.id, besides=refund.id)
    reversed_ = refund.transfer_reversal_id is not None
    if reversed_:
        split.post_reversal(session, payment, refund, others)
    if result is None:
        assert error is not None
        failure = to_payport_error(error)
        refund.status = check_refund_move(R.PROCESSING, R.FAILED).value
        refund.failure_code, refund.failure_message = failure.code, str(failure)
        split.uncount_refund(payment, refund)  # never reached the customer
        if not reversed_:
            split.uncount_reversal(payment, refund)
        _event(session, "refund.failed", refund)
        return
    refund.status = check_refund_move(R.PROCESSING, R.SUCCEEDED).value
    refund.provider_refund_id = result.id
    split.post_refund(session, payment, refund, others)
    _event(session, "refund.succeeded", refund)


async def _execute(
    db: Database, provider: base.PaymentProvider, refund: Refund, sources: _Sources
) -> tuple[base.RefundView | None, base.ProviderError | None]:
    """The provider calls, outside any transaction: the reversal (unless recorded), then the
    refund; the refund is not sent if the reversal failed."""
    try:
        if refund.transfer_reversal_minor and refund.transfer_reversal_id is None:
            reversal = await call_reversal(provider, refund, sources.transfer_id or "")
            refund = await record_reversal(db, refund.id, reversal.id)
        return await call_provider(provider, refund, sources.intent_id or ""), None
    except base.ProviderError as exc:
        return None, exc


@dataclass(frozen=True, slots=True)
class _Sources:
    """Where the money comes from, read in the first transaction."""

    intent_id: str | None
    transfer_id: str | None


async def process_refund(
    db: Database, provider: base.PaymentProvider, refund_id: str
) -> dict[str, Any]:
    """Approved -> processing -> provider calls (no transaction open) -> succeeded or failed.

    Returns the refund's view; a finished refund is answered as it is, and one left
    processing (a crash, no answer) is resumed with the same keys.
    """
    async with db.transaction() as session:
        refund = await get_refund(session, refund_id, for_update=True)
        if refund.refund_status in (R.SUCCEEDED, R.FAILED):
            return refund_view(refund)
        payment = await start_processing(session, refund)
        sources = _Sources(payment.payment_intent_id, payment.transfer_id)
    result, error = await _execute(db, provider, refund, sources)
    if error is not None:
        log.warning(
            "refund provider call failed refund_id=%s payment_id=%s code=%s",
            refund_id, refund.payment_id, error.code,
        )  # fmt: skip
    async with db.transaction() as session:
        refund = await get_refund(session, refund_id, for_update=True)
        await finish(session, refund, await payment_of(session, refund), result=result, error=error)
        return refund_view(refund)


async def resume_processing(
    db: Database, provider: base.PaymentProvider, *, older_than: timedelta, limit: int = 100
) -> Counter[str]:
    """Finish refunds a crash or a lost answer left `processing`, with their own keys.

    Only those untouched for `older_than`, so a call still in flight is not sent twice at
    once; counted per outcome (`refund_succeeded`, `refund_failed`, `refund_processing`).
    """
    cutoff = utcnow() - older_than
    async with db.read() as session:
        stuck = list(
            await session.scalars(
                select(Refund.id)
                .where(Refund.status == R.PROCESSING.value, Refund.updated_at < cutoff)
                .order_by(Refund.updated_at)
                .limit(limit)
            )
        )
    counts: Counter[str] = Counter()
    for refund_id in stuck:
        try:
            view = await process_refund(db, provider, refund_id)
        except PayportError:
            log.exception("resuming refund failed refund_id=%s", refund_id)
            counts["errors"] += 1
            continue
        counts[f"refund_{view['status']}"] += 1
    return counts
