"""Database engines and units of work for SQLite (embedded) and PostgreSQL.

On SQLite every write goes through one connection that begins with
`BEGIN IMMEDIATE`, so writers queue in-process instead of failing with
"database is locked"; reads use a small pool of their own. On PostgreSQL one
pool of ~16 connections serves both.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    MetaData,
    Select,
    String,
    event,
    literal_column,
    make_url,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from payport.db_sqlite import DRIVER as SQLITE_DRIVER

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

T = TypeVar("T")

# An auto-incrementing 64-bit key that is still SQLite's rowid.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both databases (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def padded(values: Sequence[T]) -> list[T]:
    """`values` for an IN list, repeated up to the next power of two.

    `x IN (...)` is rendered with one parameter per value, so every batch size is
    another statement for the driver to prepare (a round trip and a plan on
    PostgreSQL): under coalesced batches of 1-64 items that was ~40 % of statement
    lookups at 64 commands in flight. Padding leaves a handful of sizes per query.
    """
    if not values:
        return []
    size = 1 << (len(values) - 1).bit_length()
    return [*values, *(values[-1] for _ in range(size - len(values)))]


def dialect_insert(dialect: str) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (both databases speak it).

    Statements built on it belong in a `functools.cache`d function of the dialect's
    name: building one per call, and deriving its cache key, costs more of
    SQLAlchemy's CPU than running it.
    """
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def sql_literal(value: str) -> ColumnElement[str]:
    """`value` written into the SQL text instead of bound, for a partial index's predicate.

    A partial index `WHERE status = 'pending'` serves only queries that name the same
    constant. Bound as `status = $1`, it is invisible to PostgreSQL's generic plan for
    a prepared statement (used after five executions), which then scans the table:
    measured at 43,000 webhook events, 112 ms per poll of the pending ones instead of
    15 ms, and growing with the table. payport's own connections plan with the values
    (`Database`), but the literal keeps a poll indexable under any plan cache setting.
    """
    escaped = value.replace("'", "''")
    return literal_column(f"'{escaped}'", type_=String)


def async_url(url: str) -> str:
    """Pick the async driver for a plain `sqlite:///` or `postgresql://` URL."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite://"):
        return f"sqlite+{SQLITE_DRIVER}://" + url.removeprefix("sqlite://")
    return url


def _configure_sqlite(engine: AsyncEngine, *, writer: bool, synchronous: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Checkpoints copy the WAL into the database file (tens of ms); on the loop thread
        # they would stall every request, so Database.checkpoint() runs them in a thread.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    if writer:  # readers stay in autocommit: every SELECT sees the latest commit

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Owns the engines; hands out transactions (write) and read sessions."""

    def __init__(
        self, url: str, *, pool_size: int = 16, sqlite_synchronous: str = "NORMAL"
    ) -> None:
        """`sqlite_synchronous`: NORMAL (WAL: a commit survives a killed process; an OS crash
        may lose the last ones) or FULL (fsync per commit, several times slower)."""
        if sqlite_synchronous not in ("NORMAL", "FULL"):
            raise ValueError("sqlite_synchronous must be NORMAL or FULL")
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.writer = create_async_engine(
                self.url,
                poolclass=AsyncAdaptedQueuePool,
                pool_size=1,
                max_overflow=0,
                pool_timeout=120,
            )
            _configure_sqlite(self.writer, writer=True, synchronous=sqlite_synchronous)
            self.reader = create_async_engine(
                self.url,
                poolclass=AsyncAdaptedQueuePool,
                pool_size=4,
                max_overflow=4,
                pool_timeout=120,
            )
            _configure_sqlite(self.reader, writer=False, synchronous=sqlite_synchronous)
        else:
            self.writer = create_async_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=4,
                pool_timeout=120,
                # No pre-ping: it costs a round trip per checkout (6% of the worker's CPU
                # under load). A connection broken by a database restart fails once and is
                # replaced; background loops retry, and HTTP callers get a clear 5xx.
                pool_recycle=1800,
                # Statements per connection the driver keeps prepared (asyncpg's default is
                # 100): batched queries come in several sizes each (see `padded`).
                # Plans made with the values, every time. payport's tables start empty and
                # grow fast: a generic plan PostgreSQL settled on while a table was small
                # stays a sequential scan until autovacuum analyzes it (measured: the
                # authorize start's `order_id IN (256 values)` took 270-490 ms at 60,000
                # payments, and 1,024 commands in flight fell from ~1,000 to ~590/s).
                # Replanning costs ~0.1-1.5 ms per statement, far less.
                connect_args={
                    "prepared_statement_cache_size": 500,
                    "server_settings": {"plan_cache_mode": "force_custom_plan"},
                },
            )
            self.reader = self.writer
        self._compiled: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._sqlite_reads: sqlite3.Connection | None = None
        self._write_sessions = async_sessionmaker(self.writer, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.reader, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        async with self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (on SQLite it never takes the write lock)."""
        async with self._read_sessions() as session, session.begin():
            yield session

    async def fetch_one(
        self, statement: Select[Any], params: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """One row of a hot read, straight through the driver (no session, no ORM).

        `statement` should be a module-level constant using bindparam(); it is
        compiled once. Values come back as the driver returns them.
        """
        sql, names = self._compile(statement)
        args = [params[name] for name in names]
        if self.is_sqlite:
            cursor = self._sqlite_read_connection().execute(sql, args)
            row = cursor.fetchone()
            if row is None:
                return None
            return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}
        async with self.reader.connect() as connection:
            raw = await connection.get_raw_connection()
            record = await raw.driver_connection.fetchrow(sql, *args)  # type: ignore[union-attr]
        return dict(record) if record is not None else None

    async def fetch_all(
        self, statement: Select[Any], params: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Every row of a hot read, the way `fetch_one` reads one."""
        sql, names = self._compile(statement)
        args = [params[name] for name in names]
        if self.is_sqlite:
            cursor = self._sqlite_read_connection().execute(sql, args)
            columns = [column[0] for column in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        async with self.reader.connect() as connection:
            raw = await connection.get_raw_connection()
            records = await raw.driver_connection.fetch(sql, *args)  # type: ignore[union-attr]
        return [dict(record) for record in records]

    def _compile(self, statement: Select[Any]) -> tuple[str, tuple[str, ...]]:
        key = id(statement)
        if key not in self._compiled:
            compiled = statement.compile(dialect=self.reader.dialect)
            names = tuple(compiled.positiontup or ())
            self._compiled[key] = (str(compiled), names)
        return self._compiled[key]

    def _sqlite_read_connection(self) -> sqlite3.Connection:
        """On the inline driver reads never yield, so one shared connection is enough."""
        if self._sqlite_reads is None:
            path = make_url(self.url).database or ":memory:"
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout=30000")
            self._sqlite_reads = connection
        return self._sqlite_reads

    async def checkpoint(self) -> None:
        """Fold the SQLite WAL back into the database file, off the event loop."""
        if self.is_sqlite:
            await asyncio.to_thread(self._checkpoint_blocking)

    def _checkpoint_blocking(self) -> None:
        path = make_url(self.url).database or ":memory:"
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
            connection.execute("PRAGMA busy_timeout=5000")
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def dispose(self) -> None:
        if self._sqlite_reads is not None:
            self._sqlite_reads.close()
            self._sqlite_reads = None
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
