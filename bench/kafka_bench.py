"""Authorize throughput and latency through Kafka on PostgreSQL (issue: Kafka transport).

Each figure is a ratio against a baseline measured in this same run:

- a sequential consumer (one command at a time: provider call, then commit),
- the bound `in-flight / provider latency`,
- PostgreSQL's ceiling for payment-sized transactions on this machine (every row one
  authorization writes, in one transaction), and its bare single-row commit rate,
- for latency, a bare produce -> consume round trip through the same broker.

payport runs as `payport serve` (API, worker and sandbox webhooks in one
process) against a fresh database per run; commands go onto the topic from
here, and outcomes are read back from the event topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rich.console import Console

import payport.messaging.kafka  # noqa: F401  (InitProducerId compatibility for the producer)
from bench.broker import TansuBroker
from bench.pg import fresh_database, reachable
from bench.server import cpu_seconds, payport_process, payport_workers
from payport.db import Database
from payport.money import Money
from payport.providers.base import AuthorizeRequest
from payport.providers.sandbox import SandboxProvider

LATENCY_MS = 300
PARTITIONS = 8
IN_FLIGHT = [int(n) for n in os.environ.get("BENCH_KAFKA_IN_FLIGHT", "64,256,1024").split(",")]
SECONDS = float(os.environ.get("BENCH_KAFKA_SECONDS", "20"))
# Worker processes sharing the command topic's partitions: `payport serve` plus N-1
# `payport worker`s. The in-flight limit is the total, split between them.
WORKERS = [int(n) for n in os.environ.get("BENCH_KAFKA_WORKERS", "1").split(",")]
console = Console()
Report = Callable[..., None]


Writer = Callable[[asyncpg.Connection, int], Any]


async def commit_ceiling(url: str, seconds: float = 5.0, connections: int = 16) -> float:
    """Durable commits/s of the smallest transaction (one ~300-byte row) from 16 sessions."""
    body = "x" * 200

    async def write(connection: asyncpg.Connection, _n: int) -> None:
        await connection.execute(
            "INSERT INTO bench_ceiling (order_id, status, amount, currency, body)"
            " VALUES ($1, 'AUTHORIZED', 2500, 'usd', $2)",
            str(uuid.uuid4()),
            body,
        )

    async with _pool(url, connections) as pool:
        await pool.execute(
            "CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, order_id text, status text,"
            " amount bigint, currency text, body text, created_at timestamptz DEFAULT now())"
        )
        try:
            return await _rate(pool, seconds, connections, write)
        finally:
            await pool.execute("DROP TABLE bench_ceiling")


async def authorization_ceiling(url: str, seconds: float = 5.0, connections: int = 16) -> float:
    """Authorizations/s PostgreSQL itself could store: every row of one per transaction."""
    async with _pool(url, connections) as pool:
        return await _rate(pool, seconds, connections, _write_one_authorization)


@contextlib.asynccontextmanager
async def _pool(url: str, connections: int) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        url.replace("postgresql://", "postgres://"), min_size=connections, max_size=connections
    )
    try:
        yield pool
    finally:
        await pool.close()


async def _rate(pool: asyncpg.Pool, seconds: float, connections: int, write: Writer) -> float:
    """Transactions/s of `write`, each session committing one after another."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def session() -> None:
        nonlocal done
        async with pool.acquire() as connection:
            while time.perf_counter() < deadline:
                await write(connection, done)
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(connections)))
    return done / (time.perf_counter() - started)


