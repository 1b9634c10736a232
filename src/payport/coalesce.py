"""Group commit without timers: concurrent callers share one transaction.

Whatever is queued while a batch runs forms the next batch, so a lone caller
waits for nothing and a crowd pays one BEGIN/COMMIT and one flush (executemany)
instead of one each. If a batch fails, its items are retried one by one, so a
bad item fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

BatchFn = Callable[[Sequence[T]], Awaitable[Sequence[R]]]

# Items per transaction. Under load a phase's queue refills while its batch runs, so the
# cap decides how many transactions a burst costs: at 1,024 commands in flight, 64 left
# ~650 answers queued behind the one-at-a-time settle batches (663/s); 256 drained them
# (1,185/s, and less CPU per command). Below the cap it changes nothing.
MAX_BATCH = 256


class Coalescer(Generic[T, R]):
    """`concurrency` > 1 lets that many batches run at once (on separate connections): a
    caller that arrives while a batch waits on the database starts the next one instead of
    waiting for it. Only for batches that share no rows, or lock them in one order."""

    def __init__(
        self, run_batch: BatchFn[T, R], *, max_batch: int = MAX_BATCH, concurrency: int = 1
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._drainers: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak refs

    async def submit(self, item: T) -> R:
        """Queue `item`; returns its result once the transaction holding it committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if len(self._drainers) < self._concurrency:
            self._drainers.add(asyncio.get_running_loop().create_task(self._drain()))
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._run(batch)
        finally:
            # No await between the last look at the queue and leaving the set: a caller
            # queueing after that look sees a free place and starts a drainer of its own.
            task = asyncio.current_task()
            if task is not None:
                self._drainers.discard(task)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run_batch([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _, future = batch[0]
                if not future.done():
                    future.set_exception(exc)
                return
            log.warning("batch of %d failed; retrying its items one by one", len(batch))
            for single in batch:
                await self._run([single])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
