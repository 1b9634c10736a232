"""authorize_payment: hold the money (manual capture), or learn why not.

Each command runs as before: record it, call the provider outside any
transaction with the key `authorize:{payment_id}`, apply the answer. The two
database phases go through coalescers, so concurrent authorizations share a
transaction, load what they need in bulk and flush as executemany.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.coalesce import Coalescer
from payport.db import padded, utcnow
from payport.errors import PayportError
from payport.messaging.envelope import Envelope, Event, target_of
from payport.messaging.models import InboxEntry
from payport.payments import service
from payport.payments.commands import (
    Outcome,
    PaymentsContext,
    answered_from_record,
    inbox_key,
    new_entry,
    open_entry,
    recorded_event,
    reject,
)
from payport.payments.models import Payment
from payport.payments.schemas import AuthorizeCommand, parse_authorize
from payport.payments.states import PaymentStatus
from payport.providers import base
from payport.providers.errors import to_payport_error, with_retries

log = logging.getLogger(__name__)
S = PaymentStatus
_PAYMENTS = cast(Table, Payment.__table__)
_INBOX = cast(Table, InboxEntry.__table__)
_INSERT_PAYMENTS, _INSERT_ENTRIES = insert(_PAYMENTS), insert(_INBOX)
T = TypeVar("T")
R = TypeVar("R")
# Stripe may forget an idempotency key 24 h after its first use; a retry of a payment older
# than this looks for the intent its first attempt made before creating one (with margin).
KEY_WINDOW = timedelta(hours=23)


@dataclass(frozen=True, slots=True)
class _Request:
    envelope: Envelope
    source_ref: str | None


@dataclass(frozen=True, slots=True)
class StartedAuthorization:
    """After the first phase: either a final outcome, or a provider call to make."""

    outcome: Outcome | None
    payment_id: str | None = None
    call: base.AuthorizeRequest | None = None
    command_key: str = ""
    correlation_id: str = ""
    earlier_intent_id: str | None = None  # an intent an earlier attempt recorded
    look_first: bool = False  # older than KEY_WINDOW: the provider may have forgotten the key


@dataclass(frozen=True, slots=True)
class _Answer:
    started: StartedAuthorization
    intent: base.IntentView | None
    error: PayportError | None


async def authorize(ctx: PaymentsContext, envelope: Envelope, source_ref: str | None) -> Outcome:
    # New payments share no rows: on PostgreSQL two start batches may overlap (SQLite has
    # one writer). Settle batches stay one at a time: they update the same balance rows.
    overlap = 1 if ctx.db.is_sqlite else 2
    started = await _coalescer(ctx, "authorize.start", _start_many, concurrency=overlap).submit(
        _Request(envelope, source_ref)
    )
    if started.outcome is not None:
        return started.outcome
    payment_id = started.payment_id or ""
    ctx.authorizing.add(payment_id)
    try:
        intent, error = await _call_provider(ctx, started)
        return await _coalescer(ctx, "authorize.settle", _settle_many).submit(
            _Answer(started, intent, error)
        )
    finally:
        ctx.authorizing.discard(payment_id)


def _coalescer(
    ctx: PaymentsContext,
    name: str,
    run: Callable[[PaymentsContext, Sequence[T]], Awaitable[Sequence[R]]],
    *,
    concurrency: int = 1,
) -> Coalescer[T, R]:
    """One coalescer per context and phase, so concurrent commands share transactions."""
    if name not in ctx.batches:
        ctx.batches[name] = Coalescer(functools.partial(run, ctx), concurrency=concurrency)
    return cast(Coalescer[T, R], ctx.batches[name])


# --- phase 1: record the commands, create the payments -----------------------------------


async def _start_many(
    ctx: PaymentsContext, requests: Sequence[_Request]
) -> list[StartedAuthorization]:
    async with ctx.db.transaction() as session:
        entries = await _entries_by_key(session, [inbox_key(r.envelope) for r in requests])
        commands = [_parse(r.envelope, ctx.settings.default_currency) for r in requests]
        payments = await _payments_for(session, commands, entries.values())
        fresh = _Fresh()
        started = [
            _start_one(session, request, command, entries, payments, fresh)
            for request, command in zip(requests, commands, strict=True)
        ]
        await fresh.insert(session)
        return started


@dataclass(slots=True)
class _Fresh:
    """New payments and their inbox entries, the common case: one executemany per table
    rather than the unit of work's per-object flush (a duplicate order still fails the
    batch on its unique key, as a flush would)."""

    payments: list[Payment] = field(default_factory=list)
    entries: list[InboxEntry] = field(default_factory=list)

    async def insert(self, session: AsyncSession) -> None:
        inserts = ((_INSERT_PAYMENTS, self.payments), (_INSERT_ENTRIES, self.entries))
        for statement, objects in inserts:
            if objects:
                await session.execute(statement, [_set_columns(o) for o in objects])


def _set_columns(obj: Payment | InboxEntry) -> dict[str, Any]:
    """The values given to a new, sessionless object; the rest take their column defaults."""
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def _parse(envelope: Envelope, default_currency: str) -> AuthorizeCommand | PayportError:
    try:
        return parse_authorize(envelope.payload, default_currency)
    except PayportError as error:
        return error


# The hot queries are built once: building one per call, and deriving its cache key,
# cost more CPU than executing it does on SQLAlchemy's side. The values go in as
# expanding parameters (`padded`, so a few list sizes cover every batch).
_ENTRIES_BY_KEY = select(InboxEntry).where(
    InboxEntry.command_key.in_(bindparam("keys", expanding=True))
)
_PAYMENTS_BY_ORDER_OR_ID = select(Payment).where(
    Payment.order_id.in_(bindparam("order_ids", expanding=True))
    | Payment.id.in_(bindparam("ids", expanding=True))
)
_PAYMENTS_TO_SETTLE = (
    select(Payment).where(Payment.id.in_(bindparam("ids", expanding=True))).with_for_update()
)
_WAITING_ENTRIES = (
    select(InboxEntry)
    .where(
        InboxEntry.payment_id.in_(bindparam("ids", expanding=True)),
        InboxEntry.status == "waiting",
    )
    .order_by(InboxEntry.id)
)


async def _entries_by_key(session: AsyncSession, keys: list[str]) -> dict[str, InboxEntry]:
    rows = await session.scalars(_ENTRIES_BY_KEY, {"keys": padded(keys)})
    return {entry.command_key: entry for entry in rows}


@dataclass(slots=True)
class _Known:
    """Payments the batch touches, by order id and by payment id."""

    by_order: dict[str, Payment]
    by_id: dict[str, Payment]

    def add(self, payment: Payment) -> None:
        self.by_order[payment.order_id] = self.by_id[payment.id] = payment


async def _payments_for(
    session: AsyncSession,
    commands: Sequence[AuthorizeCommand | PayportError],
    entries: Iterable[InboxEntry],
) -> _Known:
    order_ids = [c.order_id for c in commands if isinstance(c, AuthorizeCommand)]
    payment_ids = [e.payment_id for e in entries if e.payment_id]
    rows = await session.scalars(
        _PAYMENTS_BY_ORDER_OR_ID, {"order_ids": padded(order_ids), "ids": padded(payment_ids)}
    )
    known = _Known({}, {})
    for payment in rows:
        known.add(payment)
    return known


def _start_one(
    session: AsyncSession,
    request: _Request,
    command: AuthorizeCommand | PayportError,
    entries: dict[str, InboxEntry],
    payments: _Known,
    fresh: _Fresh,
) -> StartedAuthorization:
    envelope, source_ref = request.envelope, request.source_ref
    key = inbox_key(envelope)
    entry = entries.get(key)
    done = answered_from_record(session, entry, source_ref)
    if done is not None:
        return StartedAuthorization(done)
    if entry is not None:  # waiting: resume only an authorization cut short by a crash
        payment = payments.by_id.get(entry.payment_id or "")
        answered = _answer_if_settled(session, entry, payment)
        if answered is not None:
            return StartedAuthorization(answered)
        if payment is None or payment.payment_status is not S.INITIATING:
            return StartedAuthorization(Outcome(None, entry.payment_id))
        return call_for(payment, entry)
    target = target_of(envelope) or "-"
    if isinstance(command, PayportError):
        return StartedAuthorization(reject(session, envelope, target, source_ref, command))
    payment = payments.by_order.get(command.order_id)
    if payment is None:  # a new order: nothing to look at, straight to the provider
        payment = service.new_payment(command, envelope.correlation_id)
        entry = new_entry(envelope, source_ref, payment_id=payment.id, status="waiting")
        payments.add(payment)
        entries[key] = entry
        fresh.payments.append(payment)
        fresh.entries.append(entry)
        return call_for(payment, entry)
    entry = open_entry(session, envelope, source_ref, payment_id=payment.id, status="waiting")
    entries[key] = entry
    settled = service.outcome_for_settled(payment)
    if settled is not None:
        return StartedAuthorization(Outcome(service.answer(session, entry, *settled), payment.id))
    if payment.payment_status is not S.INITIATING:
        return StartedAuthorization(Outcome(None, payment.id))
    return call_for(payment, entry)


def call_for(payment: Payment, entry: InboxEntry) -> StartedAuthorization:
    """The provider call that authorizes `payment` for `entry` (reconcile repeats it)."""
    request = base.AuthorizeRequest(
        amount=payment.money,
        payment_method=payment.payment_method_id or "",
        customer=payment.provider_customer_id,
        description=payment.description,
        return_url=payment.return_url,
        metadata={"payment_id": payment.id, "order_id": payment.order_id},
    )
    return StartedAuthorization(
        None,
        payment.id,
        request,
        entry.command_key,
        entry.correlation_id,
        earlier_intent_id=payment.payment_intent_id,
        look_first=payment.created_at is not None and utcnow() - payment.created_at > KEY_WINDOW,
    )


async def intent_made_before(
    ctx: PaymentsContext, started: StartedAuthorization
) -> base.IntentView | None:
    """The intent an earlier attempt of this authorization made, for a retry that must not
    make a second one. A new payment has none and asks nothing (no round trip)."""
    known, payment_id = started.earlier_intent_id, started.payment_id or ""
    if known:
        return await with_retries(lambda: ctx.provider.retrieve_payment_intent(known))
    if started.look_first:
        return await with_retries(lambda: ctx.provider.find_payment_intent_for_payment(payment_id))
    return None


# --- phase 2: the provider ---------------------------------------------------------------


async def _call_provider(
    ctx: PaymentsContext, started: StartedAuthorization
) -> tuple[base.IntentView | None, PayportError | None]:
    assert started.call is not None
    call = started.call
    try:
        intent = await intent_made_before(ctx, started) or await with_retries(
            lambda: ctx.provider.create_payment_intent(
                call, idempotency_key=f"authorize:{started.payment_id}"
            )
        )
    except base.ProviderError as exc:
        error = to_payport_error(exc)
        log.info("authorize declined payment_id=%s code=%s", started.payment_id, error.code)
        return exc.payment_intent, error
    return intent, None


# --- phase 3: apply the answers ----------------------------------------------------------


async def _settle_many(ctx: PaymentsContext, answers: Sequence[_Answer]) -> list[Outcome]:
    ids = [a.started.payment_id or "" for a in answers]
    async with ctx.db.transaction() as session:
        locked = await session.scalars(_PAYMENTS_TO_SETTLE, {"ids": padded(ids)})
        payments = {payment.id: payment for payment in locked}
        waiting = await _waiting_by_payment(session, ids)
        return [await _settle_one(session, a, payments, waiting) for a in answers]


async def _waiting_by_payment(
    session: AsyncSession, payment_ids: list[str]
) -> dict[str, list[InboxEntry]]:
    rows = await session.scalars(_WAITING_ENTRIES, {"ids": padded(payment_ids)})
    grouped: dict[str, list[InboxEntry]] = defaultdict(list)
    for entry in rows:
        grouped[entry.payment_id or ""].append(entry)
    return grouped


async def _settle_one(
    session: AsyncSession,
    answer: _Answer,
    payments: dict[str, Payment],
    waiting: dict[str, list[InboxEntry]],
) -> Outcome:
    started = answer.started
    payment = payments[started.payment_id or ""]
    pending = waiting[payment.id]
    published: list[Event] = []
    if answer.intent is not None:
        published += await service.apply_intent(session, payment, answer.intent, waiting=pending)
    if answer.error is not None and payment.payment_status is S.INITIATING:
        published += await service.fail_payment(session, payment, answer.error, waiting=pending)
    mine = [e for e in published if e.body["correlation_id"] == started.correlation_id]
    if mine:
        return Outcome(mine[0], payment.id)
    # Settled before us (a webhook won the race) or still waiting for 3-D Secure.
    entry = (await _entries_by_key(session, [started.command_key])).get(started.command_key)
    answered = _answer_if_settled(session, entry, payment)
    return answered or Outcome(recorded_event(entry), payment.id)


def _answer_if_settled(
    session: AsyncSession, entry: InboxEntry | None, payment: Payment | None
) -> Outcome | None:
    """Answer a command still waiting on a payment that has settled.

    Whoever settles a payment answers the entries waiting on it, but an entry committed
    just after that settle read them (its start did not lock the payment) was not among
    them: the command, or a re-sent copy, answers itself here instead of staying unanswered
    until reconcile finds it.
    """
    if entry is None or payment is None or entry.status != "waiting":
        return None
    settled = service.outcome_for_settled(payment)
    if settled is None:
        return None
    return Outcome(service.answer(session, entry, *settled), payment.id)
