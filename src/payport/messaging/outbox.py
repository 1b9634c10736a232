"""Writing events to the outbox in the caller's transaction; replaying recorded ones."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from payport.messaging.envelope import Event, build_event
from payport.messaging.models import OutboxEvent


def add_event(session: AsyncSession, event: Event) -> Event:
    """Queue `event` for publishing; it leaves only if the caller's transaction commits."""
    session.add(
        OutboxEvent(
            event_id=event.event_id,
            event_type=event.type,
            key=event.key,
            body=orjson.dumps(event.body).decode(),
        )
    )
    return event


def emit(
    session: AsyncSession,
    event_type: str,
    payload: dict[str, Any],
    *,
    correlation_id: str,
    key: str | None,
) -> Event:
    return add_event(
        session, build_event(event_type, payload, correlation_id=correlation_id, key=key)
    )


def replay_event(session: AsyncSession, recorded_body: str) -> Event:
    """Publish a recorded outcome again, byte for byte (same event_id)."""
    body = orjson.loads(recorded_body)
    event = Event(event_id=body["event_id"], type=body["type"], key=_key_of(body), body=body)
    return add_event(session, event)


def _key_of(body: dict[str, Any]) -> str | None:
    payload = body.get("payload") or {}
    key = payload.get("order_id") or payload.get("payment_id")
    return key if isinstance(key, str) else None