# The rows an authorization leaves in payport's own tables (the sandbox's, which stand in
# for Stripe, aside): the payment, its command's inbox entry with the outcome, the outcome
# event, and the hold's ledger entry, two postings and two balance rows. Here they go in
# as one statement of hand-written SQL: one round trip, one commit (measured: ~3,700-6,300/s
# against ~2,750/s for the same rows a statement at a time). payport writes them in two
# transactions (before and after the provider call), through the ORM: nothing it could do
# would write them faster.
_AUTHORIZATION_ROWS = """
WITH payment AS (
  INSERT INTO payments (id, order_id, customer_user_id, provider_customer_id,
    payment_method_id, amount_minor, currency, description, status, correlation_id,
    payment_intent_id, charge_id, amount_captured_minor, fee_minor, transfer_amount_minor,
    amount_refunded_minor, disputed, created_at, updated_at)
  VALUES ($1, $2, $3, 'cus_bench', 'pm_card_visa', 2500, 'usd', 'bench', 'AUTHORIZED', $4,
    'pi_' || $5, 'ch_' || $5, 0, 0, 0, 0, false, now(), now())
), inbox AS (
  INSERT INTO command_inbox (command_key, command_type, target, correlation_id, payment_id,
    source_ref, status, outcome_event_id, outcome, created_at, updated_at)
  VALUES ('authorize_payment:' || $2 || ':' || $4, 'authorize_payment', $2, $4, $1, $6,
    'done', $5, $7, now(), now())
), event AS (
  INSERT INTO outbox_events (event_id, event_type, key, body, created_at)
  VALUES ($5, 'payment.authorized', $2, $7, now())
), entry AS (
  INSERT INTO ledger_entries (cause, kind, payment_id, created_at)
  VALUES ('authorize:' || $1, 'authorize', $1, now()) RETURNING id
), postings AS (
  INSERT INTO ledger_postings (entry_id, account, currency, amount_minor, payment_count)
  SELECT entry.id, line.account, 'usd', line.amount, line.n FROM entry,
    (VALUES ($8, -2500, 1), ('hold:' || $1, 2500, 0)) AS line(account, amount, n)
)
INSERT INTO ledger_balances (account, currency, bucket, balance_minor, payment_count)
VALUES ($8, 'usd', $9, -2500, 1), ('hold:' || $1, 'usd', 0, 2500, 0)
ON CONFLICT (account, currency, bucket) DO UPDATE SET
  balance_minor = ledger_balances.balance_minor + excluded.balance_minor,
  payment_count = ledger_balances.payment_count + excluded.payment_count
"""


async def _write_one_authorization(connection: asyncpg.Connection, n: int) -> None:
    payment, order, cid, event = (str(uuid.uuid4()) for _ in range(4))
    body = orjson.dumps(envelope(order, cid)).decode()  # about the size of the event
    user = f"user_{n % 97}"
    await connection.execute(
        _AUTHORIZATION_ROWS, payment, order, user, cid, event, f"b:{n}", body,
        f"customer:{user}", n % 4,
    )  # fmt: skip


async def sequential_consumer(url: str, broker: TansuBroker, calls: int = 12) -> float:
    """The naive service: consume a command, call the provider, commit, next one."""
    topic = f"seq_{uuid.uuid4().hex[:6]}"
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    for i in range(calls):
        await producer.send_and_wait(topic, orjson.dumps(envelope(f"seq-{i}", str(i))))
    await producer.stop()
    db = Database(url)
    provider = SandboxProvider(db, base_url="http://127.0.0.1", latency_ms=LATENCY_MS)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"seq_{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    handled = 0
    started = 0.0
    try:
        while handled < calls:
            record = await consumer.getone()
            started = started or time.perf_counter()
            command = orjson.loads(record.value)
            await provider.create_payment_intent(
                AuthorizeRequest(amount=Money(2500, "usd"), payment_method="pm_card_visa"),
                idempotency_key=f"authorize:{command['payload']['order_id']}",
            )
            await consumer.commit()
            handled += 1
        return (calls - 1) / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await db.dispose()


