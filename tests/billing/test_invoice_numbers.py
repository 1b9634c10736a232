"""Invoice numbers: unique and without gaps, also when many are taken at once."""

from __future__ import annotations

import asyncio

from payport.billing.invoices import next_number
from tests.billing.helpers import START
from tests.harness import Harness


class _RolledBack(Exception):
    pass


async def test_concurrent_invoices_get_consecutive_numbers_and_rollbacks_leave_no_gap(
    harness: Harness,
) -> None:
    db = harness.runtime.db

    async def take(rollback: bool) -> str | None:
        try:
            async with db.transaction() as session:
                number = await next_number(session, START)
                await asyncio.sleep(0.01)  # hold the row while others queue behind it
                if rollback:
                    raise _RolledBack
                return number
        except _RolledBack:
            return None

    results = await asyncio.gather(*(take(rollback=n % 5 == 0) for n in range(40)))
    kept = sorted(number for number in results if number is not None)
    assert kept == [f"INV-2026-{n:06d}" for n in range(1, 33)]


async def test_each_year_has_its_own_sequence(harness: Harness) -> None:
    async with harness.runtime.db.transaction() as session:
        first = await next_number(session, START)
        other = await next_number(session, START.replace(year=2027))
        second = await next_number(session, START)
    assert (first, other, second) == ("INV-2026-000001", "INV-2027-000001", "INV-2026-000002")
