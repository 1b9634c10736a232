"""Reconciliation: ask the provider about every payment left half-way, and heal it.

A crash, a lost command or a lost webhook can leave a payment INITIATING or
REQUIRES_ACTION after the provider has settled it, or a release or revert
half done (captured but not transferred; transfer reversed but not refunded).
An AUTHORIZED payment with no command open is asked about too: its hold may
have been canceled or expired at the provider, or captured outside payport.
Reconcile repeats the provider call with the key of its cause, so the
provider answers from its record and nothing moves twice, then applies the
answer through the same transitions the commands use, which answer any
command still waiting. Running it again finds nothing to do.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from payport.db import utcnow
from payport.errors import PayportError
from payport.messaging.models import InboxEntry
from payport.payments import authorize, release, repository, revert, service
from payport.payments.commands import Outcome, PaymentsContext, snapshot
from payport.payments.models import Payment
from payport.payments.states import PaymentStatus
from payport.providers import base
from payport.providers.errors import to_payport_error, with_retries

log = logging.getLogger(__name__)
S = PaymentStatus

UNSETTLED = (S.INITIATING.value, S.REQUIRES_ACTION.value)
RESUMABLE_COMMANDS = ("release_payment", "revert_payment")
OPEN = ("processing", "waiting")  # inbox states of a command not yet answered
# Counted as healing; "unchanged" and "skipped" are not.
HEALING_ACTIONS = frozenset(
    {
        "authorized",
        "captured",
        "failed",
        "reverted",
        "requires_action",
        "release_completed",
        "release_failed",
        "revert_completed",
        "revert_failed",
        "answered",
        "refund_succeeded",  # refunds a crash left processing (refunds.service.resume_processing)
        "refund_failed",
    }
)

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True, slots=True)
class _Work:
    """One thing to look at: an unsettled payment, a held one, or a command cut short."""

    payment_id: str
    command_key: str | None = None
    command_type: str | None = None
    held: bool = False


@dataclass(frozen=True, slots=True)
class HeldBatch:
    """Which AUTHORIZED payments one run asks about: up to `size` after payment id `after`.

    Holds can be many and each costs a provider call; the worker walks them a batch per
    run, resuming at `Summary.held_next`. The CLI asks about all of them (no batch).
    """

    size: int
    after: str = ""


@dataclass(slots=True)
class Summary:
    """What reconcile did, counted per action; where the next held batch starts."""

    counts: Counter[str]
    held_next: str = ""

    @property
    def healed(self) -> int:
        return sum(n for action, n in self.counts.items() if action in HEALING_ACTIONS)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


async def reconcile(
    ctx: PaymentsContext,
    *,
    older_than: timedelta,
    on_progress: Progress | None = None,
    held: HeldBatch | None = None,
) -> Summary:
    """Heal everything untouched for `older_than` (younger work may still be in flight)."""
    work = await _find_work(ctx, older_than, held)
    counts: Counter[str] = Counter()
    for done, item in enumerate(work, start=1):
        try:
            counts[await _heal(ctx, item)] += 1
        except Exception:
            log.exception("reconcile failed payment_id=%s", item.payment_id)
            counts["errors"] += 1
        if on_progress is not None:
            on_progress(done, len(work))
    summary = Summary(counts, held_next=_held_next(work, held))
    if summary.healed or counts["errors"]:
        log.info(
            "reconcile finished %s", " ".join(f"{k}={v}" for k, v in summary.as_dict().items())
        )
    return summary


def _held_next(work: Sequence[_Work], held: HeldBatch | None) -> str:
    """Where the next batch starts: after this one's last, or over from the start."""
    asked = [item.payment_id for item in work if item.held]
    if held is None or len(asked) < held.size:
        return ""
    return asked[-1]


