"""Record a verified provider event once, then apply it by asking the provider for the truth.

Most events only confirm what payport already knows (payport changed the
intent itself); those are settled from the stored snapshot without a provider
call. An event that could change a payment is never trusted as-is: the
object is fetched again and its current state applied, so order doesn't matter.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import Integer, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payport.coalesce import Coalescer
from payport.db import Database, dialect_insert, padded, sql_literal, utcnow
from payport.errors import InvalidPayload
from payport.messaging.dispatch import KeyedDispatcher
from payport.payments import repository as payments
from payport.payments import service as payment_service
from payport.payments.models import Payment
from payport.payments.states import PaymentStatus
from payport.providers import base
from payport.providers.errors import with_retries
from payport.webhooks.models import ProviderEvent
from payport.webhooks.money import MONEY_EVENTS, apply_money_event, fetch_truth

log = logging.getLogger(__name__)

# Events whose object is a PaymentIntent: the payment is re-synced from the provider.
INTENT_EVENTS = frozenset(
    {
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.requires_action",
    }
)
MAX_ATTEMPTS = 10
_EVENTS = cast(Table, ProviderEvent.__table__)
# Read straight through the driver (Database.fetch_all): the processor polls it constantly.
_PENDING_EVENTS = (
    select(_EVENTS.c.id, _EVENTS.c.event_type, _EVENTS.c.object_id, _EVENTS.c.body)
    .where(_EVENTS.c.status == sql_literal("pending"))
    .order_by(_EVENTS.c.id)
    .limit(bindparam("limit", type_=Integer))
    .offset(bindparam("offset", type_=Integer))  # SQLite renders LIMIT with an OFFSET
)

# Another domain's own event types (checkout.session.*), applied in the processor's
# transaction: (session, event type, data.object) -> whether anything of theirs was concerned.
EventHandler = Callable[[AsyncSession, str, dict[str, Any]], Awaitable[bool]]


def merge_handlers(*tables: Mapping[str, EventHandler]) -> dict[str, EventHandler]:
    """One handler per event type from several domains: each is asked in turn until one
    says the event concerned it (checkout and billing both act on payment_intent.*)."""
    merged: dict[str, list[EventHandler]] = {}
    for table in tables:
        for event_type, handler in table.items():
            merged.setdefault(event_type, []).append(handler)

    def chain(handlers: list[EventHandler]) -> EventHandler:
        async def handle(session: AsyncSession, event_type: str, obj: dict[str, Any]) -> bool:
            for handler in handlers:
                if await handler(session, event_type, obj):
                    return True
            return False

        return handle

    return {kind: chain(handlers) for kind, handlers in merged.items()}


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    event_id: str
    event_type: str
    object_id: str | None


@dataclass(frozen=True, slots=True)
class _Pending:
    row_id: int
    event_type: str
    object_id: str | None
    object_status: str | None
    obj: dict[str, Any]
    request_key: str | None  # the idempotency key of the API request that caused it


def parse_event(body: bytes) -> ParsedEvent:
    """The minimum every Stripe event has: an id, a type and `data.object`."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidPayload("webhook body is not JSON", field="body") from None
    if not isinstance(document, dict):
        raise InvalidPayload("webhook body must be an event object", field="body")
    event_id, event_type = document.get("id"), document.get("type")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidPayload("event has no id", field="id")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidPayload("event has no type", field="type")
    obj = _data_object(document)
    object_id = obj.get("id")
    return ParsedEvent(event_id, event_type, object_id if isinstance(object_id, str) else None)


