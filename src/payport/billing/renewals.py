"""The billing engine: renewals at period end, charges off-session, dunning.

Each step is its own unit of work, as in the payments core: a transaction
decides what is due and records the payment attempt; the provider is called
outside any transaction with the attempt's key (`invoice:{invoice_id}:{n}`),
so a crash between call and commit repeats the call harmlessly; a second
transaction applies the answer, with its events and ledger entry.

Time for a subscription is its test clock's frozen time, or the engine's clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing import events, repository
from payport.billing.clock import Clock, SystemClock, get_test_clock, time_of
from payport.billing.dunning import record_paid_out_of_band
from payport.billing.invoices import cycle_key, open_invoice, plan_line
from payport.billing.models import Invoice, PaymentAttempt, Plan, Subscription
from payport.billing.outcomes import PENDING, lock_attempt, settle_attempt
from payport.billing.periods import period_bounds
from payport.billing.plans import get_plan
from payport.billing.schemas import InvalidRequest
from payport.billing.states import INCOMPLETE_EXPIRY_HOURS, InvoiceStatus, SubscriptionStatus
from payport.billing.subscriptions import (
    close_subscription,
    expire_incomplete,
    expiry_of,
    get_subscription,
    move,
    send_trial_notice,
)
from payport.billing.test_clocks import claim_clock, keep_claim, release_clock
from payport.config import Settings
from payport.db import Database
from payport.errors import InvalidStatus, NotFound, ProviderUnavailable
from payport.money import Money
from payport.providers import base
from payport.providers.errors import with_retries
from payport.usage.service import metered_lines

log = logging.getLogger(__name__)
Sub = SubscriptionStatus
Inv = InvoiceStatus
_MAX_STEPS = 10_000  # per call: a runaway loop is a bug, not a workload
# An attempt waiting on a webhook this long (clock time) is asked about at the provider.
RECHECK_AFTER = timedelta(minutes=10)
# 3-D Secure not done by then: the intent is canceled and the attempt fails, as Stripe
# fails an invoice payment whose authentication never came.
ACTION_EXPIRES_AFTER = timedelta(hours=23)


@dataclass(frozen=True, slots=True)
class _Charge:
    """An attempt recorded and ready to send to the provider."""

    attempt_id: int
    key: str
    request: base.OffSessionCharge | base.AuthorizeRequest  # the latter: customer present


@dataclass(frozen=True, slots=True)
class InvoicePayment:
    """How an invoice is to be paid (see PayInvoiceBody)."""

    payment_method_id: str | None = None
    return_url: str | None = None  # the customer is present: 3-D Secure possible
    out_of_band: bool = False


@dataclass(frozen=True, slots=True)
class PayOutcome:
    """What paying did: the attempt it made (none: nothing was charged) and, for 3-D
    Secure, where to send the customer."""

    attempt_id: int | None
    next_action_url: str | None


@dataclass(frozen=True, slots=True)
class _Answer:
    intent: base.IntentView | None
    error: base.ProviderError | None


class BillingEngine:
    def __init__(
        self,
        db: Database,
        provider: base.PaymentProvider,
        settings: Settings,
        *,
        clock: Clock | None = None,
        on_commit: Callable[[], None] = lambda: None,
        concurrency: int = 32,
    ) -> None:
        """`concurrency`: subscriptions settled at once (their provider calls overlap)."""
        self.db = db
        self.provider = provider
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.on_commit = on_commit
        self.concurrency = concurrency
        # Engine-clock attempts asked about lately -> when to ask again (per process).
        self._next_check: dict[int, datetime] = {}

    # --- entry points ----------------------------------------------------------------------

    async def run_due(self, *, limit: int = 100) -> int:
        """The worker's step on the engine's clock: ask the provider about attempts whose webhook
        is overdue, then settle subscriptions that have work due."""
        now = self.clock.now()
        settled = await self.reconcile_waiting(now, clock_id=None, limit=limit)
        settled += await self.resume_interrupted(now, limit=limit)
        async with self.db.read() as session:
            due = (await session.execute(repository.due_subscriptions(now, clock_id=None))).all()
        steps = await self._settle_all([(row[0], row[1]) for row in due[:limit]], now, quiet=True)
        return settled + steps

    async def _settle_all(
        self, due: Sequence[tuple[str, str]], until: datetime, *, quiet: bool = False
    ) -> int:
        """Settle many subscriptions at once, so provider calls overlap (~300 ms each on
        Stripe); one customer's subscriptions go one after another, as they share a balance.
        `quiet`: a provider outage skips the subscription (its attempt stays pending)."""
        by_user: dict[str, list[str]] = defaultdict(list)
        for subscription_id, user_id in due:
            by_user[user_id].append(subscription_id)
        gate = asyncio.Semaphore(self.concurrency)

        async def settle_user(subscription_ids: list[str]) -> int:
            steps = 0
            async with gate:
                for subscription_id in subscription_ids:
                    try:
                        steps += await self.settle(subscription_id, until=until)
                    except ProviderUnavailable:
                        if not quiet:
                            raise
                        log.warning("billing: provider unavailable subscription_id=%s",
                                    subscription_id)  # fmt: skip
            return steps

        return sum(await asyncio.gather(*(settle_user(ids) for ids in by_user.values())))

    async def advance_clock(self, clock_id: str, to: datetime) -> int:
        """Move a test clock to `to`, stopping at every moment something was due on the way,
        so renewals, retries and cancellations happen in order and at their own time."""
        holder = secrets.token_hex(8)
        await claim_clock(self.db, clock_id, to, holder)
        try:
            return await self._advance_claimed(clock_id, to, holder)
        finally:
            await release_clock(self.db, clock_id, holder)

    async def _advance_claimed(self, clock_id: str, to: datetime, holder: str) -> int:
        steps = 0
        for _ in range(_MAX_STEPS):
            moment = await self._next_moment(clock_id, to)
            if moment is None:
                break
            await self._set_clock(clock_id, moment, holder)
            steps += await self.reconcile_waiting(moment, clock_id=clock_id)
            async with self.db.read() as session:
                query = repository.due_subscriptions(moment, clock_id=clock_id)
                due = [(row[0], row[1]) for row in (await session.execute(query)).all()]
            steps += await self._settle_all(due, moment)
        else:
            raise RuntimeError(f"test clock {clock_id} did not settle")
        await self._set_clock(clock_id, to, holder)
        return steps

    async def settle(self, subscription_id: str, *, until: datetime) -> int:
        """Do everything due for one subscription up to `until`, oldest first."""
        for step in range(_MAX_STEPS):
            charge = await self._decide(subscription_id, until)
            if charge is None:
                return step
            if charge is _RENEWED:
                self.on_commit()
                continue
            assert isinstance(charge, _Charge)
            answer = await self._call_provider(charge)
            await self._apply(charge, answer)
        raise RuntimeError(f"subscription {subscription_id} did not settle")

    # --- deciding ----------------------------------------------------------------------------

    async def _decide(self, subscription_id: str, until: datetime) -> _Charge | object | None:
        """One step: resume a pending attempt, renew, or start a due attempt."""
        async with self.db.transaction() as session:
            subscription = await get_subscription(session, subscription_id, for_update=True)
            pending = await repository.pending_attempt(session, subscription_id)
            if pending is not None:
                return await _charge_for(session, subscription, pending)
            invoice = await repository.invoice_due(session, subscription_id, until)
            expires_at = expiry_of(subscription)
            if (
                expires_at is not None
                and expires_at <= until
                and (invoice is None or (invoice.next_payment_attempt or until) > expires_at)
                # A payment whose outcome is still coming keeps it (money may yet arrive).
                and not await repository.is_awaiting(session, subscription_id)
            ):
                await expire_incomplete(session, subscription, at=expires_at)
                return _RENEWED
            notice_at = subscription.trial_notice_at
            if notice_at is not None and notice_at <= until:
                await send_trial_notice(session, subscription)
                return _RENEWED
            renew_at = repository.renewal_due(subscription, until)
            if invoice is not None and (
                renew_at is None or (invoice.next_payment_attempt or until) <= renew_at
            ):
                attempt = start_attempt(
                    session,
                    invoice,
                    payment_method_id=subscription.payment_method_id,
                    provider_customer_id=subscription.provider_customer_id,
                )
                await session.flush()
                return await _charge_for(session, subscription, attempt)
            if renew_at is not None:
                await renew(session, subscription, at=renew_at)
                return _RENEWED
            return None

    async def _next_moment(self, clock_id: str, to: datetime) -> datetime | None:
        async with self.db.read() as session:
            ends = await session.scalar(
                select(func.min(Subscription.current_period_end)).where(
                    Subscription.test_clock_id == clock_id,
                    repository.renews(),
                    Subscription.current_period_end <= to,
                )
            )
            attempts = await session.scalar(
                select(func.min(Invoice.next_payment_attempt))
                .join(Subscription, Subscription.id == Invoice.subscription_id)
                .where(
                    Subscription.test_clock_id == clock_id,
                    Invoice.status == Inv.OPEN.value,
                    Invoice.next_payment_attempt <= to,
                    ~repository.awaiting_attempt(),
                )
            )
            interrupted = await session.scalar(
                select(func.min(PaymentAttempt.attempted_at))
                .join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
                .join(Subscription, Subscription.id == Invoice.subscription_id)
                .where(
                    Subscription.test_clock_id == clock_id,
                    PaymentAttempt.status == "pending",
                    PaymentAttempt.attempted_at <= to,
                )
            )
            first_incomplete = await session.scalar(
                select(func.min(Subscription.started_at)).where(
                    Subscription.test_clock_id == clock_id,
                    Subscription.status == Sub.INCOMPLETE.value,
                    ~repository.subscription_awaiting(),
                )
            )
            notices = await session.scalar(
                select(func.min(Subscription.trial_notice_at)).where(
                    Subscription.test_clock_id == clock_id,
                    Subscription.trial_notice_at <= to,
                )
            )
        expiry = (
            first_incomplete + timedelta(hours=INCOMPLETE_EXPIRY_HOURS)
            if first_incomplete is not None
            else None
        )
        if expiry is not None and expiry > to:
            expiry = None
        checks = await self._next_check_on_clock(clock_id, to)
        moments = [m for m in (ends, attempts, interrupted, expiry, notices, checks) if m]
        return min(moments) if moments else None

    async def _next_check_on_clock(self, clock_id: str, to: datetime) -> datetime | None:
        """When a waiting attempt on the clock is next asked about at the provider: after
        RECHECK_AFTER, and (3-D Secure) once more when it expires; only times still ahead."""
        async with self.db.read() as session:
            now = (await get_test_clock(session, clock_id)).frozen_time
            rows = (await session.execute(repository.waiting_attempts(to, clock_id=clock_id))).all()
        checks = []
        for _, attempted_at, status in rows:
            checks.append(attempted_at + RECHECK_AFTER)
            if status == base.PI_REQUIRES_ACTION:
                checks.append(attempted_at + ACTION_EXPIRES_AFTER)
        ahead = [moment for moment in checks if now < moment <= to]
        return min(ahead) if ahead else None

    async def _set_clock(self, clock_id: str, moment: datetime, holder: str) -> None:
        async with self.db.transaction() as session:
            clock = await keep_claim(session, clock_id, holder)
            if moment > clock.frozen_time:
                clock.frozen_time = moment

    # --- the provider ------------------------------------------------------------------------

    async def _call_provider(self, charge: _Charge) -> _Answer:
        try:
            intent = await with_retries(lambda: self._send(charge))
        except base.ProviderTransientError as exc:
            # Outcome unknown: the attempt stays pending; the same key is sent again, or the
            # provider's webhook for the intent (found by the charge's metadata) settles it.
            raise ProviderUnavailable("payment provider unavailable; will retry") from exc
        except base.ProviderError as exc:
            return _Answer(exc.payment_intent, exc)
        # requires_action / processing: the attempt waits for the webhook (see outcomes).
        return _Answer(intent, None)

    async def _send(self, charge: _Charge) -> base.IntentView:
        if isinstance(charge.request, base.AuthorizeRequest):
            return await self.provider.create_payment_intent(
                charge.request, idempotency_key=charge.key
            )
        return await self.provider.charge_off_session(charge.request, idempotency_key=charge.key)

    async def pay_invoice(self, invoice_id: str, payment: InvoicePayment) -> PayOutcome:
        """Pay an open invoice now (a subscription's or a one-off one): charge a card, by
        default the customer's saved one, through a payment attempt like a renewal's, or
        record it paid out of band. An invoice already paid is left as it is. A card that
        needs 3-D Secure (customer present: `return_url`) leaves the attempt in
        requires_action until the provider's webhook (or a reconcile) says how it ended."""
        charge = await self._start_payment(invoice_id, payment)
        self.on_commit()
        if charge is None:
            return PayOutcome(attempt_id=None, next_action_url=None)
        try:
            answer = await self._call_provider(charge)
        except ProviderUnavailable:
            # Outcome unknown: the attempt stays pending for its webhook or the worker.
            log.warning("billing: provider unavailable invoice_id=%s", invoice_id)
            return PayOutcome(attempt_id=charge.attempt_id, next_action_url=None)
        await self._apply(charge, answer)
        intent = answer.intent
        needs_action = intent is not None and intent.status == base.PI_REQUIRES_ACTION
        url = intent.next_action_url if needs_action and intent is not None else None
        return PayOutcome(attempt_id=charge.attempt_id, next_action_url=url)

    async def _start_payment(self, invoice_id: str, payment: InvoicePayment) -> _Charge | None:
        """Under the invoice's lock (its subscription's first): one payment at a time, so
        calls that race charge once; None when nothing is to be charged."""
        async with self.db.transaction() as session:
            invoice, subscription = await _lock_invoice(session, invoice_id)
            if invoice.invoice_status is Inv.PAID:
                return None
            if invoice.invoice_status is not Inv.OPEN:
                raise InvalidStatus(f"invoice {invoice_id} is {invoice.status}", field="status")
            if await repository.unsettled_attempt(session, invoice.id) is not None:
                raise InvalidStatus("a payment of this invoice is in progress", field="status")
            now = (
                await time_of(session, subscription, self.clock)
                if subscription is not None
                else self.clock.now()
            )
            if payment.out_of_band:
                await record_paid_out_of_band(session, subscription, invoice, at=now)
                return None
            method, customer = await _method_to_charge(
                session, invoice, subscription, payment.payment_method_id
            )
            invoice.next_payment_attempt = now
            attempt = start_attempt(
                session, invoice, payment_method_id=method, provider_customer_id=customer
            )
            attempt.return_url = payment.return_url
            await session.flush()
            return await _charge_for(session, subscription, attempt)

    async def resume_interrupted(self, now: datetime, *, limit: int = 100) -> int:
        """Send again, with their own keys, the calls of one-off invoices' attempts whose
        answer was lost (no subscription's run resumes those); only once RECHECK_AFTER has
        passed, so a call still in flight is not sent twice at once. Returns how many."""
        async with self.db.read() as session:
            query = repository.interrupted_one_off_attempts(now - RECHECK_AFTER, limit=limit)
            attempt_ids = list(await session.scalars(query))
        resumed = 0
        for attempt_id in attempt_ids:
            charge = await self._resume(attempt_id)
            if charge is None:
                continue
            try:
                answer = await self._call_provider(charge)
            except ProviderUnavailable:
                log.warning("billing: provider unavailable attempt_id=%s", attempt_id)
                continue
            await self._apply(charge, answer)
            resumed += 1
        return resumed

    async def _resume(self, attempt_id: int) -> _Charge | None:
        async with self.db.transaction() as session:
            locked = await lock_attempt(session, attempt_id)
            if locked is None or locked[0].status != PENDING:
                return None  # settled meanwhile (its webhook came)
            attempt, _, subscription = locked
            return await _charge_for(session, subscription, attempt)

    async def _apply(self, charge: _Charge, answer: _Answer) -> None:
        async with self.db.transaction() as session:
            await settle_attempt(
                session,
                charge.attempt_id,
                intent=answer.intent,
                error=answer.error,
                settings=self.settings,
            )
        self.on_commit()

    async def reconcile_waiting(
        self, now: datetime, *, clock_id: str | None, limit: int = 100
    ) -> int:
        """The worker's side of a lost webhook: ask the provider about attempts waiting
        longer than RECHECK_AFTER (on one test clock, or the engine's clock); 3-D Secure
        still not done after ACTION_EXPIRES_AFTER fails the attempt so dunning goes on.
        Returns how many settled; an unreachable provider leaves them for the next run."""
        async with self.db.read() as session:
            query = repository.waiting_attempts(now - RECHECK_AFTER, clock_id=clock_id)
            rows = (await session.execute(query)).all()
        if clock_id is None:
            rows = self._not_asked_lately(rows, now)
        settled = 0
        for attempt_id, attempted_at, _ in rows[:limit]:
            expired = attempted_at + ACTION_EXPIRES_AFTER <= now
            try:
                settled += await self.reconcile(attempt_id, give_up=expired)
            except base.ProviderError as exc:
                log.warning("billing: reconcile of attempt %s failed: %s", attempt_id,
                            type(exc).__name__)  # fmt: skip
        return settled

    def _not_asked_lately(self, rows: Sequence[Any], now: datetime) -> list[Any]:
        """Each engine-clock attempt is asked about once per RECHECK_AFTER, not every run."""
        waiting = {row[0] for row in rows}
        self._next_check = {k: v for k, v in self._next_check.items() if k in waiting}
        due = [row for row in rows if self._next_check.get(row[0], now) <= now]
        for row in due:
            self._next_check[row[0]] = now + RECHECK_AFTER
        return due

    async def reconcile(self, attempt_id: int, *, give_up: bool = False) -> bool:
        """Ask the provider how an attempt that waits on a webhook ended (by its intent id),
        for a webhook that never came; True if that settled it. `give_up`: an intent still
        waiting on 3-D Secure is canceled first, so it can no longer charge the customer
        after the attempt counted as failed."""
        async with self.db.read() as session:
            attempt = await session.get(PaymentAttempt, attempt_id)
            intent_id = attempt.payment_intent_id if attempt is not None else None
            key = attempt.idempotency_key if attempt is not None else ""
        if intent_id is None:
            return False
        intent = await with_retries(lambda: self.provider.retrieve_payment_intent(intent_id))
        if give_up and intent.status == base.PI_REQUIRES_ACTION:
            intent = await self._cancel_abandoned(intent_id, f"{key}:abandoned")
        async with self.db.transaction() as session:
            settled = await settle_attempt(
                session, attempt_id, intent=intent, error=None, settings=self.settings
            )
        self.on_commit()
        return settled

    async def _cancel_abandoned(self, intent_id: str, key: str) -> base.IntentView:
        """Cancel an intent whose authentication never came; if it moved on meanwhile (the
        customer finished just now), the provider refuses and its current state is the truth."""
        try:
            return await with_retries(
                lambda: self.provider.cancel_payment_intent(
                    intent_id, reason="abandoned", idempotency_key=key
                )
            )
        except base.ProviderTransientError:
            raise
        except base.ProviderError:
            return await with_retries(lambda: self.provider.retrieve_payment_intent(intent_id))

    # --- dunning -------------------------------------------------------------------------------


_RENEWED = object()


def start_attempt(
    session: AsyncSession,
    invoice: Invoice,
    *,
    payment_method_id: str | None,
    provider_customer_id: str | None,
) -> PaymentAttempt:
    """Record the attempt before calling the provider: its number fixes the idempotency key,
    and what it charges is kept with it, so a resumed call repeats the same request."""
    assert invoice.next_payment_attempt is not None
    invoice.attempt_count += 1
    number = invoice.attempt_count
    attempt = PaymentAttempt(
        invoice_id=invoice.id,
        number=number,
        idempotency_key=f"invoice:{invoice.id}:{number}",
        status="pending",
        amount_minor=invoice.amount_due_minor,
        currency=invoice.currency,
        payment_method_id=payment_method_id,
        provider_customer_id=provider_customer_id,
        attempted_at=invoice.next_payment_attempt,
    )
    invoice.next_payment_attempt = None
    session.add(attempt)
    return attempt


async def _charge_for(
    session: AsyncSession, subscription: Subscription | None, attempt: PaymentAttempt
) -> _Charge:
    invoice = await session.get(Invoice, attempt.invoice_id)
    assert invoice is not None
    metadata = {"invoice_id": invoice.id, "attempt": str(attempt.number)}
    if subscription is not None:
        metadata["subscription_id"] = subscription.id
    # Attempts recorded before the customer was kept on them charge the subscription's.
    customer = attempt.provider_customer_id or (
        subscription.provider_customer_id if subscription is not None else None
    )
    request = base.OffSessionCharge(
        amount=Money(attempt.amount_minor, attempt.currency),
        payment_method=attempt.payment_method_id or "",
        customer=customer,
        description=f"Invoice {invoice.number}",
        metadata=metadata,
    )
    if attempt.return_url is None:
        return _Charge(attempt.id, attempt.idempotency_key, request)
    present = dataclasses.replace(
        request.as_authorize_request(), off_session=False, return_url=attempt.return_url
    )
    return _Charge(attempt.id, attempt.idempotency_key, present)


async def _lock_invoice(
    session: AsyncSession, invoice_id: str
) -> tuple[Invoice, Subscription | None]:
    """An invoice and its subscription (if any), locked in billing's order: subscription first."""
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} not found", field="invoice_id")
    subscription = None
    if invoice.subscription_id is not None:
        subscription = await get_subscription(session, invoice.subscription_id, for_update=True)
    await session.refresh(invoice, with_for_update=True)
    return invoice, subscription


