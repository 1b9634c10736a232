"""Usage ingest and statistics at size on PostgreSQL.

1. Batched `POST /api/v1/usage` (500 events a request) through a real
   `payport serve`, in events/s, against PostgreSQL's durable-commit ceiling
   for small transactions measured in the same run (kafka_bench's probe): the
   ratio says what batching buys over one commit per event.
2. With 1,000,000 usage rows (the ingested ones plus the rest written with
   COPY, then folded into the usage rollups the way the migration folds
   records from before them), p99 of the statistics endpoints and of a
   subscription's usage summary, against a primary-key read
   (`GET /api/v1/plans/{id}`) in the same run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from rich.console import Console

from bench.kafka_bench import commit_ceiling
from bench.loadgen import post_all, run_load
from bench.pg import fresh_database, reachable
from bench.server import payport_server
from payport.db import Database
from payport.usage.rollups import rebuild

ROWS = int(os.environ.get("BENCH_USAGE_ROWS", "1000000"))
INGESTED = int(os.environ.get("BENCH_USAGE_INGESTED", "100000"))
BATCH = 500
SUBSCRIPTIONS = 100
METRICS = ("api_calls", "seats", "storage_gb")
CHUNK = 50_000
console = Console()
Report = Callable[..., None]


async def seed_subscriptions(url: str, now: datetime) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO billing_plans (id, name, amount_minor, currency, billing_cycle,"
            " trial_days, features, active, created_at)"
            " VALUES ('plan_bench', 'Bench', 2999, 'usd', 'monthly', 0, '[]', true, $1)",
            now,
        )
        start, end = now - timedelta(days=1), now + timedelta(days=29)
        records = [
            (f"sub_{n}", f"user_{n}", "plan_bench", 1, "active", start, 0, start, end, False,
             start, now, now)
            for n in range(SUBSCRIPTIONS)
        ]  # fmt: skip
        await connection.copy_records_to_table(
            "billing_subscriptions",
            records=records,
            columns=("id", "user_id", "plan_id", "quantity", "status", "billing_cycle_anchor",
                     "period_index", "current_period_start", "current_period_end",
                     "cancel_at_period_end", "started_at", "created_at", "updated_at"),
        )  # fmt: skip
    finally:
        await connection.close()


def batches(now: datetime) -> list[bytes]:
    bodies = []
    for first in range(0, INGESTED, BATCH):
        events = [
            {"event_id": f"evt-{n}", "subscription_id": f"sub_{n % SUBSCRIPTIONS}",
             "metric": METRICS[n % len(METRICS)], "quantity": n % 97,
             "timestamp": (now - timedelta(seconds=n % 80_000)).isoformat()}
            for n in range(first, min(INGESTED, first + BATCH))
        ]  # fmt: skip
        bodies.append(orjson.dumps({"events": events}))
    return bodies


async def fill_to(url: str, now: datetime) -> None:
    """The rows after the ingested ones, written with COPY, spread over the same period."""
    connection = await asyncpg.connect(url)
    try:
        for first in range(INGESTED, ROWS, CHUNK):
            records = [
                (f"evt-{n}", f"sub_{n % SUBSCRIPTIONS}", METRICS[n % len(METRICS)], n % 97,
                 now - timedelta(seconds=n % 80_000), now)
                for n in range(first, min(ROWS, first + CHUNK))
            ]  # fmt: skip
            await connection.copy_records_to_table(
                "usage_records",
                records=records,
                columns=("event_id", "subscription_id", "metric", "quantity", "recorded_at",
                         "created_at"),
            )  # fmt: skip
    finally:
        await connection.close()
    await fold_into_rollups(url)


async def fold_into_rollups(url: str) -> None:
    """COPY bypasses the service, so the rollups are rebuilt from every record, as the
    migration does for records written before rollups existed."""
    db = Database(url)
    try:
        async with db.writer.begin() as connection:
            await connection.run_sync(rebuild)
            await connection.exec_driver_sql("ANALYZE")
    finally:
        await db.dispose()


async def summary_is_exact(url: str, port: int, subscription_id: str) -> bool:
    """The summary the rollups give equals an aggregation over the records themselves."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        answer = (await client.get(f"/api/v1/usage/subscriptions/{subscription_id}")).json()
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT r.metric, sum(r.quantity) AS sum, max(r.quantity) AS max, count(*) AS count,"
            " (array_agg(r.quantity ORDER BY r.recorded_at DESC, r.id DESC))[1] AS last"
            " FROM usage_records r JOIN billing_subscriptions s ON s.id = r.subscription_id"
            " WHERE s.id = $1 AND r.recorded_at >= s.current_period_start"
            " AND r.recorded_at < s.current_period_end GROUP BY r.metric",
            subscription_id,
        )
    finally:
        await connection.close()
    direct = {row["metric"]: {k: int(row[k]) for k in ("sum", "max", "count", "last")}
              for row in rows}  # fmt: skip
    return bool(direct) and answer["metrics"] == direct


async def run(report: Report) -> None:
    problem = await reachable()
    if problem:
        console.print(f"[yellow]Usage bench skipped: {problem}")
        return
    now = datetime.now(UTC).replace(microsecond=0)
    async with fresh_database("payport_usage_bench") as url:
        ceiling = await commit_ceiling(url)
        await seed_subscriptions(url, now)
        bodies = batches(now)
        with payport_server({"DATABASE_URL": url, "PAYPORT_BILLING_INTERVAL": "0"}) as port:
            started = time.perf_counter()
            errors = await post_all("127.0.0.1", port, "/api/v1/usage", bodies, connections=8)
            ingest_s = time.perf_counter() - started
            await fill_to(url, now)
            exact = await summary_is_exact(url, port, "sub_7")
            reads = {
                path: await run_load("127.0.0.1", port, path, connections=8, seconds=3.0)
                for path in ("/api/v1/plans/plan_bench", "/api/v1/stats",
                             "/api/v1/stats/revenue", "/api/v1/stats/subscriptions",
                             "/api/v1/usage/subscriptions/sub_7")
            }  # fmt: skip
    rate = INGESTED / ingest_s
    report(
        "usage_ingest_batched_vs_pg_commit_ceiling",
        rate / ceiling,
        events_s=round(rate),
        pg_ceiling_tx_s=round(ceiling),
        batch=BATCH,
        events=INGESTED,
        errors=errors,
    )
    lookup = reads.pop("/api/v1/plans/plan_bench")
    for path, result in reads.items():
        report(
            f"stats_p99{path.replace('/api/v1', '').replace('/', '_')}_vs_pk_read",
            result.p99_ms / lookup.p99_ms,
            p50_ms=round(result.p50_ms, 2),
            p99_ms=round(result.p99_ms, 2),
            lookup_p99_ms=round(lookup.p99_ms, 2),
            req_s=round(result.rate),
            errors=result.errors + lookup.errors,
            usage_rows=ROWS,
            **({"exact": exact} if "usage" in path else {}),
        )


if __name__ == "__main__":
    import json

    def _print(name: str, ratio: float, **figures: Any) -> None:
        print(json.dumps({"bench": name, "ratio": round(ratio, 3), **figures}), flush=True)

    asyncio.run(run(_print))
