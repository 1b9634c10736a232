"""Which Kafka offsets may be committed while commands finish out of order.

Commands of different keys run concurrently, so offset 7 may finish before
offset 5. Committing 8 then would lose 5 and 6 if the process died; the
commit point of a partition is therefore its lowest unfinished offset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class _Partition:
    __slots__ = ("done", "next_commit", "pending")

    def __init__(self) -> None:
        self.pending: deque[int] = deque()
        self.done: set[int] = set()
        self.next_commit: int | None = None


class OffsetTracker(Generic[P]):
    """Per partition: offsets started in order, finished in any order."""

    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}
        self._committed: dict[P, int] = {}

    def started(self, partition: P, offset: int) -> None:
        self._partitions.setdefault(partition, _Partition()).pending.append(offset)

    def finished(self, partition: P, offset: int) -> None:
        state = self._partitions.get(partition)
        if state is None:
            return  # revoked meanwhile: the new owner will see it again
        state.done.add(offset)
        while state.pending and state.pending[0] in state.done:
            head = state.pending.popleft()
            state.done.discard(head)
            state.next_commit = head + 1

    def committable(self) -> dict[P, int]:
        """Offsets to commit now: one past the last offset below the lowest unfinished one."""
        return {
            partition: state.next_commit
            for partition, state in self._partitions.items()
            if state.next_commit is not None and state.next_commit != self._committed.get(partition)
        }

    def committed(self, offsets: dict[P, int]) -> None:
        self._committed.update(offsets)

    def unfinished(self, partition: P | None = None) -> int:
        """Started but not finished, in one partition or in all."""
        if partition is not None:
            state = self._partitions.get(partition)
            return len(state.pending) if state else 0
        return sum(len(state.pending) for state in self._partitions.values())

    def finished_through(self, partition: P) -> int | None:
        """The next offset after everything finished in order (None before any)."""
        state = self._partitions.get(partition)
        return state.next_commit if state else None

    def forget(self, partitions: Iterable[P]) -> None:
        """Drop revoked partitions; their unfinished offsets are re-delivered elsewhere."""
        for partition in partitions:
            self._partitions.pop(partition, None)
            self._committed.pop(partition, None)
