"""Record a verified provider event once, then apply it by asking the provider for the truth."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from payport.db import Database, utcnow
from payport.errors import InvalidPayload
from payport.payments import repository as payments
from payport.payments import service as payment_service
from payport.providers import base
from payport.providers.errors import with_retries
from payport.webhooks.models import ProviderEvent

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


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    event_id: str
    event_type: str
    object_id: str | None


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
    data = document.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    object_id = obj.get("id") if isinstance(obj, dict) else None
    return ParsedEvent(event_id, event_type, object_id if isinstance(object_id, str) else None)


async def record_event(session: AsyncSession, parsed: ParsedEvent, body: bytes) -> bool:
    """Insert once by event id; a replayed delivery changes nothing. True if new."""
    values: dict[str, Any] = {
        "event_id": parsed.event_id,
        "event_type": parsed.event_type,
        "object_id": parsed.object_id,
        "body": body.decode(),
        "status": "pending",
        "attempts": 0,
        "received_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(ProviderEvent).values(**values).on_conflict_do_nothing(index_elements=["event_id"])
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def process_pending(db: Database, provider: base.PaymentProvider, *, limit: int = 100) -> int:
    """Apply stored events in arrival order; returns how many were handled."""
    async with db.read() as session:
        rows = (
            await session.execute(
                select(ProviderEvent.id, ProviderEvent.event_type, ProviderEvent.object_id)
                .where(ProviderEvent.status == "pending")
                .order_by(ProviderEvent.id)
                .limit(limit)
            )
        ).all()
    for row_id, event_type, object_id in rows:
        await _process_one(db, provider, row_id, event_type, object_id)
    return len(rows)


async def _process_one(
    db: Database,
    provider: base.PaymentProvider,
    row_id: int,
    event_type: str,
    object_id: str | None,
) -> None:
    if event_type not in INTENT_EVENTS or object_id is None:
        await _finish(db, row_id, "ignored", None)
        return
    try:
        intent = await with_retries(lambda: provider.retrieve_payment_intent(object_id))
        async with db.transaction() as session:
            payment = await payments.get_by_intent_id(session, object_id, for_update=True)
            if payment is None:
                payment = await _payment_from_metadata(session, intent)
            if payment is not None:
                await payment_service.apply_intent(session, payment, intent)
            await _mark(session, row_id, "processed" if payment else "ignored", None)
    except Exception as exc:
        log.exception("webhook processing failed event_row=%s", row_id)
        await _retry_later(db, row_id, type(exc).__name__)


async def _payment_from_metadata(session: AsyncSession, intent: base.IntentView) -> Any:
    payment_id = intent.metadata.get("payment_id")
    if not payment_id:
        return None
    return await payments.get(session, payment_id, for_update=True)


async def _mark(session: AsyncSession, row_id: int, status: str, error: str | None) -> None:
    await session.execute(
        update(ProviderEvent)
        .where(ProviderEvent.id == row_id)
        .values(status=status, error=error, processed_at=utcnow())
    )


async def _finish(db: Database, row_id: int, status: str, error: str | None) -> None:
    async with db.transaction() as session:
        await _mark(session, row_id, status, error)


async def _retry_later(db: Database, row_id: int, error: str) -> None:
    async with db.transaction() as session:
        row = await session.get(ProviderEvent, row_id)
        if row is None:
            return
        row.attempts += 1
        row.error = error
        if row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
