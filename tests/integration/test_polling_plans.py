"""The queries background loops repeat many times a second keep using their partial indexes.

asyncpg prepares every statement, and after five executions PostgreSQL may switch a
prepared statement to a generic plan, planned without the parameter values. A
predicate bound as `status = $1` then cannot match a partial index's
`WHERE status = 'pending'`, and the poll walks the whole table, slower with every
row processed (112 ms per poll at 43,000 webhook events, in a bench run). Each
query here is prepared with generic plans forced and its plan must name the index.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Select, text
from sqlalchemy.dialects import postgresql

from payport.checkout.calls import pending_calls
from payport.db import Database
from payport.messaging.local import pending_commands
from payport.providers.sandbox.webhooks import due_deliveries
from payport.webhooks.service import _PENDING_EVENTS

# Enough rows that a plan over the whole table costs more than one over a few index entries.
TABLE_ROWS = 5_000


@pytest.fixture
async def connection(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose plans are all generic, with the polled tables full of done rows."""
    conn = await asyncpg.connect(postgres_url)
    transaction = conn.transaction()
    await transaction.start()
    try:
        await _fill_with_done_rows(conn)
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        yield conn
    finally:
        await transaction.rollback()  # leaves the shared database as the test found it
        await conn.close()


async def _fill_with_done_rows(conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO provider_events (event_id, event_type, object_id, body, status, attempts,"
        " received_at) SELECT 'evt_plan_' || g, 'payment_intent.succeeded', 'pi_' || g, '{}',"
        " 'processed', 1, $1 FROM generate_series(1, $2) g",
        now,
        TABLE_ROWS,
    )
    await conn.execute(
        "INSERT INTO sandbox_webhook_deliveries (event_id, event_type, body, attempts,"
        " next_attempt_at, delivered_at) SELECT 'evt_plan_' || g, 'payment_intent.succeeded',"
        " '{}', 1, $1, $1 FROM generate_series(1, $2) g",
        now,
        TABLE_ROWS,
    )
    await conn.execute(
        "INSERT INTO local_commands (body, status, received_at)"
        " SELECT '{}', 'done', $1 FROM generate_series(1, $2) g",
        now,
        TABLE_ROWS,
    )
    await conn.execute("ANALYZE provider_events, sandbox_webhook_deliveries, local_commands")


async def generic_plan(conn: asyncpg.Connection, statement: Select[Any]) -> str:
    """EXPLAIN of `statement` as payport's driver runs it, planned without its values."""
    compiled = statement.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
    values = [compiled.params[name] for name in compiled.positiontup or ()]
    await conn.execute(f"PREPARE polled AS {compiled}")
    try:
        literals = ", ".join(_literal(value) for value in values)
        rows = await conn.fetch(
            f"EXPLAIN EXECUTE polled({literals})" if values else "EXPLAIN EXECUTE polled"
        )
    finally:
        await conn.execute("DEALLOCATE polled")
    return "\n".join(row[0] for row in rows)


def _literal(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    return "'" + str(value).replace("'", "''") + "'"


async def test_pending_webhook_events_are_read_through_their_partial_index(
    connection: asyncpg.Connection,
) -> None:
    plan = await generic_plan(connection, _PENDING_EVENTS.params(limit=500, offset=0))
    assert "ix_provider_events_pending" in plan, plan


async def test_pending_local_commands_are_read_through_their_partial_index(
    connection: asyncpg.Connection,
) -> None:
    plan = await generic_plan(connection, pending_commands(100))
    assert "ix_local_commands_pending" in plan, plan


async def test_pending_order_calls_are_claimed_through_their_partial_index(
    connection: asyncpg.Connection,
) -> None:
    plan = await generic_plan(connection, pending_calls(100))
    assert "ix_checkout_order_calls_pending" in plan, plan


async def test_due_sandbox_webhooks_are_claimed_through_the_undelivered_index(
    connection: asyncpg.Connection,
) -> None:
    plan = await generic_plan(connection, due_deliveries(datetime.now(UTC), 500))
    assert "ix_sandbox_webhook_deliveries_undelivered" in plan, plan


async def test_payport_plans_every_statement_with_its_values(postgres_url: str) -> None:
    """payport's connections never fall back to generic plans (plan_cache_mode).

    With PostgreSQL's default, five executions against an empty table settle a prepared
    statement on a generic plan, and one made while the table was small (a sequential
    scan) stays while the table grows, until autovacuum analyzes it. Measured in the
    Kafka bench: the authorize start's `order_id IN (256 values)` took 270-490 ms at
    60,000 payments. This checks the driver's own counters of plans per statement.
    """
    db = Database(postgres_url)
    table = f"plan_probe_{uuid.uuid4().hex[:8]}"
    probe = text(f"SELECT id FROM {table} WHERE key IN (:a, :b, :c)")
    try:
        async with db.writer.connect() as conn:
            await conn.execute(text(f"CREATE TABLE {table} (id serial PRIMARY KEY, key text)"))
            await conn.execute(text(f"CREATE INDEX ON {table} (key)"))
            for _ in range(10):
                await conn.execute(probe, {"a": "k1", "b": "k2", "c": "k3"})
            plans = (
                await conn.execute(
                    text(
                        "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                        " WHERE statement LIKE :probe"
                    ),
                    {"probe": f"SELECT id FROM {table}%"},
                )
            ).one()
            await conn.rollback()
    finally:
        await db.dispose()
    assert plans == (0, 10)