async def _find_work(
    ctx: PaymentsContext, older_than: timedelta, held_batch: HeldBatch | None
) -> list[_Work]:
    cutoff = utcnow() - older_than
    async with ctx.db.read() as session:
        unsettled = await session.scalars(
            select(Payment.id)
            .where(Payment.status.in_(UNSETTLED), Payment.updated_at < cutoff)
            .order_by(Payment.created_at)
        )
        cut_short = await session.execute(
            select(InboxEntry.payment_id, InboxEntry.command_key, InboxEntry.command_type)
            .where(
                InboxEntry.status == "processing",
                InboxEntry.command_type.in_(RESUMABLE_COMMANDS),
                InboxEntry.payment_id.is_not(None),
                InboxEntry.updated_at < cutoff,
            )
            .order_by(InboxEntry.id)
        )
        answerable = await _waiting_on_settled(session, cutoff)
        held_query = (
            select(Payment.id)
            .where(
                Payment.status == S.AUTHORIZED.value,
                Payment.updated_at < cutoff,
                ~_has_open_command(),
            )
            .order_by(Payment.id)
        )
        if held_batch is not None:
            held_query = held_query.where(Payment.id > held_batch.after).limit(held_batch.size)
        held = await session.scalars(held_query)
        work = [_Work(payment_id) for payment_id in unsettled]
        work += [_Work(pid or "", key, kind) for pid, key, kind in cut_short]
        work += [_Work(pid, key, "authorize_payment") for pid, key in answerable]
        work += [_Work(payment_id, held=True) for payment_id in held]
    return work


def _has_open_command() -> ColumnElement[bool]:
    """A command still running on the payment (or waiting for it): that path settles it."""
    return exists().where(InboxEntry.payment_id == Payment.id, InboxEntry.status.in_(OPEN))


async def _waiting_on_settled(session: AsyncSession, cutoff: datetime) -> Sequence[tuple[str, str]]:
    """Authorize commands still waiting although their payment has settled."""
    rows = await session.execute(
        select(InboxEntry.payment_id, InboxEntry.command_key)
        .join(Payment, Payment.id == InboxEntry.payment_id)
        .where(
            InboxEntry.status == "waiting",
            InboxEntry.command_type == "authorize_payment",
            Payment.status.in_([S.AUTHORIZED.value, S.SUCCEEDED.value, S.FAILED.value]),
            InboxEntry.updated_at < cutoff,
        )
    )
    return [(pid or "", key) for pid, key in rows]


async def _heal(ctx: PaymentsContext, item: _Work) -> str:
    if item.held:
        return await _check_hold(ctx, item.payment_id)
    if item.command_type == "release_payment":
        return await _resume_release(ctx, item)
    if item.command_type == "revert_payment":
        return await _resume_revert(ctx, item)
    if item.command_type == "authorize_payment":
        return await _answer_waiting(ctx, item)
    return await _settle_with_provider(ctx, item.payment_id)


# --- INITIATING / REQUIRES_ACTION: the intent as the provider has it ---------------------------


async def _settle_with_provider(ctx: PaymentsContext, payment_id: str) -> str:
    async with ctx.db.read() as session:
        payment = await repository.get(session, payment_id)
        if payment is None or payment.status not in UNSETTLED:
            return "skipped"
        intent_id = payment.payment_intent_id
        call = None if intent_id else await _authorize_call(session, payment)
    intent, error = await _ask_provider(ctx, payment_id, intent_id, call)
    async with ctx.db.transaction() as session:
        payment = await repository.get(session, payment_id, for_update=True)
        if payment is None:
            return "skipped"
        before = payment.payment_status
        if intent is not None:
            await service.apply_intent(session, payment, intent)
        if error is not None and payment.payment_status is S.INITIATING:
            await service.fail_payment(session, payment, error)
        after = payment.payment_status
    return "unchanged" if after is before else after.value.lower()


async def _authorize_call(
    session: AsyncSession, payment: Payment
) -> authorize.StartedAuthorization | None:
    """The very request authorize sends (same key, same parameters), for an intent never seen:
    a crash before its answer was recorded leaves no intent id to look up. Only while an
    authorize command still waits for it."""
    entries = await repository.waiting_entries(session, payment.id)
    if not entries:
        return None
    # authorize's own builder, so the repeated call matches the first one exactly.
    return authorize.call_for(payment, entries[0])


async def _ask_provider(
    ctx: PaymentsContext,
    payment_id: str,
    intent_id: str | None,
    started: authorize.StartedAuthorization | None,
) -> tuple[base.IntentView | None, PayportError | None]:
    try:
        if intent_id:
            return await with_retries(lambda: ctx.provider.retrieve_payment_intent(intent_id)), None
        if started is None or started.call is None:
            return None, None
        call = started.call
        # past Stripe's idempotency window the key alone would make a second intent
        intent = await authorize.intent_made_before(ctx, started) or await with_retries(
            lambda: ctx.provider.create_payment_intent(
                call, idempotency_key=f"authorize:{payment_id}"
            )
        )
        return intent, None
    except base.ProviderError as exc:
        if isinstance(exc, base.ProviderTransientError):
            raise
        return exc.payment_intent, to_payport_error(exc)


