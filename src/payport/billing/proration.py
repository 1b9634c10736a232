"""Proration to the second, as Stripe computes it.

A change at moment `t` inside a period [start, end) credits the unused part of
what was billed and charges the same part of the new price. Each line is
rounded on its own (half up, in minor units) from the amount and the two
durations only, so a change and its reverse in the same second cancel exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ProrationLines:
    """The credit (negative or zero) and the charge (positive or zero) of one change."""

    credit_minor: int
    charge_minor: int
    remaining_s: int
    period_s: int

    @property
    def net_minor(self) -> int:
        return self.credit_minor + self.charge_minor


def share_of(amount_minor: int, part_s: int, whole_s: int) -> int:
    """`amount_minor * part_s / whole_s`, rounded half up; exact integer arithmetic."""
    if whole_s <= 0:
        raise ValueError("a period must last at least one second")
    if not 0 <= part_s <= whole_s:
        raise ValueError("the part must lie within the period")
    sign = -1 if amount_minor < 0 else 1
    return sign * ((2 * abs(amount_minor) * part_s + whole_s) // (2 * whole_s))


def prorate(
    *,
    old_amount_minor: int,
    new_amount_minor: int,
    period_start: datetime,
    period_end: datetime,
    changed_at: datetime,
) -> ProrationLines:
    """Lines for switching from `old_amount_minor` to `new_amount_minor` (whole-period prices,
    quantity included) at `changed_at`."""
    period_s = int((period_end - period_start).total_seconds())
    remaining_s = int((period_end - changed_at).total_seconds())
    remaining_s = max(0, min(period_s, remaining_s))
    return ProrationLines(
        credit_minor=-share_of(old_amount_minor, remaining_s, period_s),
        charge_minor=share_of(new_amount_minor, remaining_s, period_s),
        remaining_s=remaining_s,
        period_s=period_s,
    )
