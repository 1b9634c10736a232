"""What payport can still tell the sender about a command it cannot read."""

from __future__ import annotations

import orjson
import pytest

from payport.errors import InvalidPayload
from payport.messaging.dead_letters import dead_letter_event, traces_of


@pytest.mark.parametrize(
    "raw",
    [b"\x00\xff", b"[1, 2]", b'"text"', orjson.dumps({"type": "x", "payload": {"amount": 1}})],
)
def test_nothing_to_tell_without_an_order_or_payment(raw: bytes) -> None:
    assert traces_of(raw) is None


def test_order_payment_and_correlation_id_are_read_where_present() -> None:
    raw = orjson.dumps(
        {"type": "nope", "correlation_id": "c-1", "payload": {"order_id": "o-1", "x": 1}}
    )
    traces = traces_of(raw)
    assert traces is not None
    assert (traces.correlation_id, traces.order_id, traces.payment_id) == ("c-1", "o-1", None)


def test_the_same_message_always_yields_the_same_event_id() -> None:
    traces = traces_of(orjson.dumps({"payload": {"payment_id": "p-9"}}))
    assert traces is not None
    error = InvalidPayload("`type` is required", field="type")
    first = dead_letter_event(traces, error, "kafka:commands:0:17")
    again = dead_letter_event(traces, error, "kafka:commands:0:17")
    other = dead_letter_event(traces, error, "kafka:commands:0:18")
    assert first.event_id == again.event_id != other.event_id
    assert first.body["type"] == "payment.failed"
    assert first.body["payload"]["error"] == "INVALID_PAYLOAD"
    assert first.body["payload"]["payment_id"] == "p-9"
    assert first.key == "p-9"
