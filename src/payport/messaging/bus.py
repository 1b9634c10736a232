"""Putting a command on the configured transport (HTTP routes and `payport send` use this)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from payport.coalesce import Coalescer
from payport.db import Database
from payport.messaging.envelope import Envelope, target_of
from payport.messaging.local import enqueue_command


class CommandBus(Protocol):
    async def submit(self, envelope: Envelope, body: bytes) -> None: ...


class LocalCommandBus:
    """Commands go into the `local_commands` table; the worker is woken at once.

    Concurrent submissions share one transaction; each caller returns only
    after the commit that holds its command.
    """

    def __init__(self, db: Database, on_submit: Callable[[], None] = lambda: None) -> None:
        self._db = db
        self._on_submit = on_submit
        self._inserts: Coalescer[tuple[Envelope, bytes], None] = Coalescer(self._insert_many)

    async def submit(self, envelope: Envelope, body: bytes) -> None:
        await self._inserts.submit((envelope, body))
        self._on_submit()

    async def _insert_many(self, commands: Sequence[tuple[Envelope, bytes]]) -> list[None]:
        async with self._db.transaction() as session:
            for envelope, body in commands:
                enqueue_command(session, body, target_of(envelope))
        return [None] * len(commands)
