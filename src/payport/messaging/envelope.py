"""The CampusG envelope: `{"type", "correlation_id", "timestamp", "payload"}` in and out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from payport.errors import InvalidPayload
from payport.ids import new_uuid

SOURCE = "payment-service"
COMMAND_TYPES = frozenset({"authorize_payment", "release_payment", "revert_payment"})


@dataclass(frozen=True, slots=True)
class Envelope:
    type: str
    correlation_id: str
    timestamp: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """An outgoing event; `body` is exactly what is published and replayed."""

    event_id: str
    type: str
    key: str | None
    body: dict[str, Any] = field(repr=False)

    def encode(self) -> bytes:
        return orjson.dumps(self.body)


def now_iso() -> str:
    """Seed-style timestamp: ISO 8601 UTC with microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_envelope(raw: bytes | str) -> Envelope:
    """Validate the envelope itself; the payload is validated by the command's handler.

    Raises InvalidPayload naming the field, which a transport turns into a
    dead letter (Kafka) or a 400 (HTTP).
    """
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidPayload("message is not valid JSON", field="body") from None
    return envelope_from_document(document)


def envelope_from_document(document: object) -> Envelope:
    if not isinstance(document, dict):
        raise InvalidPayload("message must be a JSON object", field="body")
    kind = document.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidPayload("`type` is required and must be a string", field="type")
    if kind not in COMMAND_TYPES:
        raise InvalidPayload(f"unknown command type {kind!r}", field="type")
    correlation_id = document.get("correlation_id")
    if correlation_id is None:
        correlation_id = _payload_correlation_id(document.get("payload"))
    if not isinstance(correlation_id, str) or not correlation_id or len(correlation_id) > 255:
        raise InvalidPayload(
            "`correlation_id` is required: a string of at most 255 characters",
            field="correlation_id",
        )
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise InvalidPayload("`payload` must be a JSON object", field="payload")
    timestamp = document.get("timestamp")
    return Envelope(
        type=kind,
        correlation_id=correlation_id,
        timestamp=timestamp if isinstance(timestamp, str) else now_iso(),
        payload=payload,
    )


def _payload_correlation_id(payload: object) -> object:
    """Seed 002 puts correlation_id inside the payload; accept it there too."""
    if isinstance(payload, dict):
        return payload.get("correlation_id")
    return None


def build_event(
    event_type: str,
    payload: dict[str, Any],
    *,
    correlation_id: str,
    key: str | None,
    event_id: str | None = None,
) -> Event:
    event_id = event_id or new_uuid()
    body = {
        "type": event_type,
        "correlation_id": correlation_id,
        "timestamp": now_iso(),
        "payload": payload,
        "source": SOURCE,
        "event_id": event_id,
    }
    return Event(event_id=event_id, type=event_type, key=key, body=body)


def target_of(envelope: Envelope) -> str | None:
    """The ordering key: order id for authorize, payment id for release and revert."""
    field_name = "order_id" if envelope.type == "authorize_payment" else "payment_id"
    value = envelope.payload.get(field_name)
    return value if isinstance(value, str) and value else None