def _data_object(document: Any) -> dict[str, Any]:
    data = document.get("data") if isinstance(document, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else {}


@functools.cache
def _insert_new_events(dialect: str) -> Any:
    return (
        dialect_insert(dialect)(_EVENTS)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(_EVENTS.c.event_id)
    )


async def record_events(
    session: AsyncSession, events: Sequence[tuple[ParsedEvent, bytes]]
) -> list[bool]:
    """Insert each event once by its id, all in one statement; True for the new ones.

    A replayed delivery (an id already stored, or twice in this batch) changes nothing.
    """
    now = utcnow()
    rows = {
        parsed.event_id: {
            "event_id": parsed.event_id,
            "event_type": parsed.event_type,
            "object_id": parsed.object_id,
            "body": body.decode(),
            "status": "pending",
            "attempts": 0,
            "received_at": now,
        }
        for parsed, body in reversed(events)  # the first copy wins
    }
    # Rows as executemany parameters, not .values(rows): one statement, built once per
    # dialect and compiled once, instead of a new one for every batch size.
    statement = _insert_new_events(session.get_bind().dialect.name)
    inserted = set((await session.execute(statement, list(rows.values()))).scalars())
    new: list[bool] = []
    for parsed, _body in events:
        new.append(parsed.event_id in inserted)
        inserted.discard(parsed.event_id)
    return new


class EventRecorder:
    """Stores verified events; concurrent deliveries share one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._coalescer: Coalescer[tuple[ParsedEvent, bytes], bool] = Coalescer(self._record_many)

    async def record(self, parsed: ParsedEvent, body: bytes) -> bool:
        """True if the event is new; returns after the commit that holds it."""
        return await self._coalescer.submit((parsed, body))

    async def _record_many(self, events: Sequence[tuple[ParsedEvent, bytes]]) -> list[bool]:
        async with self._db.transaction() as session:
            return await record_events(session, events)


def _pending(row_id: int, event_type: str, object_id: str | None, body: str) -> _Pending:
    document = orjson.loads(body)
    obj = _data_object(document)
    request = document.get("request") if isinstance(document, dict) else None
    key = request.get("idempotency_key") if isinstance(request, dict) else None
    status = obj.get("status")
    return _Pending(
        row_id,
        event_type,
        object_id,
        status if isinstance(status, str) else None,
        obj,
        key if isinstance(key, str) else None,
    )


_MARK_ROWS = (
    update(ProviderEvent)
    .where(ProviderEvent.id.in_(bindparam("ids", expanding=True)))
    .values(status=bindparam("new_status"), processed_at=bindparam("now"))
    .execution_options(synchronize_session=False)  # rows read raw: no objects to update
)


async def _mark_rows(session: AsyncSession, row_ids: Sequence[int], status: str) -> None:
    params = {"ids": padded(row_ids), "new_status": status, "now": utcnow()}
    await session.execute(_MARK_ROWS, params)


_STATES_BY_INTENT = select(Payment.payment_intent_id, Payment.status, Payment.revert_reason).where(
    Payment.payment_intent_id.in_(bindparam("ids", expanding=True))
)


class WebhookProcessor:
    """Applies stored events: confirmations in bulk, possible changes via the provider."""

    def __init__(
        self,
        db: Database,
        provider: base.PaymentProvider,
        *,
        concurrency: int = 64,
        handlers: Mapping[str, EventHandler] | None = None,
        authorizing: AbstractSet[str] = frozenset(),
    ):
        """`authorizing`: payments whose authorize call this process is making (live view)."""
        self._db = db
        self._provider = provider
        self._handlers = dict(handlers or {})
        self._dispatcher = KeyedDispatcher(concurrency)
        self._in_flight: set[int] = set()
        self._authorizing = authorizing
        self._parsed: dict[int, _Pending] = {}

    async def process_pending(self, *, limit: int = 500) -> int:
        """Handle what is pending; returns how many events were taken up."""
        pending = [
            p
            for p in await self._load_pending(limit)
            if p.row_id not in self._in_flight and not self._answered_by_own_call(p)
        ]
        if not pending:
            return 0
        settled, to_fetch = await self._triage(pending)
        if settled:
            await self._mark(settled)
        for event in to_fetch:
            self._in_flight.add(event.row_id)
            await self._dispatcher.submit(event.object_id or "", self._job(event))
        return len(pending)

    def _answered_by_own_call(self, event: _Pending) -> bool:
        """An event about an authorization this process is still applying is left for later.

        Stripe may send it before the API call that caused it has returned; the call's
        answer is about to settle the payment, after which the event only confirms it
        (no provider fetch, no transaction of its own). It stays pending in the database,
        so a crash loses nothing.
        """
        if not self._authorizing or event.event_type not in INTENT_EVENTS:
            return False
        metadata = event.obj.get("metadata")
        payment_id = metadata.get("payment_id") if isinstance(metadata, dict) else None
        return isinstance(payment_id, str) and payment_id in self._authorizing

    async def join(self) -> None:
        await self._dispatcher.join()

    async def _load_pending(self, limit: int) -> list[_Pending]:
        wanted = limit + len(self._in_flight) + len(self._authorizing)
        params = {"limit": wanted, "offset": 0}
        rows = await self._db.fetch_all(_PENDING_EVENTS, params)
        # Events left for an authorization in flight come back on every pass: parse once.
        parsed = self._parsed
        self._parsed = {
            row["id"]: parsed.get(row["id"])
            or _pending(row["id"], row["event_type"], row["object_id"], row["body"])
            for row in rows
        }
        return list(self._parsed.values())

    async def _triage(
        self, pending: Sequence[_Pending]
    ) -> tuple[list[tuple[int, str]], list[_Pending]]:
        """Split into (settled without the provider, needing the provider's truth)."""
        intent_ids = [p.object_id for p in pending if p.event_type in INTENT_EVENTS and p.object_id]
        async with self._db.read() as session:
            rows = (await session.execute(_STATES_BY_INTENT, {"ids": padded(intent_ids)})).all()
        known = {intent_id: (PaymentStatus(status), reason) for intent_id, status, reason in rows}
        settled: list[tuple[int, str]] = []
        to_fetch: list[_Pending] = []
        for event in pending:
            if event.event_type in MONEY_EVENTS:
                to_fetch.append(event)
                continue
            if event.event_type in self._handlers and event.event_type not in INTENT_EVENTS:
                to_fetch.append(event)
                continue
            if event.event_type not in INTENT_EVENTS or not event.object_id:
                settled.append((event.row_id, "ignored"))
                continue
            state = known.get(event.object_id)
            if state is not None and not payment_service.intent_could_change(
                state[0], event.object_status or "", reverting=state[1] is not None
            ):
                settled.append((event.row_id, "processed"))
                continue
            to_fetch.append(event)
        return settled, to_fetch

    async def _mark(self, outcomes: Sequence[tuple[int, str]]) -> None:
        async with self._db.transaction() as session:
            for status in {s for _id, s in outcomes}:
                await _mark_rows(session, [row_id for row_id, s in outcomes if s == status], status)

    def _job(self, event: _Pending) -> Any:
        async def run() -> None:
            try:
                if event.event_type in MONEY_EVENTS:
                    await self._apply_money(event)
                elif event.event_type in INTENT_EVENTS:
                    await self._apply_from_provider(event)
                else:
                    await self._apply_handler(event)
            except Exception as exc:
                log.exception("webhook processing failed event_row=%s", event.row_id)
                await self._retry_later(event.row_id, type(exc).__name__)
            finally:
                self._in_flight.discard(event.row_id)

        return run

    async def _apply_from_provider(self, event: _Pending) -> None:
        intent_id = event.object_id or ""
        intent = await with_retries(lambda: self._provider.retrieve_payment_intent(intent_id))
        async with self._db.transaction() as session:
            payment = await payments.get_by_intent_id(session, intent_id, for_update=True)
            if payment is None and intent.metadata.get("payment_id"):
                payment = await payments.get(
                    session, intent.metadata["payment_id"], for_update=True
                )
            handled = payment is not None
            if payment is not None:
                await payment_service.apply_intent(session, payment, intent)
            elif event.event_type in self._handlers:
                handler = self._handlers[event.event_type]
                handled = await handler(session, event.event_type, dict(intent.raw))
            await _mark_rows(session, [event.row_id], "processed" if handled else "ignored")

    async def _apply_handler(self, event: _Pending) -> None:
        async with self._db.transaction() as session:
            handled = await self._handlers[event.event_type](session, event.event_type, event.obj)
            await _mark_rows(session, [event.row_id], "processed" if handled else "ignored")

    async def _apply_money(self, event: _Pending) -> None:
        truth = await fetch_truth(self._provider, event.event_type, event.object_id)
        async with self._db.transaction() as session:
            applied = await apply_money_event(
                session, event.event_type, event.obj, event.request_key, transfer=truth
            )
            await _mark_rows(session, [event.row_id], "processed" if applied else "ignored")

    async def _retry_later(self, row_id: int, error: str) -> None:
        async with self._db.transaction() as session:
            row = await session.get(ProviderEvent, row_id)
            if row is None:
                return
            row.attempts += 1
            row.error = error
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