# --- AUTHORIZED with no command open: is the hold still there? --------------------------------


async def _check_hold(ctx: PaymentsContext, payment_id: str) -> str:
    """Apply what the provider did to a hold behind payport's back.

    Canceled or expired: FAILED, the hold released in the ledger and
    `payment.failed` published, as the `payment_intent.canceled` webhook would.
    Captured outside: the capture is recorded and posted; the payment stays
    AUTHORIZED (nothing was paid out), and its release then transfers.
    """
    async with ctx.db.read() as session:
        payment = await repository.get(session, payment_id)
        if payment is None or payment.payment_status is not S.AUTHORIZED:
            return "skipped"
        intent_id = payment.payment_intent_id
    if not intent_id:
        return "skipped"
    intent = await with_retries(lambda: ctx.provider.retrieve_payment_intent(intent_id))
    async with ctx.db.transaction() as session:
        payment = await repository.get(session, payment_id, for_update=True)
        if payment is None or payment.payment_status is not S.AUTHORIZED:
            return "skipped"
        opened = select(InboxEntry.id).where(
            InboxEntry.payment_id == payment_id, InboxEntry.status.in_(OPEN)
        )
        if await session.scalar(opened.limit(1)) is not None:
            return "skipped"  # a command started meanwhile and settles it
        if intent.status == base.PI_SUCCEEDED and not payment.captured:
            service.record_capture(payment, intent)
            log.warning("hold captured outside payport payment_id=%s", payment_id)
            return "captured"
        await service.apply_intent(session, payment, intent)
        after = payment.payment_status
    if after is not S.AUTHORIZED:
        log.warning("hold ended at the provider payment_id=%s status=%s", payment_id, intent.status)
    return "unchanged" if after is S.AUTHORIZED else after.value.lower()


# --- a release or revert cut short ---------------------------------------------------------


async def _resume_release(ctx: PaymentsContext, item: _Work) -> str:
    """Capture (already captured counts) and transfer, each with its cause's key."""
    async with ctx.db.read() as session:
        payment = await repository.get(session, item.payment_id)
        entry = await repository.get_inbox_entry(session, item.command_key or "")
        if payment is None or entry is None or entry.status != "processing":
            return "skipped"
        if payment.payment_status is not S.AUTHORIZED or not payment.runner_account_id:
            return "skipped"
        snap = snapshot(payment)
    outcome = await release.resume_release(ctx, snap, item.command_key or "")
    return _named("release", outcome)


async def _resume_revert(ctx: PaymentsContext, item: _Work) -> str:
    """Cancel, or reverse and refund, each with its cause's key; then record the revert."""
    async with ctx.db.read() as session:
        payment = await repository.get(session, item.payment_id)
        entry = await repository.get_inbox_entry(session, item.command_key or "")
        if payment is None or entry is None or entry.status != "processing":
            return "skipped"
        if payment.revert_reason is None:
            return "skipped"
        needs_refund = payment.payment_status is S.SUCCEEDED or payment.captured
        snap = snapshot(payment)
    outcome = await revert.resume_revert(
        ctx, snap, item.command_key or "", needs_refund=needs_refund
    )
    return _named("revert", outcome)


def _named(command: str, outcome: Outcome) -> str:
    failed = outcome.event is None or outcome.event.type == "payment.failed"
    return f"{command}_failed" if failed else f"{command}_completed"


# --- outcome events still owed -------------------------------------------------------------


async def _answer_waiting(ctx: PaymentsContext, item: _Work) -> str:
    async with ctx.db.transaction() as session:
        payment = await repository.get(session, item.payment_id, for_update=True)
        entry = await repository.get_inbox_entry(session, item.command_key or "")
        if payment is None or entry is None or entry.status != "waiting":
            return "skipped"
        settled = service.outcome_for_settled(payment)
        if settled is None:
            return "skipped"
        service.answer(session, entry, *settled)
    return "answered"
