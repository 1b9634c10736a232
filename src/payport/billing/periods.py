"""Billing cycles: how long a period is, counted from the subscription's anchor.

Periods are computed from the anchor rather than from the previous end, so a
subscription anchored on the 31st bills on the 28th/29th in February and on
the 31st again in March, as Stripe does.
"""

from __future__ import annotations

import calendar
from datetime import datetime
from enum import StrEnum


class BillingCycle(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"

    @property
    def months(self) -> int:
        return {"monthly": 1, "quarterly": 3, "yearly": 12}[self.value]


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` moved by whole months, the day clamped to the target month's length."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_bounds(anchor: datetime, cycle: BillingCycle, index: int) -> tuple[datetime, datetime]:
    """Start and end of the `index`-th period (0 = the first) after `anchor`."""
    return (
        add_months(anchor, cycle.months * index),
        add_months(anchor, cycle.months * (index + 1)),
    )
