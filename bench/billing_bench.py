"""Billing renewals with a 300 ms provider: settled together against one at a time.

`python -m bench.billing_bench` (BENCH_SUBSCRIPTIONS, default 64; DATABASE_URL, default a
temporary SQLite file). Every subscription renews at the same moment of one test clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

from payport.billing.models import Plan, TestClock
from payport.billing.schemas import SubscriptionBody
from payport.billing.subscriptions import create_subscription
from payport.config import load_settings
from payport.migrate import upgrade_async
from payport.runtime import Runtime

LATENCY_MS = 300
START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


async def renewals_per_second(url: str, count: int, concurrency: int, tag: str) -> float:
    runtime = Runtime(load_settings(DATABASE_URL=url, PAYPORT_SANDBOX_LATENCY_MS=LATENCY_MS))
    engine = runtime.billing
    clock_id, plan_id = f"clock_{tag}", f"plan_{tag}"
    async with runtime.db.transaction() as session:
        session.add(TestClock(id=clock_id, frozen_time=START, status="ready"))
        session.add(
            Plan(id=plan_id, name="Bench", amount_minor=3000, currency="usd",
                 billing_cycle="monthly", trial_days=0, features="[]", active=True)
        )  # fmt: skip
    async with runtime.db.transaction() as session:
        for n in range(count):
            body = SubscriptionBody(
                user_id=f"user_{tag}_{n}", plan_id=plan_id, payment_method_id="pm_card_visa",
                test_clock=clock_id,
            )  # fmt: skip
            await create_subscription(session, body, clock=engine.clock)
    await engine.advance_clock(clock_id, START + timedelta(hours=1))  # the first invoices
    engine.concurrency = concurrency
    started = time.perf_counter()
    await engine.advance_clock(clock_id, START + timedelta(days=31))
    elapsed = time.perf_counter() - started
    await runtime.stop()
    return count / elapsed


async def main() -> None:
    count = int(os.environ.get("BENCH_SUBSCRIPTIONS", "64"))
    with tempfile.TemporaryDirectory() as workdir:
        url = os.environ.get("DATABASE_URL", f"sqlite:///{workdir}/billing.db")
        await upgrade_async(url)
        tag = str(int(time.time()))
        sequential = await renewals_per_second(url, count // 4 or 1, 1, f"s{tag}")
        together = await renewals_per_second(url, count, 32, f"c{tag}")
    print(json.dumps({
        "bench": "billing renewals, 300 ms provider", "ratio": round(together / sequential, 2),
        "renewals_per_s": round(together, 1), "sequential_per_s": round(sequential, 1),
        "subscriptions": count, "database": url.split(":")[0],
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
