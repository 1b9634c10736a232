"""Summaries and the record count come from rollups; they must equal the records themselves.

Random batches repeat event ids (within a batch and across batches, with other
quantities and times), arrive out of time order, tie on timestamps and spread
over several hours, metrics and subscriptions; random windows cut hours
anywhere, on record times and on hour boundaries. Then many overlapping
batches at once (on PostgreSQL, concurrent transactions) must all succeed
and still add up exactly.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import Harness
from tests.invoices.usage_truth import (
    add_subscriptions,
    record_total,
    stored_records,
    summary_of,
    window_params,
)

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
SPAN_MS = 4 * 3600 * 1000  # four hours of usage
METRICS = ("api_calls", "seats", "storage_gb")
SUBSCRIPTIONS = ("sub_roll_a", "sub_roll_b")

# Few distinct times (ties), hour boundaries, and anywhere to the millisecond.
offset_ms = st.one_of(
    st.sampled_from([0, 1, 3_599_999, 3_600_000, 3_600_001, 7_200_000, 9_000_000]),
    st.integers(0, SPAN_MS),
)
event = st.tuples(
    st.integers(0, 40),  # event number: a small range, so ids repeat
    st.sampled_from(SUBSCRIPTIONS),
    st.sampled_from(METRICS),
    st.integers(0, 10_000),
    offset_ms,
)
batches = st.lists(st.lists(event, min_size=1, max_size=15), min_size=1, max_size=6)
window_edge = st.one_of(offset_ms, st.integers(-3_600_000, SPAN_MS + 3_600_000))


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def body(prefix: str, n: int, sub_id: str, metric: str, quantity: int, ms: int) -> dict[str, Any]:
    return {"event_id": f"{prefix}-{n}", "subscription_id": sub_id, "metric": metric,
            "quantity": quantity, "timestamp": at(ms).isoformat()}  # fmt: skip


async def summary(harness: Harness, sub_id: str, start: datetime, end: datetime) -> Any:
    response = await harness.client.get(
        f"/api/v1/usage/subscriptions/{sub_id}", params=window_params(start, end)
    )
    assert response.status_code == 200, response.text
    return response.json()["metrics"]


async def assert_summaries_match_records(
    harness: Harness, windows: list[tuple[datetime, datetime]]
) -> None:
    for sub_id in SUBSCRIPTIONS:
        async with harness.runtime.db.read() as session:
            records = await stored_records(session, sub_id)
        for start, end in windows:
            expected = summary_of(records, start, end)
            assert await summary(harness, sub_id, start, end) == expected, (sub_id, start, end)


async def assert_count_matches_records(harness: Harness) -> None:
    stats = (await harness.client.get("/api/v1/stats")).json()
    assert stats["usage_records"] == await record_total(harness.runtime.db)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sent=batches, edges=st.lists(st.tuples(window_edge, window_edge), max_size=6))
async def test_rollup_summaries_equal_the_records(
    harness: Harness, sent: list[list[tuple[int, str, str, int, int]]],
    edges: list[tuple[int, int]],
) -> None:  # fmt: skip
    await harness.reset()
    await add_subscriptions(harness.runtime.db, list(SUBSCRIPTIONS), T0)
    prefix = uuid.uuid4().hex[:8]
    for batch in sent:
        events = [body(prefix, *row) for row in batch]
        response = await harness.client.post("/api/v1/usage", json={"events": events})
        assert response.status_code == 201, response.text
    times = sorted({ms for batch in sent for *_, ms in batch})
    windows = [(at(-1), at(SPAN_MS + 1)), (at(0), at(SPAN_MS))]  # everything; the last left out
    windows += [(at(min(a, b)), at(max(a, b) + 1)) for a, b in edges]
    windows += [(at(times[0]), at(times[-1])), (at(times[len(times) // 2]), at(times[-1] + 1))]
    await assert_summaries_match_records(harness, windows)
    await assert_count_matches_records(harness)


def overlapping_batches(prefix: str, seed: int) -> list[list[dict[str, Any]]]:
    """30 batches over 300 events; every event is in two or three batches, in shuffled order."""
    rng = random.Random(seed)
    events = [
        body(prefix, n, SUBSCRIPTIONS[n % 2], METRICS[n % 3], rng.randint(0, 500),
             rng.randint(0, 3 * 3600 * 1000))
        for n in range(300)
    ]  # fmt: skip
    batches: list[list[dict[str, Any]]] = [[] for _ in range(30)]
    for item in events:
        for index in rng.sample(range(30), rng.choice([2, 3])):
            batches[index].append(item)
    for batch in batches:
        rng.shuffle(batch)
    return [batch for batch in batches if batch]


async def test_concurrent_overlapping_batches_count_each_event_once(harness: Harness) -> None:
    """On PostgreSQL these are concurrent transactions racing on the same event ids and the
    same rollup rows; in one order for all writers, none deadlocks and nothing is lost."""
    await add_subscriptions(harness.runtime.db, list(SUBSCRIPTIONS), T0)
    batches = overlapping_batches(uuid.uuid4().hex[:8], seed=8)
    responses = await asyncio.gather(
        *(harness.client.post("/api/v1/usage", json={"events": batch}) for batch in batches)
    )
    assert [r.status_code for r in responses] == [201] * len(batches), [
        r.text for r in responses if r.status_code != 201
    ]
    assert sum(r.json()["accepted"] for r in responses) == 300
    assert await record_total(harness.runtime.db) == 300
    windows = [(at(0), at(3 * 3600 * 1000 + 1)), (at(1_234_567), at(8_765_432))]
    await assert_summaries_match_records(harness, windows)
    await assert_count_matches_records(harness)
