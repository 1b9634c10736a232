"""What a command that cannot be read becomes, on any transport.

The raw message is kept for an operator (Kafka: the dead-letter topic; local:
the command row). When it still names an order or a payment, the saga that
sent it is told too, with a `payment.failed` (INVALID_PAYLOAD) whose event id
is derived from where the message came from, so a re-delivered copy yields
the same event rather than a second one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson

from payport.db import Database
from payport.errors import PayportError
from payport.messaging.envelope import Event, build_event
from payport.messaging.outbox import add_event

_EVENT_NAMESPACE = uuid.UUID("6c1f8a52-3f0e-4c55-9d7b-2f5e0b8f4a11")


@dataclass(frozen=True, slots=True)
class Traces:
    """What can still be read from an unreadable command."""

    correlation_id: str
    order_id: str | None
    payment_id: str | None


def traces_of(raw: bytes | str) -> Traces | None:
    """The order or payment a broken command names, if it names one."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    payload = document.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    order_id = _text(payload.get("order_id"))
    payment_id = _text(payload.get("payment_id"))
    if order_id is None and payment_id is None:
        return None
    correlation_id = _text(document.get("correlation_id")) or _text(payload.get("correlation_id"))
    return Traces(correlation_id or "", order_id, payment_id)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= 255 else None


def dead_letter_event(traces: Traces, error: PayportError, source_ref: str) -> Event:
    payload = error.as_event_payload()
    if traces.order_id:
        payload["order_id"] = traces.order_id
    if traces.payment_id:
        payload["payment_id"] = traces.payment_id
    return build_event(
        "payment.failed",
        payload,
        correlation_id=traces.correlation_id,
        key=traces.order_id or traces.payment_id,
        event_id=str(uuid.uuid5(_EVENT_NAMESPACE, source_ref)),
    )


async def tell_sender(
    db: Database, raw: bytes | str, error: PayportError, source_ref: str
) -> Event | None:
    """Publish `payment.failed` for a dead-lettered command that names an order or payment."""
    traces = traces_of(raw)
    if traces is None:
        return None
    event = dead_letter_event(traces, error, source_ref)
    async with db.transaction() as session:
        add_event(session, event)
    return event
