"""Database plumbing: driver choice, the lean read path, WAL checkpoints off the loop."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects import postgresql

from payport.db import Database, async_url, padded
from payport.migrate import upgrade_async
from payport.payments.models import Payment


def test_async_url_picks_the_driver() -> None:
    assert async_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("sqlite:///./payport.db") == "sqlite+payport_inline:///./payport.db"


def test_batches_of_any_size_share_a_few_prepared_statements() -> None:
    """Each distinct SQL text is a statement the driver prepares (a round trip and a plan)."""

    def sql_for(size: int) -> str:
        ids = [f"p-{i}" for i in range(size)]
        statement = select(Payment.id).where(Payment.id.in_(padded(ids)))
        compiled = statement.compile(
            dialect=postgresql.dialect(), compile_kwargs={"render_postcompile": True}
        )
        return str(compiled)

    assert len({sql_for(size) for size in range(1, 65)}) == 7  # 1, 2, 4, ..., 64
    assert set(padded(["a", "b", "c"])) == {"a", "b", "c"} and len(padded(["a", "b", "c"])) == 4
    assert padded([]) == []


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
