"""The commit point of a partition never passes an unfinished command."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from payport.messaging.offsets import OffsetTracker


def test_nothing_is_committable_before_anything_finishes() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.started("p0", 5)
    tracker.started("p0", 6)
    assert tracker.committable() == {}


def test_a_later_offset_finishing_first_does_not_move_the_commit_point() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.started("p0", offset)
    tracker.finished("p0", 7)
    assert tracker.committable() == {}
    tracker.finished("p0", 5)
    assert tracker.committable() == {"p0": 6}
    tracker.finished("p0", 6)
    assert tracker.committable() == {"p0": 8}


def test_partitions_are_independent_and_commits_are_not_repeated() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.started("p0", 0)
    tracker.started("p1", 10)
    tracker.finished("p1", 10)
    assert tracker.committable() == {"p1": 11}
    tracker.committed({"p1": 11})
    assert tracker.committable() == {}
    assert tracker.unfinished() == 1


def test_a_revoked_partition_is_forgotten() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.started("p0", 3)
    tracker.forget(["p0"])
    tracker.finished("p0", 3)  # finished after revocation: the new owner redoes it
    assert tracker.committable() == {}
    assert tracker.unfinished() == 0


@given(st.permutations(list(range(30))), st.integers(min_value=0, max_value=30))
def test_commit_point_is_the_lowest_unfinished_offset(order: list[int], finished: int) -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in range(30):
        tracker.started("p", offset)
    done = set(order[:finished])
    for offset in order[:finished]:
        tracker.finished("p", offset)
    lowest_unfinished = min(set(range(30)) - done, default=30)
    expected = {"p": lowest_unfinished} if lowest_unfinished > 0 else {}
    assert tracker.committable() == expected
