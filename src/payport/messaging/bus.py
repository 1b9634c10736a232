"""Putting a command on the configured transport (HTTP routes and `payport send` use this)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from payport.db import Database
from payport.messaging.envelope import Envelope, target_of
from payport.messaging.local import enqueue_command


class CommandBus(Protocol):
    async def submit(self, envelope: Envelope, body: bytes) -> None: ...


class LocalCommandBus:
    """Commands go into the `local_commands` table; the worker is woken at once."""

    def __init__(self, db: Database, on_submit: Callable[[], None] = lambda: None) -> None:
        self._db = db
        self._on_submit = on_submit

    async def submit(self, envelope: Envelope, body: bytes) -> None:
        async with self._db.transaction() as session:
            enqueue_command(session, body, target_of(envelope))
        self._on_submit()