async def _method_to_charge(
    session: AsyncSession,
    invoice: Invoice,
    subscription: Subscription | None,
    requested: str | None,
) -> tuple[str, str | None]:
    """(payment method, provider customer): the one asked for, else the card saved on the
    invoice's subscription, else the customer's newest saved card (what renewals charge)."""
    saved = subscription
    if saved is None or saved.payment_method_id is None:
        saved = await repository.newest_saved_card(session, invoice.user_id) or saved
    method = requested or (saved.payment_method_id if saved is not None else None)
    if method is None:
        raise InvalidRequest("the customer has no saved payment method", field="payment_method")
    return method, saved.provider_customer_id if saved is not None else None


async def renew(session: AsyncSession, subscription: Subscription, *, at: datetime) -> None:
    """Period end: cancel if asked to (its final invoice bills the period's usage), else
    start the next period and invoice it."""
    plan = await get_plan(session, subscription.plan_id)
    if subscription.cancel_at_period_end:
        await close_subscription(session, subscription, plan, at=at)
        return
    ended = (subscription.current_period_start, subscription.current_period_end)
    usage = await metered_lines(session, subscription, ended)  # billed in arrears
    index = subscription.period_index + 1
    period = period_bounds(subscription.billing_cycle_anchor, plan.cycle, index)
    subscription.period_index = index
    subscription.current_period_start, subscription.current_period_end = period
    events.subscription_event(session, events.SUBSCRIPTION_RENEWED, subscription, plan)
    await open_invoice(
        session,
        subscription,
        reason="subscription_cycle",
        currency=plan.currency,
        issued_at=at,
        new_lines=[plan_line(plan, subscription.quantity, period), *usage],
        period=period,
        cycle_key=cycle_key(subscription, index),
        collect=subscription.payment_method_id is not None,
    )
    if subscription.subscription_status is Sub.TRIALING:
        await _end_trial(session, subscription, plan)


async def _end_trial(session: AsyncSession, subscription: Subscription, plan: Plan) -> None:
    """The first paid period began: active once its invoice is paid (nothing due, or a
    charge later); past_due at once when there is no card to charge."""
    invoice = await session.get(Invoice, subscription.latest_invoice_id)
    if invoice is None:
        return
    if invoice.status == Inv.PAID.value:
        target = Sub.ACTIVE
    elif subscription.payment_method_id is None:
        target = Sub.PAST_DUE
    else:
        return
    previous = move(subscription, target)
    events.subscription_event(
        session,
        events.SUBSCRIPTION_UPDATED if target is Sub.ACTIVE else events.SUBSCRIPTION_PAST_DUE,
        subscription,
        plan,
        previous_attributes={"status": previous.value},
    )
