"""`payport worker` on Kafka as a real process: kill -9 mid-batch, SIGTERM, and the CLI.

Commands go onto the topic from this test process; the worker is a separate
`python -m payport worker` that is killed and restarted like in production.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.broker import TansuBroker
from bench.server import ROOT

from tests.harness import Harness, Stack, nested_authorize
from tests.kafka.test_kafka_transport import settle_outbox
from tests.provider_truth import by_payment

COMMANDS = 500


def worker_env(harness: Harness, **extra: str) -> dict[str, str]:
    settings = harness.runtime.settings
    return os.environ | {
        "DATABASE_URL": settings.database_url,
        "PAYPORT_TRANSPORT": "kafka",
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "PAYMENT_COMMANDS_TOPIC": settings.commands_topic,
        "PAYMENT_EVENTS_TOPIC": settings.events_topic,
        "PAYMENT_CONSUMER_GROUP": settings.consumer_group,
        "PAYPORT_KAFKA_PARTITIONS": str(settings.kafka_partitions),
        "PAYPORT_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "PAYPORT_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:9/unused",
        **extra,
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "payport", "worker"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
async def kafka(postgres_url: str, kafka_broker: TansuBroker) -> AsyncIterator[Harness]:
    stack = Stack.on_kafka(postgres_url, kafka_broker.bootstrap, partitions=4)
    async with stack.started() as harness:
        yield harness


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


async def count_outcomes(harness: Harness) -> dict[str, set[str]]:
    outcomes: dict[str, set[str]] = defaultdict(set)
    for event in await harness.stored_events():
        outcomes[event["correlation_id"]].add(event["event_id"])
    return outcomes


async def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def test_kill_9_mid_batch_then_restart_has_one_outcome_per_command_and_no_double_charge(
    kafka: Harness, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    env = worker_env(kafka, PAYPORT_SANDBOX_LATENCY_MS="30", PAYPORT_MAX_IN_FLIGHT="64")
    workers.append(start_worker(env, tmp_path / "worker.log"))
    sent = [
        await kafka.command("authorize_payment", nested_authorize(f"order-k9-{i}"))
        for i in range(COMMANDS)
    ]

    async def some_done() -> bool:
        return len(await count_outcomes(kafka)) >= COMMANDS // 5

    await wait_until(some_done, 60, "the worker never got going")
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    done_at_kill = len(await count_outcomes(kafka))
    assert done_at_kill < COMMANDS, "killed too late to prove anything"
    workers.append(start_worker(env, tmp_path / "worker.log"))

    async def all_done() -> bool:
        return len(await count_outcomes(kafka)) >= COMMANDS

    await wait_until(all_done, 120, (tmp_path / "worker.log").read_text()[-3000:])
    await settle_outbox(kafka)
    outcomes = await count_outcomes(kafka)
    assert all(len(outcomes[cid]) == 1 for cid in sent)
    on_topic = defaultdict(set)
    for event in await kafka.all_events():
        on_topic[event["correlation_id"]].add(event["event_id"])
    assert all(on_topic[cid] == outcomes[cid] for cid in sent)
    intents = await by_payment(kafka.runtime, "payment_intent")
    assert len(intents) == COMMANDS
    assert all(len(found) == 1 for found in intents.values())


async def test_sigterm_finishes_in_flight_work_and_exits_quickly(
    kafka: Harness, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    env = worker_env(kafka, PAYPORT_SANDBOX_LATENCY_MS="300")
    workers.append(start_worker(env, tmp_path / "worker.log"))
    sent = [
        await kafka.command("authorize_payment", nested_authorize(f"order-term-{i}"))
        for i in range(40)
    ]

    async def started() -> bool:
        return len(await count_outcomes(kafka)) > 0

    await wait_until(started, 60, "the worker never got going")
    begun = time.monotonic()
    workers[0].send_signal(signal.SIGTERM)
    assert workers[0].wait(timeout=15) == 0
    assert time.monotonic() - begun < 10
    workers.append(start_worker(env, tmp_path / "worker.log"))

    async def all_done() -> bool:
        return len(await count_outcomes(kafka)) >= len(sent)

    await wait_until(all_done, 90, (tmp_path / "worker.log").read_text()[-3000:])
    outcomes = await count_outcomes(kafka)
    assert all(len(outcomes[cid]) == 1 for cid in sent)


def test_send_and_events_work_on_kafka(
    kafka_broker: TansuBroker, postgres_url: str, tmp_path: Path
) -> None:
    settings = Stack.on_kafka(postgres_url, kafka_broker.bootstrap).settings
    env = os.environ | {k: str(v) for k, v in settings.items()} | {"DATABASE_URL": postgres_url}
    command = {
        "type": "authorize_payment",
        "correlation_id": "cli-kafka-1",
        "payload": {"order_id": "order-cli-kafka", "customer_id": "user_cli",
                    "payment_method_id": "pm_card_visa", "amount": 700},
    }  # fmt: skip
    sent = subprocess.run(
        [sys.executable, "-m", "payport", "send", "-"],
        cwd=ROOT,
        env=env,
        input=json.dumps(command).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr.decode()
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        events: list[dict[str, Any]] = []
        for _ in range(60):
            printed = subprocess.run(
                [sys.executable, "-m", "payport", "events"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert printed.returncode == 0, printed.stderr.decode()
            events = [json.loads(line) for line in printed.stdout.decode().splitlines()]
            if events:
                break
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(timeout=15)
    assert [(e["type"], e["correlation_id"]) for e in events] == [
        ("payment.authorized", "cli-kafka-1")
    ]
