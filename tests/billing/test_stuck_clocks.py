"""A test clock left `advancing` by a crashed advance is taken over after ADVANCE_TIMEOUT;
a live advance still keeps every other one out."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from payport.billing.clock import get_test_clock
from payport.billing.test_clocks import (
    ADVANCE_TIMEOUT,
    claim_clock,
    keep_claim,
    lease_name,
    release_clock,
)
from payport.db import utcnow
from payport.errors import InvalidStatus
from payport.messaging.models import WorkerLease
from tests.billing.helpers import START, Billing, iso

DAY = timedelta(days=1)


async def crashed_advance(billing: Billing, clock_id: str, *, renewed_at: datetime) -> None:
    """What a process that died mid-advance leaves: the clock advancing, its lease last
    renewed at `renewed_at` (wall time)."""
    db = billing.harness.runtime.db
    await claim_clock(db, clock_id, START + DAY, "crashed-holder")
    async with db.transaction() as session:
        lease = await session.get(WorkerLease, lease_name(clock_id), with_for_update=True)
        assert lease is not None and lease.holder == "crashed-holder"
        lease.expires_at = renewed_at + ADVANCE_TIMEOUT


async def clock_row(billing: Billing, clock_id: str) -> tuple[str, datetime]:
    async with billing.harness.runtime.db.read() as session:
        clock = await get_test_clock(session, clock_id)
        return clock.status, clock.frozen_time


async def advance_response(
    billing: Billing, clock_id: str, to: datetime
) -> tuple[int, dict[str, Any]]:
    response = await billing.client.post(
        f"/api/v1/test_clocks/{clock_id}/advance", json={"frozen_time": iso(to)}
    )
    return response.status_code, response.json()


async def test_a_clock_left_advancing_by_a_crash_is_taken_over(billing: Billing) -> None:
    plan = await billing.plan(price_minor=3000)
    clock_id = await billing.clock()
    sub_id = (await billing.subscribe(plan["plan_id"], test_clock=clock_id))["subscription_id"]
    await crashed_advance(billing, clock_id, renewed_at=utcnow() - 2 * ADVANCE_TIMEOUT)
    assert await clock_row(billing, clock_id) == ("advancing", START)

    body = await billing.advance(clock_id, START + 32 * DAY)
    assert (body["status"], body["frozen_time"]) == ("ready", iso(START + 32 * DAY))
    assert [i["status"] for i in await billing.invoices(sub_id)] == ["paid", "paid"]
    async with billing.harness.runtime.db.read() as session:
        lease = await session.scalar(
            select(WorkerLease).where(WorkerLease.name == lease_name(clock_id))
        )
    assert lease is None  # released by the advance that took over

    # The crashed advance, were it only stalled, can neither move time nor free the clock.
    db = billing.harness.runtime.db
    with pytest.raises(InvalidStatus, match="taken over"):
        async with db.transaction() as session:
            await keep_claim(session, clock_id, "crashed-holder")
    await claim_clock(db, clock_id, START + 40 * DAY, "next-holder")
    await release_clock(db, clock_id, "crashed-holder")
    assert (await clock_row(billing, clock_id))[0] == "advancing"  # still next-holder's
    await release_clock(db, clock_id, "next-holder")
    assert (await clock_row(billing, clock_id))[0] == "ready"


async def test_a_live_advance_still_keeps_a_second_one_out(billing: Billing) -> None:
    clock_id = await billing.clock()
    await crashed_advance(billing, clock_id, renewed_at=utcnow())  # renewed just now: alive
    status, body = await advance_response(billing, clock_id, START + 2 * DAY)
    assert status == 409, body
    assert body["field"] == "status"
    assert await clock_row(billing, clock_id) == ("advancing", START)


async def test_a_clock_advancing_without_a_lease_is_taken_over(billing: Billing) -> None:
    """A row left advancing by a version before leases: nothing renews it, so it is stale."""
    clock_id = await billing.clock()
    async with billing.harness.runtime.db.transaction() as session:
        clock = await get_test_clock(session, clock_id, for_update=True)
        clock.status = "advancing"
    body = await billing.advance(clock_id, START + DAY)
    assert (body["status"], body["frozen_time"]) == ("ready", iso(START + DAY))
