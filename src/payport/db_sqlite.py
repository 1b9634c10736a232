"""SQLite run on the event loop's own thread, behind SQLAlchemy's asyncio API.

aiosqlite hands every cursor call to a worker thread; a payment-sized
transaction makes ~24 such hand-offs, which cost more than the SQL itself
(measured here: ~300 tx/s through aiosqlite). SQLite statements take
microseconds, so payport runs the stdlib driver inline instead: the dialect
below is the stdlib pysqlite dialect flagged as async, so AsyncSession works
unchanged and `greenlet_spawn` simply never has to wait. Pools must be
asyncio-aware (AsyncAdaptedQueuePool) so coroutines queue for the single
writer connection instead of blocking the loop.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

DRIVER = "payport_inline"


class _InlineCursor(sqlite3.Cursor):
    async def _async_soft_close(self) -> None:
        """AsyncSession's hook for adapted cursors; rows are already buffered here."""


class _InlineConnection(sqlite3.Connection):
    def cursor(self, factory: Any = _InlineCursor) -> Any:
        return super().cursor(factory)


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite, declared async: calls complete immediately on the loop thread."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        cparams.setdefault("factory", _InlineConnection)
        return super().connect(*cargs, **cparams)


registry.register(f"sqlite.{DRIVER}", __name__, "InlineSQLiteDialect")
