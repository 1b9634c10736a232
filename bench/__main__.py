"""`make bench`: each figure is a ratio against a baseline measured in the same run.

1. authorize -> outcome throughput on the embedded default (SQLite, local
   transport, sandbox with 300 ms latency) against a sequential loop over the
   same provider.
2. `GET /payment/{order_id}/status` requests/s against a bare FastAPI JSON
   endpoint served the same way (uvicorn, one process).
3. Through Kafka on PostgreSQL (bench/kafka_bench.py): authorize commands/s
   at in-flight limits 64, 256 and 1,024 against a sequential consumer, the
   in-flight / latency bound and PostgreSQL's commit ceiling; command -> event
   latency against a bare broker round trip.
4. The ledger at 1,000,000 payments on PostgreSQL (bench/ledger_bench.py):
   `GET /history/{user_id}` and a balance read against a primary-key lookup of
   the same data, and the seeding rate.
5. Usage on PostgreSQL (bench/usage_bench.py): batched usage ingest events/s
   against PostgreSQL's durable-commit ceiling; statistics p99 at 1,000,000
   usage rows against a primary-key read.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table

from bench import kafka_bench, ledger_bench, usage_bench
from bench.loadgen import post_all, run_load
from bench.server import bare_server, payport_server
from payport.db import Database
from payport.migrate import upgrade_async
from payport.money import Money
from payport.providers.base import AuthorizeRequest
from payport.providers.sandbox import SandboxProvider

LATENCY_MS = 300
SUBMITTERS = int(os.environ.get("BENCH_SUBMITTERS", "64"))
COMMANDS = int(os.environ.get("BENCH_COMMANDS", "3000"))
console = Console()
results: list[dict[str, Any]] = []


def report(name: str, ratio: float, **figures: Any) -> None:
    record = {"bench": name, "ratio": round(ratio, 3), **figures}
    results.append(record)
    print(json.dumps(record), flush=True)


async def sequential_baseline(workdir: Path, calls: int = 10) -> float:
    """Authorizations per second when each waits for the provider in turn."""
    url = f"sqlite:///{workdir}/baseline.db"
    await upgrade_async(url)
    db = Database(url)
    provider = SandboxProvider(db, base_url="http://127.0.0.1", latency_ms=LATENCY_MS)
    started = time.perf_counter()
    for i in range(calls):
        await provider.create_payment_intent(
            AuthorizeRequest(amount=Money(2500, "usd"), payment_method="pm_card_visa"),
            idempotency_key=f"baseline:{i}",
        )
    elapsed = time.perf_counter() - started
    await db.dispose()
    return calls / elapsed


def envelope(index: int) -> dict[str, Any]:
    return {
        "type": "authorize_payment",
        "correlation_id": str(uuid.uuid4()),
        "payload": {
            "order_id": f"bench-{index}",
            "customer": {
                "clerkUserId": f"user_{index % 97}",
                "stripeCustomerId": "cus_bench",
                "userStripeCard": {"payment_method_id": "pm_card_visa"},
            },
            "order": {"amount": 2500, "description": "bench"},
        },
    }


async def wait_outcomes(client: httpx.AsyncClient, wanted: set[str]) -> float:
    cursor, seen = 0, 0
    while seen < len(wanted):
        page = (await client.get("/api/v1/events", params={"after": cursor, "limit": 1000})).json()
        cursor = page["next_cursor"]
        seen += sum(1 for e in page["data"] if e["correlation_id"] in wanted)
        if not page["data"]:
            await asyncio.sleep(0.05)
    return time.perf_counter()


async def authorize_throughput(port: int) -> tuple[float, int]:
    bodies = [envelope(i) for i in range(COMMANDS)]
    wanted = {b["correlation_id"] for b in bodies}
    encoded = [orjson.dumps(b) for b in bodies]
    # Shorter than uvicorn's 5 s keep-alive, so a pooled connection is never reused as it closes.
    limits = httpx.Limits(max_connections=4, keepalive_expiry=2.0)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
    ) as client:
        started = time.perf_counter()
        waiter = asyncio.create_task(wait_outcomes(client, wanted))
        errors = await post_all(
            "127.0.0.1", port, "/api/v1/commands", encoded, connections=SUBMITTERS
        )
        assert errors == 0, f"{errors} commands were refused"
        submitted = time.perf_counter()
        finished = await waiter
        console.print(
            f"submitted in {submitted - started:.1f} s, outcomes after {finished - started:.1f} s"
        )
    return COMMANDS / (finished - started), COMMANDS


def background_backlog(db_path: Path) -> int:
    """Webhooks and events the server still has to work through after the burst."""
    with sqlite3.connect(db_path) as connection:
        row = connection.execute(
            "SELECT (SELECT count(*) FROM sandbox_webhook_deliveries WHERE delivered_at IS NULL)"
            " + (SELECT count(*) FROM provider_events WHERE status = 'pending')"
            " + (SELECT count(*) FROM outbox_events WHERE publish_seq IS NULL)"
        ).fetchone()
    return int(row[0])


async def wait_until_quiet(db_path: Path, timeout_s: float = 120.0) -> float:
    """Reads are measured on a server that has finished its background work."""
    started = time.perf_counter()
    deadline = started + timeout_s
    while background_backlog(db_path) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def embedded() -> None:
    """Sections 1 and 2: the embedded default and its hot read."""
    with tempfile.TemporaryDirectory(prefix="payport-bench-") as tmp:
        workdir = Path(tmp)
        console.print(
            f"[bold]payport bench[/] (sandbox latency {LATENCY_MS} ms, "
            f"{COMMANDS} authorize commands)"
        )
        baseline = await sequential_baseline(workdir)
        env = {
            "DATABASE_URL": f"sqlite:///{workdir}/payport.db",
            "PAYPORT_SANDBOX_LATENCY_MS": str(LATENCY_MS),
        }
        with payport_server(env) as port:
            rate, count = await authorize_throughput(port)
            report(
                "authorize_embedded_vs_sequential",
                rate / baseline,
                payport_per_s=round(rate, 1),
                sequential_per_s=round(baseline, 2),
                commands=count,
                latency_ms=LATENCY_MS,
            )
            drained_s = await wait_until_quiet(workdir / "payport.db")
            console.print(f"background webhooks drained {drained_s:.1f} s after the burst")
            payport_reads = await run_load("127.0.0.1", port, "/payment/bench-7/status")
        with bare_server() as bare_port:
            bare_reads = await run_load("127.0.0.1", bare_port, "/payment/bench-7/status")
        report(
            "status_read_vs_bare_fastapi",
            payport_reads.rate / bare_reads.rate,
            payport_req_s=round(payport_reads.rate),
            bare_req_s=round(bare_reads.rate),
            payport_p50_ms=round(payport_reads.p50_ms, 2),
            payport_p99_ms=round(payport_reads.p99_ms, 2),
            errors=payport_reads.errors + bare_reads.errors,
        )


async def main() -> None:
    """Every section, or those named in BENCH_PARTS (embedded, kafka, ledger, usage)."""
    parts = os.environ.get("BENCH_PARTS", "embedded,kafka,ledger,usage").split(",")
    if "embedded" in parts:
        await embedded()
    if "kafka" in parts:
        await kafka_bench.run(report)
    if "ledger" in parts:
        await ledger_bench.run(report)
    if "usage" in parts:
        await usage_bench.run(report)
    table = Table(title="payport bench (ratios against same-run baselines)")
    for column in ("bench", "ratio", "figures"):
        table.add_column(column)
    for record in results:
        figures = ", ".join(f"{k}={v}" for k, v in record.items() if k not in ("bench", "ratio"))
        table.add_row(record["bench"], f"{record['ratio']:.2f}x", figures)
    console.print(table)


if __name__ == "__main__":
    asyncio.run(main())
