"""The ledger at size: 1,000,000 payments with their entries on PostgreSQL.

Seeding builds each payment's entries with payport's own posting rules
(`payment_entries.opening`, what migration 0002 uses) and writes them with
COPY, so it measures the rules plus PostgreSQL's bulk path. Reads go through
a real `payport serve`: `GET /history/{user_id}` and `GET /api/v1/balances/…`
against `GET /payment/{payment_id}/details` (a primary-key lookup of the same
data), in the same run.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from rich.console import Console

from bench.loadgen import run_load
from bench.pg import fresh_database, reachable
from bench.server import payport_server
from payport.ledger import payment_entries
from payport.payments.models import Payment

PAYMENTS = int(os.environ.get("BENCH_LEDGER_PAYMENTS", "1000000"))
CUSTOMERS = 50_000
RUNNERS = 5_000
CHUNK = 20_000
console = Console()
Report = Callable[..., None]

PAYMENT_COLUMNS = (
    "id", "order_id", "customer_user_id", "amount_minor", "currency", "status",
    "amount_captured_minor", "runner_id", "fee_minor", "transfer_id", "transfer_amount_minor",
    "amount_refunded_minor", "disputed", "created_at", "updated_at",
)  # fmt: skip


def payment(index: int, now: datetime) -> Payment:
    """A mix of paths: 60% released, 25% held, 10% refunded after release, 5% declined."""
    amount = 500 + index % 9_500
    fee = amount // 10
    kind = index % 20
    fields: dict[str, Any] = {
        "id": str(uuid.UUID(int=index + 1)),
        "order_id": f"order-{index}",
        "customer_user_id": f"user_{index % CUSTOMERS}",
        "amount_minor": amount,
        "currency": "usd",
        "disputed": False,
        "created_at": now,
        "updated_at": now,
    }
    nothing_moved = {
        "amount_captured_minor": 0,
        "runner_id": None,
        "fee_minor": 0,
        "transfer_id": None,
        "transfer_amount_minor": 0,
        "amount_refunded_minor": 0,
    }
    released = {"amount_captured_minor": amount, "runner_id": f"runner_{index % RUNNERS}",
                "fee_minor": fee, "transfer_id": f"tr_{index}",
                "transfer_amount_minor": amount - fee, "amount_refunded_minor": 0}  # fmt: skip
    if kind < 12:
        fields |= released | {"status": "SUCCEEDED"}
    elif kind < 17:
        fields |= nothing_moved | {"status": "AUTHORIZED"}
    elif kind < 19:
        fields |= released | {"status": "REVERTED", "amount_refunded_minor": amount}
    else:
        fields |= nothing_moved | {"status": "FAILED"}
    return Payment(**fields)


class Seeder:
    """Payments and their entries, postings and balance rows, written with COPY."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self._next_entry = 1
        self._balances: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
        self.entries = 0

    async def chunk(self, indexes: range, now: datetime) -> None:
        payments, entries, postings = [], [], []
        for index in indexes:
            row = payment(index, now)
            payments.append(tuple(getattr(row, column) for column in PAYMENT_COLUMNS))
            for draft in payment_entries.opening(row):
                entry_id, self._next_entry = self._next_entry, self._next_entry + 1
                entries.append((entry_id, draft.cause, draft.kind.value, draft.payment_id, now))
                spread_by = draft.payment_id or draft.cause
                for line in draft.lines:
                    postings.append(
                        (entry_id, line.account.code, draft.currency, line.amount_minor,
                         line.payment_count)
                    )  # fmt: skip
                    key = (line.account.code, draft.currency, line.account.bucket(spread_by))
                    self._balances[key][0] += line.amount_minor
                    self._balances[key][1] += line.payment_count
        copy = self._connection.copy_records_to_table
        await copy("payments", records=payments, columns=PAYMENT_COLUMNS)
        await copy(
            "ledger_entries",
            records=entries,
            columns=("id", "cause", "kind", "payment_id", "created_at"),
        )
        await copy(
            "ledger_postings",
            records=postings,
            columns=("entry_id", "account", "currency", "amount_minor", "payment_count"),
        )
        self.entries += len(entries)

    async def finish(self) -> None:
        await self._connection.copy_records_to_table(
            "ledger_balances",
            records=[(a, c, b, amount, n) for (a, c, b), (amount, n) in self._balances.items()],
            columns=("account", "currency", "bucket", "balance_minor", "payment_count"),
        )
        await self._connection.execute(
            "SELECT setval(pg_get_serial_sequence('ledger_entries', 'id'), $1)", self._next_entry
        )
        await self._connection.execute("ANALYZE")


async def seed(url: str) -> tuple[float, int]:
    """Seed PAYMENTS payments; returns (payments/s, entries written)."""
    connection = await asyncpg.connect(url)
    seeder = Seeder(connection)
    now = datetime.now(UTC)
    started = time.perf_counter()
    try:
        for start in range(0, PAYMENTS, CHUNK):
            await seeder.chunk(range(start, min(PAYMENTS, start + CHUNK)), now)
        await seeder.finish()
    finally:
        await connection.close()
    return PAYMENTS / (time.perf_counter() - started), seeder.entries


async def run(report: Report) -> None:
    problem = await reachable()
    if problem:
        console.print(f"[yellow]Ledger bench skipped: {problem}")
        return
    async with fresh_database("payport_ledger_bench") as url:
        rate, entries = await seed(url)
        console.print(f"seeded {PAYMENTS:,} payments and {entries:,} entries at {rate:,.0f}/s")
        with payport_server({"DATABASE_URL": url}) as port:
            lookup = await run_load("127.0.0.1", port, f"/payment/{uuid.UUID(int=8)}/details")
            history = await run_load("127.0.0.1", port, "/history/user_7")
            balance = await run_load("127.0.0.1", port, "/api/v1/balances/runner:runner_7")
    for name, result in (("history", history), ("balance", balance)):
        report(
            f"ledger_{name}_read_vs_primary_key_lookup",
            result.p50_ms / lookup.p50_ms,
            p50_ms=round(result.p50_ms, 2),
            p99_ms=round(result.p99_ms, 2),
            lookup_p50_ms=round(lookup.p50_ms, 2),
            lookup_p99_ms=round(lookup.p99_ms, 2),
            p99_ratio=round(result.p99_ms / lookup.p99_ms, 3),
            req_s=round(result.rate),
            errors=result.errors + lookup.errors,
            payments=PAYMENTS,
            seeded_payments_per_s=round(rate),
        )


if __name__ == "__main__":
    import json

    def _print(name: str, ratio: float, **figures: Any) -> None:
        print(json.dumps({"bench": name, "ratio": round(ratio, 3), **figures}), flush=True)

    asyncio.run(run(_print))
