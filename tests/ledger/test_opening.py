"""Migration 0002 gives payments from before the ledger the entries they would have posted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, inspect, select

from payport.db import Database
from payport.ledger import repository
from payport.ledger.check import check
from payport.ledger.models import LedgerBalance
from payport.migrate import upgrade_async
from payport.payments.models import Payment
from tests.harness import Harness, nested_authorize
from tests.ledger.helpers import authorized, released, reverted, run

USERS = ["user_alice", "user_carol", "runner_bob"]


async def payments_on_every_path(harness: Harness) -> None:
    await authorized(harness, "order-o-held")
    await released(harness, "order-o-paid")
    await reverted(harness, await released(harness, "order-o-refunded"))
    await reverted(harness, await authorized(harness, "order-o-canceled"))
    await run(
        harness, "authorize_payment", nested_authorize("order-o-no", 900, "pm_card_chargeDeclined")
    )
    await harness.command(
        "authorize_payment", nested_authorize("order-o-3ds", 800, "pm_card_authenticationRequired")
    )
    await harness.drain()
    created = await harness.client.post(
        "/api/v1/payments",
        json={
            "order_id": "order-o-partial",
            "amount": 2500,
            "payment_method": "pm_card_visa",
            "customer_user_id": "user_carol",
        },
    )
    partial = created.json()["id"]
    await harness.client.post(
        f"/api/v1/payments/{partial}/capture", json={"amount_to_capture": 2000}
    )


async def balances(db: Database) -> dict[tuple[str, str], tuple[int, int]]:
    """Every account's non-zero balance (amount, payment count) per currency."""
    async with db.read() as session:
        accounts = (await session.scalars(select(LedgerBalance.account).distinct())).all()
        rows = await repository.balances(session, list(accounts))
    return {
        (b.account, b.money.currency): (b.money.amount_minor, b.payment_count)
        for b in rows
        if b.money.amount_minor or b.payment_count
    }


async def totals(db: Database) -> dict[str, Any]:
    return {user: await repository.user_totals(db, user) for user in USERS}


async def test_existing_payments_get_the_entries_they_would_have_posted(
    harness: Harness, empty_database_url: str
) -> None:
    await payments_on_every_path(harness)
    async with harness.runtime.db.read() as session:
        rows = (await session.execute(select(Payment.__table__))).mappings().all()
    assert len(rows) == 7

    await upgrade_async(empty_database_url, "0001")
    old = Database(empty_database_url)
    try:
        async with old.transaction() as session:
            columns_0001 = await session.run_sync(
                lambda sync: {c["name"] for c in inspect(sync.connection()).get_columns("payments")}
            )
            await session.execute(
                insert(Payment.__table__),
                [{k: v for k, v in row.items() if k in columns_0001} for row in rows],
            )
        await upgrade_async(empty_database_url)  # 0002: tables, then opening entries

        assert await balances(old) == await balances(harness.runtime.db)
        assert await totals(old) == await totals(harness.runtime.db)
        report = await check(old)
        assert report.ok, [str(p) for p in report.problems]
    finally:
        await old.dispose()
