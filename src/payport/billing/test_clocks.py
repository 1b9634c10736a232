"""Who may advance a test clock: one advance at a time, and a crashed one is taken over.

The claim is Stripe's status (ready -> advancing) plus a lease on wall time, both written
under the clock row's lock. A live advance renews its lease at every moment it stops at;
an advance whose process died stops renewing, so after ADVANCE_TIMEOUT a new advance may
take the clock over instead of finding it `advancing` forever.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.clock import get_test_clock
from payport.billing.models import TestClock
from payport.billing.schemas import InvalidRequest
from payport.db import Database, utcnow
from payport.errors import InvalidStatus
from payport.messaging.models import WorkerLease

log = logging.getLogger(__name__)
CLOCK_READY = "ready"
CLOCK_ADVANCING = "advancing"
ADVANCE_TIMEOUT = timedelta(minutes=5)


def lease_name(clock_id: str) -> str:
    return f"test_clock:{clock_id}"


async def _lease_of(session: AsyncSession, clock_id: str) -> WorkerLease | None:
    return await session.get(WorkerLease, lease_name(clock_id), with_for_update=True)


async def claim_clock(db: Database, clock_id: str, to: datetime, holder: str) -> None:
    """ready -> advancing for `holder`, or take over an advance that stopped renewing; a
    live advance makes this fail, so two advances never both run renewals or move time."""
    async with db.transaction() as session:
        clock = await get_test_clock(session, clock_id, for_update=True)
        lease = await _lease_of(session, clock_id)
        now = utcnow()
        if clock.status != CLOCK_READY:
            if lease is not None and lease.expires_at > now:
                raise InvalidStatus(
                    f"test clock {clock_id} is {clock.status}; try again when it is ready",
                    field="status",
                )
            log.warning("billing: taking over test clock %s left %s", clock_id, clock.status)
        if to <= clock.frozen_time:
            raise InvalidRequest("must be later than the clock's frozen_time", field="frozen_time")
        clock.status = CLOCK_ADVANCING
        expires_at = now + ADVANCE_TIMEOUT
        if lease is None:
            session.add(
                WorkerLease(
                    name=lease_name(clock_id), holder=holder, expires_at=expires_at, fencing=1
                )
            )
        else:
            lease.holder, lease.expires_at, lease.fencing = holder, expires_at, lease.fencing + 1


async def keep_claim(session: AsyncSession, clock_id: str, holder: str) -> TestClock:
    """The clock, locked, with `holder`'s lease renewed; an advance that was taken over
    (it stalled past the timeout) stops here instead of moving time under the new one."""
    clock = await get_test_clock(session, clock_id, for_update=True)
    lease = await _lease_of(session, clock_id)
    if lease is None or lease.holder != holder:
        raise InvalidStatus(
            f"test clock {clock_id}: this advance was taken over by another", field="status"
        )
    lease.expires_at = utcnow() + ADVANCE_TIMEOUT
    return clock


async def release_clock(db: Database, clock_id: str, holder: str) -> None:
    """advancing -> ready, only by the advance that holds the clock."""
    async with db.transaction() as session:
        clock = await get_test_clock(session, clock_id, for_update=True)
        lease = await _lease_of(session, clock_id)
        if lease is None or lease.holder != holder:
            return
        await session.delete(lease)
        clock.status = CLOCK_READY
