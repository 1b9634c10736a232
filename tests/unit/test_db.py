"""Database plumbing: driver choice, the lean read path, WAL checkpoints off the loop."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import bindparam, select, text

from payport.db import Database, async_url
from payport.migrate import upgrade_async
from payport.payments.models import Payment


def test_async_url_picks_the_driver() -> None:
    assert async_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("sqlite:///./payport.db") == "sqlite+payport_inline:///./payport.db"


async def test_fetch_one_reads_committed_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    await upgrade_async(url)
    db = Database(url)
    table = Payment.__table__
    by_order = select(table.c.id, table.c.amount_minor).where(
        table.c.order_id == bindparam("order_id")
    )
    try:
        assert await db.fetch_one(by_order, {"order_id": "o-1"}) is None
        async with db.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO payments (id, order_id, amount_minor, currency, status,"
                    " amount_captured_minor, fee_minor, transfer_amount_minor,"
                    " amount_refunded_minor, disputed, created_at, updated_at) VALUES"
                    " ('p-1', 'o-1', 1234, 'usd', 'AUTHORIZED', 0, 0, 0, 0, 0,"
                    " '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
                )
            )
        assert await db.fetch_one(by_order, {"order_id": "o-1"}) == {
            "id": "p-1",
            "amount_minor": 1234,
        }
    finally:
        await db.dispose()


def file_size(path: Path) -> int:
    return path.stat().st_size


async def test_checkpoint_folds_the_wal_into_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/wal.sqlite"
    await upgrade_async(url)
    db = Database(url)
    try:
        for i in range(50):
            async with db.transaction() as session:
                await session.execute(
                    text("INSERT INTO local_commands (body, status, received_at) VALUES"
                         " (:body, 'pending', '2026-01-01 00:00:00.000000')"),
                    {"body": "x" * 2000 + str(i)},
                )  # fmt: skip
        # Commits never checkpoint by themselves: the rows are only in the WAL so far.
        before = file_size(tmp_path / "wal.sqlite")
        assert file_size(tmp_path / "wal.sqlite-wal") > 100_000
        await db.checkpoint()
        assert file_size(tmp_path / "wal.sqlite") >= before + 100_000
    finally:
        await db.dispose()