def envelope(order_id: str, correlation_id: str) -> dict[str, Any]:
    return {
        "type": "authorize_payment",
        "correlation_id": correlation_id,
        "timestamp": "2025-03-31T10:15:30.123456",
        "payload": {
            "order_id": order_id,
            "customer": {
                "clerkUserId": f"user_{hash(order_id) % 97}",
                "stripeCustomerId": "cus_bench",
                "userStripeCard": {"payment_method_id": "pm_card_visa"},
            },
            "order": {"amount": 2500, "description": "bench"},
        },
    }


class Topics:
    """Commands out, events back, for one payport under test."""

    def __init__(self, broker: TansuBroker, *, linger_ms: int = 5) -> None:
        """`linger_ms`: how long the command producer waits to fill a batch. The load runs
        batch (5 ms); the latency runs send each command at once (0), as a client waiting
        on the answer would. Measured: lingering 5 ms added ~7 ms to payport's p50 and
        ~1 ms to the bare round trip."""
        suffix = uuid.uuid4().hex[:8]
        self.broker = broker
        self.linger_ms = linger_ms
        self.commands = f"bench_commands_{suffix}"
        self.events = f"bench_events_{suffix}"
        self.group = f"bench_group_{suffix}"
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None

    def settings(self) -> dict[str, str]:
        return {
            "PAYPORT_TRANSPORT": "kafka",
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "PAYMENT_COMMANDS_TOPIC": self.commands,
            "PAYMENT_EVENTS_TOPIC": self.events,
            "PAYMENT_CONSUMER_GROUP": self.group,
            "PAYPORT_KAFKA_PARTITIONS": str(PARTITIONS),
            "PAYPORT_KAFKA_SESSION_TIMEOUT_MS": "6000",
        }

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name, PARTITIONS, 1) for name in (self.commands, self.events)]
            )
        finally:
            await admin.close()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.broker.bootstrap, acks="all", linger_ms=self.linger_ms
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
        )
        await self._consumer.start()

    async def follow_events(self) -> None:
        """Read the event topic from its start."""
        assert self._consumer is not None
        assigned = [TopicPartition(self.events, p) for p in range(PARTITIONS)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)

    async def send(self, bodies: list[tuple[str, bytes]]) -> None:
        assert self._producer is not None
        pending = [
            await self._producer.send(self.commands, value=body, key=key.encode())
            for key, body in bodies
        ]
        await asyncio.gather(*pending)

    async def outcomes(self, wanted: set[str], timeout_s: float) -> dict[str, float]:
        """When each wanted correlation id's outcome arrived (perf_counter seconds)."""
        assert self._consumer is not None
        arrived: dict[str, float] = {}
        deadline = time.perf_counter() + timeout_s
        while len(arrived) < len(wanted):
            assert time.perf_counter() < deadline, f"{len(wanted) - len(arrived)} outcomes late"
            for records in (await self._consumer.getmany(timeout_ms=50)).values():
                now = time.perf_counter()
                for record in records:
                    cid = orjson.loads(record.value)["correlation_id"]
                    if cid in wanted:
                        arrived.setdefault(cid, now)
        return arrived

    async def warm_up(self) -> None:
        """One command end to end, so the group has joined before anything is timed."""
        cid = str(uuid.uuid4())
        await self.send([("warm", orjson.dumps(envelope(f"warm-{cid}", cid)))])
        await self.follow_events()
        await self.outcomes({cid}, timeout_s=120)

    async def group_stable(self, members: int, timeout_s: float = 60.0) -> None:
        """Wait until payport's consumer group is stable with `members` members, so no
        rebalance pauses the timed run."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
        await admin.start()
        try:
            deadline = time.perf_counter() + timeout_s
            while True:
                (response,) = await admin.describe_consumer_groups([self.group])
                (group,) = response.groups
                state, joined = group[2], len(group[5])
                if state == "Stable" and joined == members:
                    return
                assert time.perf_counter() < deadline, f"group {state} with {joined} members"
                await asyncio.sleep(0.5)
        finally:
            await admin.close()
        await asyncio.sleep(1.0)  # members that just joined fetch their first records

    async def stop(self) -> None:
        for client in (self._producer, self._consumer):
            if client is not None:
                await client.stop()


def batch(count: int) -> list[tuple[str, bytes, str]]:
    bodies = []
    for _ in range(count):
        order_id, cid = f"order-{uuid.uuid4().hex[:12]}", str(uuid.uuid4())
        bodies.append((order_id, orjson.dumps(envelope(order_id, cid)), cid))
    return bodies


async def throughput_run(
    broker: TansuBroker, in_flight: int, expected_per_s: float, *, workers: int = 1
) -> tuple[float, CpuCost]:
    """payport's authorize commands/s with `in_flight` overlapping 300 ms provider calls
    (in total, over `workers` processes), and the CPU milliseconds payport's processes
    spent per command meanwhile."""
    count = max(200, int(expected_per_s * SECONDS))
    async with fresh_database() as url:
        topics = Topics(broker)
        env = {
            "DATABASE_URL": url,
            "PAYPORT_SANDBOX_LATENCY_MS": str(LATENCY_MS),
            "PAYPORT_MAX_IN_FLIGHT": str(max(1, in_flight // workers)),
            **topics.settings(),
        }
        with payport_process(env) as server:
            await topics.start()
            try:
                await topics.warm_up()
                with payport_workers(env | {"PORT": str(server.port)}, workers - 1) as extra:
                    pids = [server.pid, *extra]
                    await topics.group_stable(members=workers)
                    idle_rate = await idle_cpu_rate(pids)
                    commands = batch(count)
                    cpu_before = cpu_seconds_of(pids)
                    started = time.perf_counter()
                    await topics.send([(key, body) for key, body, _ in commands])
                    wanted = {cid for *_, cid in commands}
                    arrived = await topics.outcomes(wanted, timeout_s=600)
                    cpu_used = cpu_seconds_of(pids) - cpu_before
                    cpu_total = await cpu_until_idle(pids, idle_rate) - cpu_before
            finally:
                await topics.stop()
        elapsed = max(arrived.values()) - started
        cpu = CpuCost(cpu_used * 1000 / count, cpu_total * 1000 / count, idle_rate)
        console.print(
            f"in-flight {in_flight}, {workers} process(es): {count} commands in {elapsed:.1f} s,"
            f" payport CPU {cpu.until_outcomes_ms:.2f} ms/command until the last outcome, "
            f"{cpu.with_confirmations_ms:.2f} with the webhook confirmations after it"
        )
        return count / elapsed, cpu


def cpu_seconds_of(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


@dataclass(frozen=True)
class CpuCost:
    """payport's CPU milliseconds per command: while the outcomes came out, and in all
    (the sandbox's webhooks confirm each authorization afterwards)."""

    until_outcomes_ms: float
    with_confirmations_ms: float
    idle_share_of_core: float  # what its polling loops cost while there is nothing to do


async def idle_cpu_rate(pids: list[int], seconds: float = 2.0) -> float:
    """CPU seconds per second the processes spend with nothing to do (their polling loops)."""
    before = cpu_seconds_of(pids)
    await asyncio.sleep(seconds)
    return (cpu_seconds_of(pids) - before) / seconds


async def cpu_until_idle(pids: list[int], idle_rate: float, timeout_s: float = 120.0) -> float:
    """The processes' CPU seconds once they are back to their idle rate (+ 5 % of a core)."""
    deadline = time.perf_counter() + timeout_s
    last = cpu_seconds_of(pids)
    while time.perf_counter() < deadline:
        await asyncio.sleep(1.0)
        now = cpu_seconds_of(pids)
        if now - last < idle_rate + 0.05:
            return now
        last = now
    return last


async def latency_run(broker: TansuBroker, samples: int = 200) -> list[float]:
    """Command -> outcome event, one at a time, with an instant provider."""
    async with fresh_database() as url:
        topics = Topics(broker, linger_ms=0)
        env = {"DATABASE_URL": url, "PAYPORT_SANDBOX_LATENCY_MS": "0", **topics.settings()}
        with payport_process(env):
            await topics.start()
            try:
                await topics.warm_up()
                latencies = []
                for key, body, cid in batch(samples):
                    sent = time.perf_counter()
                    await topics.send([(key, body)])
                    latencies.append((await topics.outcomes({cid}, 30))[cid] - sent)
                return latencies
            finally:
                await topics.stop()


async def broker_round_trip(broker: TansuBroker, samples: int = 200) -> list[float]:
    """The floor: produce one record and consume it, through the same broker."""
    topics = Topics(broker, linger_ms=0)
    topics.events = topics.commands  # read back what is sent
    await topics.start()
    try:
        await topics.send([("warm", orjson.dumps({"correlation_id": "warm"}))])
        await topics.follow_events()
        await topics.outcomes({"warm"}, 30)
        latencies = []
        for i in range(samples):
            cid = f"rt-{i}"
            sent = time.perf_counter()
            await topics.send([("k", orjson.dumps({"correlation_id": cid}))])
            latencies.append((await topics.outcomes({cid}, 30))[cid] - sent)
        return latencies
    finally:
        await topics.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(report: Report) -> None:
    problem = await reachable()
    if problem:
        console.print(f"[yellow]Kafka bench skipped: {problem}")
        return
    with tempfile.TemporaryDirectory(prefix="payport-kafka-bench-") as tmp:
        broker = TansuBroker(Path(tmp))
        broker.start()
        try:
            await _measure(broker, report)
        finally:
            broker.stop()


async def _measure(broker: TansuBroker, report: Report) -> None:
    async with fresh_database() as url:
        ceiling = await authorization_ceiling(url)
        single_rows = await commit_ceiling(url)
        sequential = await sequential_consumer(url, broker)
    console.print(
        f"PostgreSQL ceilings: {ceiling:.0f} authorizations/s, {single_rows:.0f} single-row"
        f" tx/s; sequential consumer {sequential:.2f}/s"
    )
    for in_flight in IN_FLIGHT:
        bound = in_flight / (LATENCY_MS / 1000)
        for workers in WORKERS:
            rate, cpu = await throughput_run(
                broker, in_flight, expected_per_s=min(bound, ceiling / 4), workers=workers
            )
            suffix = "" if workers == 1 else f"_{workers}_processes"
            report(
                f"kafka_authorize_in_flight_{in_flight}{suffix}_vs_sequential",
                rate / sequential,
                payport_per_s=round(rate, 1),
                sequential_per_s=round(sequential, 2),
                vs_bound=round(rate / bound, 3),
                bound_per_s=round(bound, 1),
                vs_pg_ceiling=round(rate / ceiling, 3),
                pg_ceiling_tx_s=round(ceiling),
                vs_pg_single_row_commits=round(rate / single_rows, 3),
                pg_single_row_tx_s=round(single_rows),
                latency_ms=LATENCY_MS,
                processes=workers,
                payport_cpu_ms_per_command=round(cpu.until_outcomes_ms, 2),
                payport_cpu_ms_per_command_with_webhooks=round(cpu.with_confirmations_ms, 2),
                payport_idle_cpu_share=round(cpu.idle_share_of_core, 3),
            )
    floor = await broker_round_trip(broker)
    latencies = await latency_run(broker)
    p50 = statistics.median(latencies)
    report(
        "kafka_command_to_event_latency_vs_broker_round_trip",
        p50 / statistics.median(floor),
        p50_ms=round(p50 * 1000, 2),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
        broker_round_trip_p50_ms=round(statistics.median(floor) * 1000, 2),
        samples=len(latencies),
    )


if __name__ == "__main__":
    import json

    def _print(name: str, ratio: float, **figures: Any) -> None:
        print(json.dumps({"bench": name, "ratio": round(ratio, 3), **figures}), flush=True)

    asyncio.run(run(_print))
