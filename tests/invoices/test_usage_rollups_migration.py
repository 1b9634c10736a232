"""Records from before the rollups are folded in by the migration, and the models match it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, insert

from payport.db import Base, Database
from payport.migrate import upgrade_async
from payport.usage import service
from payport.usage.models import UsageRecord
from payport.usage.rollups import record_count
from tests.invoices.usage_truth import add_subscriptions, stored_records, summary_of

BEFORE = "0011_invoice_payments"  # the revision before 0013_usage_rollups
T0 = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)
OURS = {"usage_rollups", "usage_record_counts", "ix_billing_subscriptions_started_at",
        "ix_billing_subscriptions_ended_at", "ix_billing_invoices_status_paid_at"}  # fmt: skip


def old_records(n: int) -> list[dict[str, object]]:
    """Across hours, two subscriptions, three metrics, with timestamp ties every few rows."""
    return [
        {"event_id": f"old-{i}", "subscription_id": f"sub_old_{i % 2}",
         "metric": ("api_calls", "seats", "storage_gb")[i % 3], "quantity": (i * 37) % 101,
         "recorded_at": T0 + timedelta(minutes=(i * 7919) % 600, microseconds=i % 4),
         "created_at": T0}
        for i in range(n)
    ]  # fmt: skip


async def test_migration_folds_existing_records_into_rollups(empty_database_url: str) -> None:
    await upgrade_async(empty_database_url, BEFORE)
    db = Database(empty_database_url)
    try:
        await add_subscriptions(db, ["sub_old_0", "sub_old_1"], T0)
        async with db.transaction() as session:
            await session.execute(insert(UsageRecord), old_records(500))
        await upgrade_async(empty_database_url)
        async with db.read() as session:
            assert await record_count(session) == 500
            for sub_id in ("sub_old_0", "sub_old_1"):
                records = await stored_records(session, sub_id)
                for start, end in [(T0, T0 + timedelta(days=1)),
                                   (T0 + timedelta(minutes=95, seconds=7),
                                    T0 + timedelta(minutes=401))]:  # fmt: skip
                    totals = await service.aggregate(session, sub_id, start=start, end=end)
                    found = {m: {"sum": t.sum, "max": t.max, "count": t.count, "last": t.last}
                             for m, t in sorted(totals.items())}  # fmt: skip
                    assert found == summary_of(records, start, end), (sub_id, start, end)
    finally:
        await db.dispose()


def _our_differences(connection: Connection) -> list[object]:
    """Autogenerate's differences between the migrated schema and the models, in what 0013 adds."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    diffs = compare_metadata(context, Base.metadata)
    return [d for d in diffs if any(f"'{table}'" in repr(d) for table in OURS)]


async def test_rollup_tables_match_their_models(empty_database_url: str) -> None:
    await upgrade_async(empty_database_url)
    db = Database(empty_database_url)
    try:
        async with db.writer.connect() as connection:
            assert await connection.run_sync(_our_differences) == []
    finally:
        await db.dispose()
