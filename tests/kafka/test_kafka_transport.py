"""Kafka-only behaviour: dead letters, duplicates, per-key order, groups, broker outages.

Everything runs against a real Tansu broker and PostgreSQL; commands are put
on the topic as raw bytes, the way other services' producers do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from bench.broker import TansuBroker

import payport.messaging.kafka  # noqa: F401  (installs the InitProducerId compatibility)
from payport.messaging.kafka import KafkaCommandBus
from tests.harness import Harness, Stack, nested_authorize
from tests.provider_truth import by_payment

RUNNER = {"runner_id": "runner_bob", "runner_connect_account_id": "acct_bob"}


def envelope(kind: str, payload: dict[str, Any], correlation_id: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "type": kind,
            "correlation_id": correlation_id or str(uuid.uuid4()),
            "timestamp": "2025-03-31T10:15:30.123456",
            "payload": payload,
        }
    )


class RawProducer:
    """Another service's producer: raw bytes onto payport's command topic."""

    def __init__(self, harness: Harness) -> None:
        self._harness = harness
        self._producer: AIOKafkaProducer | None = None

    async def send(self, value: bytes, key: str | None = None) -> None:
        settings = self._harness.runtime.settings
        if self._producer is None:
            await self._harness.runtime.transport.kafka.producer()  # type: ignore[union-attr]
            self._producer = AIOKafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap_servers, acks="all"
            )
            await self._producer.start()
        sent = await self._producer.send_and_wait(
            settings.commands_topic, value=value, key=key.encode() if key else None
        )
        bus = self._harness.runtime.bus
        assert isinstance(bus, KafkaCommandBus)
        bus.note_produced(sent.topic_partition, sent.offset)

    async def aclose(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


@pytest.fixture
def kafka_stack(postgres_url: str, kafka_broker: TansuBroker) -> Stack:
    return Stack.on_kafka(postgres_url, kafka_broker.bootstrap, partitions=4)


@pytest.fixture
async def kafka(kafka_stack: Stack) -> AsyncIterator[Harness]:
    async with kafka_stack.started() as harness:
        yield harness


@pytest.fixture
async def raw(kafka: Harness) -> AsyncIterator[RawProducer]:
    producer = RawProducer(kafka)
    yield producer
    await producer.aclose()


async def read_topic(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=10
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        for _ in range(200):
            if len(records) >= count:
                break
            for batch in (await consumer.getmany(timeout_ms=50)).values():
                records += batch
        return records
    finally:
        await consumer.stop()


def by_correlation(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = defaultdict(set)
    for event in events:
        grouped[event["correlation_id"]].add(event["event_id"])
    return grouped


async def test_poison_messages_are_dead_lettered_and_never_block_the_partition(
    kafka: Harness, raw: RawProducer
) -> None:
    settings = kafka.runtime.settings
    poison = [
        (b"\x00\xffnot json at all", "order-p"),
        (orjson.dumps({"correlation_id": "c-notype", "payload": {"order_id": "order-p"}}), None),
        (envelope("pay_twice", {"order_id": "order-unknown"}, "c-unknown"), "order-unknown"),
        (envelope("authorize_payment", {"order_id": "order-bad", "amount": "x"}, "c-bad"), None),
    ]
    good = []
    for i, (value, key) in enumerate(poison):
        await raw.send(value, key=key or "order-p")
        cid = f"good-{i}"
        await raw.send(
            envelope("authorize_payment", nested_authorize(f"order-good-{i}"), cid),
            key=f"order-good-{i}",
        )
        good.append(cid)
    await kafka.drain()

    for cid in good:
        assert (await kafka.outcome(cid))["type"] == "payment.authorized"
    dead = await read_topic(settings.kafka_bootstrap_servers, settings.dlq_topic, len(poison))
    assert sorted(r.value for r in dead) == sorted(value for value, _ in poison)
    for record in dead:
        headers = dict(record.headers)
        assert headers["payport.dlq.reason"]
        assert headers["payport.dlq.original.value"] == record.value
    failed = {
        e["correlation_id"]: e["payload"]
        for e in await kafka.all_events()
        if e["type"] == "payment.failed"
    }
    assert failed["c-unknown"]["error"] == "INVALID_PAYLOAD"
    assert failed["c-unknown"]["order_id"] == "order-unknown"
    assert failed["c-bad"]["error"] in {"INVALID_PAYLOAD", "INVALID_AMOUNT"}
    assert "c-notype" not in failed or failed["c-notype"]["order_id"] == "order-p"


async def test_a_command_sent_three_times_has_one_effect_and_one_event_id(
    kafka: Harness, raw: RawProducer
) -> None:
    body = envelope("authorize_payment", nested_authorize("order-thrice"), "c-thrice")
    for _ in range(3):
        await raw.send(body, key="order-thrice")
    await kafka.drain()
    events = [e for e in await kafka.all_events() if e["correlation_id"] == "c-thrice"]
    assert {e["type"] for e in events} == {"payment.authorized"}
    assert len({e["event_id"] for e in events}) == 1
    intents = await by_payment(kafka.runtime, "payment_intent")
    assert [len(v) for v in intents.values()] == [1]


async def test_commands_for_one_payment_run_in_arrival_order(
    kafka: Harness, raw: RawProducer
) -> None:
    orders = [f"order-seq-{i}" for i in range(12)]
    for order in orders:
        await raw.send(
            envelope("authorize_payment", nested_authorize(order), f"auth-{order}"), key=order
        )
    await kafka.drain()
    payment_ids = {
        order: (await kafka.outcome(f"auth-{order}"))["payload"]["payment_id"] for order in orders
    }
    # Half get release-then-revert, half revert-then-release, back to back on one key.
    for i, order in enumerate(orders):
        pid = payment_ids[order]
        first, second = ("release", "revert") if i % 2 == 0 else ("revert", "release")
        for kind in (first, second):
            payload = {"payment_id": pid, **(RUNNER if kind == "release" else {})}
            await raw.send(envelope(f"{kind}_payment", payload, f"{kind}-{order}"), key=pid)
    await kafka.drain()
    for i, order in enumerate(orders):
        released = await kafka.outcome(f"release-{order}")
        reverted = await kafka.outcome(f"revert-{order}")
        if i % 2 == 0:
            assert released["type"] == "payment.released"
            assert reverted["type"] == "payment.reverted"  # refunded after the release
        else:
            assert reverted["type"] == "payment.reverted"
            assert released["type"] == "payment.failed"
            assert released["payload"]["error"] == "INVALID_STATUS"


async def test_offsets_are_committed_only_up_to_finished_commands(kafka: Harness) -> None:
    cids = [
        await kafka.command("authorize_payment", nested_authorize(f"order-commit-{i}"))
        for i in range(20)
    ]
    await kafka.drain()
    for cid in cids:
        assert (await kafka.outcome(cid))["type"] == "payment.authorized"
    settings = kafka.runtime.settings
    probe = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.consumer_group
    )
    await probe.start()
    try:
        bus = kafka.runtime.bus
        assert isinstance(bus, KafkaCommandBus)
        for partition, last in bus.produced.items():
            assert await probe.committed(partition) == last + 1
    finally:
        await probe.stop()


async def test_offsets_are_committed_while_a_long_fetch_is_still_being_started(
    postgres_url: str, kafka_broker: TansuBroker
) -> None:
    """A fetch of many commands is started slot by slot; what finished meanwhile is
    committed then, not only once the last command of the fetch has a slot (a crash would
    otherwise deliver all of it again)."""
    stack = Stack.on_kafka(postgres_url, kafka_broker.bootstrap, partitions=1)
    async with stack.started(PAYPORT_MAX_IN_FLIGHT=2, PAYPORT_SANDBOX_LATENCY_MS=20) as kafka:
        producer = RawProducer(kafka)
        for i in range(24):
            order = f"order-slots-{i}"
            await producer.send(envelope("authorize_payment", nested_authorize(order)), order)
        await producer.aclose()
        settings = kafka.runtime.settings
        partition = TopicPartition(settings.commands_topic, 0)
        probe = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.consumer_group
        )
        await probe.start()
        try:
            consumer = kafka.runtime.consumer
            started = 0
            committed_during_a_fetch = False
            while started < 24 and not committed_during_a_fetch:
                before = await probe.committed(partition) or 0
                fetch = asyncio.create_task(consumer.poll_once())
                while not fetch.done() and not committed_during_a_fetch:
                    now = await probe.committed(partition) or 0
                    committed_during_a_fetch = now > before and not fetch.done()
                started += await fetch
            await kafka.drain()
        finally:
            await probe.stop()
    assert committed_during_a_fetch


async def test_two_workers_share_partitions_and_a_leaver_loses_nothing(
    kafka_stack: Stack,
) -> None:
    async with kafka_stack.started() as first, kafka_stack.started() as second:
        for harness in (first, second):
            harness.runtime.start_worker()
        cids = [
            await first.command("authorize_payment", nested_authorize(f"order-group-{i}"))
            for i in range(120)
        ]
        await wait_for_outcomes(first, cids)
        assert first.runtime.consumer.assigned_count() > 0  # type: ignore[attr-defined]
        assert second.runtime.consumer.assigned_count() > 0  # type: ignore[attr-defined]
        await second.runtime.stop()
        more = [
            await first.command("authorize_payment", nested_authorize(f"order-after-{i}"))
            for i in range(60)
        ]
        await wait_for_outcomes(first, more)
        events = await first.all_events()
    outcomes = by_correlation(events)
    assert all(len(outcomes[cid]) == 1 for cid in cids + more)
    assert Counter(e["type"] for e in events)["payment.authorized"] >= 180


async def wait_for_outcomes(harness: Harness, cids: list[str], timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    wanted = set(cids)
    while True:
        seen = {e["correlation_id"] for e in await harness.stored_events()}
        if wanted <= seen:
            return
        assert loop.time() < deadline, f"{len(wanted - seen)} commands without an outcome"
        await asyncio.sleep(0.2)


async def test_readiness_reports_the_broker(kafka: Harness) -> None:
    ready = await kafka.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "up", "broker": "up"}


async def test_broker_down_at_start_is_reported_and_survived(
    postgres_url: str, tmp_path: Any
) -> None:
    broker = TansuBroker(tmp_path)  # not started yet
    stack = Stack.on_kafka(postgres_url, broker.bootstrap)
    try:
        async with stack.started() as harness:
            harness.runtime.start_worker()
            health = await harness.client.get("/health")
            assert health.json() == {"status": "healthy"}
            ready = await harness.client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["broker"] == "down"
            refused = await harness.client.post(
                "/api/v1/commands", content=envelope("authorize_payment", nested_authorize("o-x"))
            )
            assert refused.status_code == 503
            assert refused.json()["code"] == "TRANSPORT_UNAVAILABLE"
            broker.start()
            cid = await harness.command("authorize_payment", nested_authorize("order-late"))
            await wait_for_outcomes(harness, [cid])
            assert (await harness.outcome(cid))["type"] == "payment.authorized"
            assert (await harness.client.get("/health/ready")).status_code == 200
    finally:
        broker.stop()


async def test_broker_restart_mid_run_loses_and_doubles_nothing_payport_accepted(
    postgres_url: str, tmp_path: Any
) -> None:
    broker = TansuBroker(tmp_path)
    broker.start()
    stack = Stack.on_kafka(postgres_url, broker.bootstrap, partitions=2)
    try:
        async with stack.started(PAYPORT_SANDBOX_LATENCY_MS=20) as harness:
            harness.runtime.start_worker()
            before = [
                await harness.command("authorize_payment", nested_authorize(f"order-rb-{i}"))
                for i in range(60)
            ]
            for _ in range(300):  # stop the broker once payport is part-way through
                if len(await accepted_commands(harness)) >= 5:
                    break
                await asyncio.sleep(0.05)
            broker.stop()  # in-memory broker: topics, offsets and unread commands are gone
            await asyncio.sleep(2.0)  # outcomes of accepted commands pile up in the outbox
            broker.start()
            after = [
                await harness.command("authorize_payment", nested_authorize(f"order-ra-{i}"))
                for i in range(20)
            ]
            await wait_for_outcomes(harness, after, timeout_s=90)
            await settle_outbox(harness)
            accepted = await accepted_commands(harness)
            stored = await harness.stored_events()
            intents = await by_payment(harness.runtime, "payment_intent")
            settings = harness.runtime.settings
            republished = await read_topic(
                settings.kafka_bootstrap_servers, settings.events_topic, len(stored)
            )
    finally:
        broker.stop()
    outcomes = by_correlation(stored)
    assert set(after) <= accepted
    for cid in accepted:
        assert len(outcomes.get(cid, set())) == 1, cid
    assert all(len(found) == 1 for found in intents.values())
    assert set(before) & accepted  # some commands were taken before the outage
    on_new_topic = {orjson.loads(r.value)["correlation_id"] for r in republished}
    assert set(after) <= on_new_topic


async def accepted_commands(harness: Harness) -> set[str]:
    """Correlation ids payport recorded in its inbox: the commands it took responsibility for."""
    from sqlalchemy import select

    from payport.messaging.models import InboxEntry

    async with harness.runtime.db.read() as session:
        return set((await session.execute(select(InboxEntry.correlation_id))).scalars())


async def settle_outbox(harness: Harness, timeout_s: float = 60.0) -> None:
    """Wait until the relay has published every stored event."""
    from sqlalchemy import func, select

    from payport.messaging.models import OutboxEvent

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        async with harness.runtime.db.read() as session:
            waiting = (
                await session.execute(
                    select(func.count(OutboxEvent.id)).where(OutboxEvent.publish_seq.is_(None))
                )
            ).scalar_one()
        if waiting == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("outbox did not drain after the broker came back")
