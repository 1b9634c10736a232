"""The Kafka hot path's cheaper writes keep their guarantees (issue 5's performance work).

Rows written at commit instead of flushed by the ORM are still read back inside
their transaction, kept in order, and gone with a rollback; overlapping batches
never strand a caller; a webhook about an authorization still being applied waits
for it, in the database, and is handled once that is done.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest
from sqlalchemy import select

from payport.coalesce import Coalescer
from payport.db import Database, utcnow
from payport.messaging.models import OutboxEvent
from payport.messaging.outbox import emit
from payport.money import Money
from payport.providers.base import AuthorizeRequest
from payport.providers.sandbox import SandboxProvider
from payport.providers.sandbox.models import (
    SandboxIdempotencyRecord,
    SandboxObject,
    SandboxWebhookDelivery,
)
from payport.providers.sandbox.store import SandboxStore
from payport.webhooks.models import ProviderEvent
from payport.webhooks.service import ParsedEvent, WebhookProcessor, record_events


class Rollback(Exception):
    """Raised inside a transaction to roll it back."""


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


# --- Coalescer(concurrency=…) -------------------------------------------------------------


async def test_a_second_batch_starts_while_the_first_waits_only_when_allowed() -> None:
    assert await _batches_started_while_the_first_waits(concurrency=1) == [["a"]]
    assert await _batches_started_while_the_first_waits(concurrency=2) == [["a"], ["b", "c"]]


async def _batches_started_while_the_first_waits(concurrency: int) -> list[list[str]]:
    gate = asyncio.Event()
    started: list[list[str]] = []

    async def run(items: Sequence[str]) -> list[str]:
        started.append(list(items))
        await gate.wait()
        return [item.upper() for item in items]

    coalescer: Coalescer[str, str] = Coalescer(run, concurrency=concurrency)
    first = asyncio.create_task(coalescer.submit("a"))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(coalescer.submit(item)) for item in ("b", "c")]
    await asyncio.sleep(0.01)
    seen = [list(batch) for batch in started]
    gate.set()
    assert await asyncio.gather(first, *rest) == ["A", "B", "C"]
    return seen


async def test_callers_queueing_as_batches_end_are_never_stranded() -> None:
    rng = random.Random(7)

    async def run(items: Sequence[int]) -> list[int]:
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)
        return [item * 2 for item in items]

    coalescer: Coalescer[int, int] = Coalescer(run, max_batch=4, concurrency=2)

    async def caller(item: int) -> int:
        for _ in range(rng.randrange(5)):
            await asyncio.sleep(0)
        return await coalescer.submit(item)

    results = await asyncio.wait_for(asyncio.gather(*(caller(i) for i in range(500))), 10)
    assert results == [i * 2 for i in range(500)]


# --- sandbox rows written at commit -------------------------------------------------------


def _object(object_id: str, amount: int) -> dict[str, object]:
    return {"id": object_id, "object": "charge", "amount": amount}


async def test_sandbox_objects_added_are_read_and_saved_inside_their_transaction(
    db: Database,
) -> None:
    object_id = f"ch_{random.getrandbits(64):x}"
    async with db.transaction() as session:
        store = SandboxStore(session)
        await store.add(_object(object_id, 100), now=utcnow())
        assert await store.get(object_id, "charge") == _object(object_id, 100)
        assert await store.get(object_id, "refund") is None  # another kind of object
        await store.save(_object(object_id, 250), now=utcnow())
        store.record_idempotency_key(f"key-{object_id}", "f" * 64, 200, {"ok": 1}, now=utcnow())
        await store.enqueue_event(
            {"id": f"evt_{object_id}", "type": "charge.updated"}, now=utcnow()
        )
    async with db.read() as session:
        stored = await SandboxStore(session).get(object_id, "charge")
        record = await session.get(SandboxIdempotencyRecord, f"key-{object_id}")
        deliveries = await session.scalars(
            select(SandboxWebhookDelivery.event_type).where(
                SandboxWebhookDelivery.event_id == f"evt_{object_id}"
            )
        )
        assert stored == _object(object_id, 250)
        assert record is not None and orjson.loads(record.body) == {"ok": 1}
        assert list(deliveries) == ["charge.updated"]


async def test_sandbox_rows_of_a_rolled_back_transaction_are_not_written(db: Database) -> None:
    object_id = f"ch_{random.getrandbits(64):x}"
    with pytest.raises(Rollback):
        await _add_then_roll_back(db, object_id)
    async with db.read() as session:
        assert await session.get(SandboxObject, object_id) is None
        assert await session.get(SandboxIdempotencyRecord, f"key-{object_id}") is None


async def _add_then_roll_back(db: Database, object_id: str) -> None:
    async with db.transaction() as session:
        store = SandboxStore(session)
        await store.add(_object(object_id, 100), now=utcnow())
        store.record_idempotency_key(f"key-{object_id}", "f" * 64, 200, {}, now=utcnow())
        raise Rollback


async def test_saving_an_object_that_was_never_stored_is_refused(db: Database) -> None:
    with pytest.raises(LookupError):
        async with db.transaction() as session:
            await SandboxStore(session).save(_object("ch_never_stored", 1), now=utcnow())


# --- outbox rows written at commit --------------------------------------------------------


async def test_outbox_events_go_in_in_emit_order_and_only_if_the_transaction_commits(
    db: Database,
) -> None:
    key = f"order-{random.getrandbits(64):x}"
    async with db.transaction() as session:
        sent = [
            emit(
                session, f"payment.step{i}", {"order_id": key, "i": i}, correlation_id="c", key=key
            )
            for i in range(3)
        ]
    with pytest.raises(Rollback):
        await _emit_then_roll_back(db, key)
    async with db.read() as session:
        rows = (
            await session.execute(
                select(OutboxEvent.event_id, OutboxEvent.event_type, OutboxEvent.body)
                .where(OutboxEvent.key == key)
                .order_by(OutboxEvent.id)
            )
        ).all()
    assert [row.event_id for row in rows] == [event.event_id for event in sent]
    assert [row.event_type for row in rows] == ["payment.step0", "payment.step1", "payment.step2"]
    assert [orjson.loads(row.body) for row in rows] == [event.body for event in sent]


async def _emit_then_roll_back(db: Database, key: str) -> None:
    async with db.transaction() as session:
        emit(session, "payment.lost", {"order_id": key}, correlation_id="c", key=key)
        raise Rollback


# --- webhooks about an authorization still being applied -----------------------------------


async def test_an_event_for_a_payment_being_authorized_here_waits_then_is_handled(
    db: Database,
) -> None:
    sandbox = SandboxProvider(db, base_url="http://payport.test")
    payment_id = f"pay-{random.getrandbits(64):x}"
    intent = await sandbox.create_payment_intent(
        AuthorizeRequest(Money(2500, "usd"), "pm_card_visa", metadata={"payment_id": payment_id}),
        idempotency_key=f"authorize:{payment_id}",
    )
    async with db.read() as session:
        body = await session.scalar(
            select(SandboxWebhookDelivery.body).where(
                SandboxWebhookDelivery.body.contains(intent.id)
            )
        )
    assert body is not None
    document = orjson.loads(body)
    async with db.transaction() as session:
        parsed = ParsedEvent(document["id"], document["type"], intent.id)
        assert await record_events(session, [(parsed, body.encode())]) == [True]

    authorizing = {payment_id}
    processor = WebhookProcessor(db, sandbox, authorizing=authorizing)
    assert await processor.process_pending() == 0
    assert await _status(db, document["id"]) == "pending"

    authorizing.clear()  # the call's answer was applied (here: no payport payment exists)
    assert await processor.process_pending() == 1
    await processor.join()
    assert await _status(db, document["id"]) == "ignored"


async def _status(db: Database, event_id: str) -> str | None:
    async with db.read() as session:
        return await session.scalar(
            select(ProviderEvent.status).where(ProviderEvent.event_id == event_id)
        )
