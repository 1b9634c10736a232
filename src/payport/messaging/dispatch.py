"""Bounded concurrency with per-key order: the heart of a fast, correct consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class KeyedDispatcher:
    """Runs jobs concurrently up to `limit`, but one at a time and in order per key.

    Provider calls take hundreds of milliseconds; overlapping them for
    different orders is what lets throughput be bound by the database.
    """

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def submit(self, key: str, job: Callable[[], Awaitable[None]]) -> None:
        """Wait for a free slot, then start `job` after the previous job of `key`."""
        await self._slots.acquire()
        previous = self._tails.get(key)
        task = asyncio.create_task(self._run(key, previous, job))
        self._tails[key] = task
        self._running.add(task)

    async def _run(
        self, key: str, previous: asyncio.Task[None] | None, job: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])
            await job()
        except Exception:
            log.exception("job failed key=%s", key)
        finally:
            self._slots.release()
            current = asyncio.current_task()
            if self._tails.get(key) is current:
                del self._tails[key]
            if current is not None:
                self._running.discard(current)

    async def join(self) -> None:
        """Wait for everything submitted so far."""
        while self._running:
            await asyncio.wait(list(self._running))

    async def cancel(self) -> None:
        """Abandon running jobs (shutdown past its grace period): like a crash, made safe
        by the inbox and provider idempotency keys."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
