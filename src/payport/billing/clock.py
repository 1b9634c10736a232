"""Billing time: one injectable clock, and sandbox test clocks that stand in for it.

A subscription attached to a test clock lives at that clock's frozen time;
every other subscription lives at the engine's clock (the system clock in
production, a fixed one in tests that need it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.models import Subscription, TestClock
from payport.db import utcnow
from payport.errors import NotFound


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()


@dataclass(slots=True)
class FixedClock:
    """A clock that moves only when told (for tests of the worker path)."""

    moment: datetime

    def now(self) -> datetime:
        return self.moment


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


async def get_test_clock(
    session: AsyncSession, clock_id: str, *, for_update: bool = False
) -> TestClock:
    clock = await session.get(TestClock, clock_id, with_for_update=for_update)
    if clock is None:
        raise NotFound(f"test clock {clock_id} not found", field="test_clock")
    return clock


async def time_of(session: AsyncSession, subscription: Subscription, clock: Clock) -> datetime:
    """What time it is for `subscription`: its test clock's, or the engine's clock."""
    if subscription.test_clock_id is None:
        return clock.now()
    return (await get_test_clock(session, subscription.test_clock_id)).frozen_time
