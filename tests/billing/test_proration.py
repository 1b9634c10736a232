"""Proration to the second: exact examples, and properties checked by hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from payport.billing.invoices import settle_balance
from payport.billing.periods import BillingCycle, add_months, period_bounds
from payport.billing.proration import prorate, share_of
from payport.money import MAX_AMOUNT_MINOR

START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
END = datetime(2026, 2, 15, 12, 0, tzinfo=UTC)  # 31 days

amounts = st.integers(min_value=0, max_value=MAX_AMOUNT_MINOR)
seconds_into = st.integers(min_value=0, max_value=31 * 86_400)


def test_upgrade_ten_days_in_credits_and_charges_the_remaining_21_of_31_days() -> None:
    lines = prorate(
        old_amount_minor=3000,
        new_amount_minor=6000,
        period_start=START,
        period_end=END,
        changed_at=START + timedelta(days=10),
    )
    # 3000 * 21/31 = 2032.26 -> 2032; 6000 * 21/31 = 4064.52 -> 4065
    assert (lines.credit_minor, lines.charge_minor) == (-2032, 4065)
    assert (lines.remaining_s, lines.period_s) == (21 * 86_400, 31 * 86_400)


def test_a_change_one_second_before_the_end_prorates_one_second() -> None:
    lines = prorate(
        old_amount_minor=2_678_400,  # one minor unit per second of the period
        new_amount_minor=0,
        period_start=START,
        period_end=END,
        changed_at=END - timedelta(seconds=1),
    )
    assert (lines.credit_minor, lines.charge_minor) == (-1, 0)


def test_share_rounds_half_up() -> None:
    assert share_of(1, 1, 2) == 1
    assert share_of(3, 1, 2) == 2
    assert share_of(-3, 1, 2) == -2


@given(old=amounts, new=amounts, offset=seconds_into)
def test_credit_and_charge_never_exceed_the_prices(old: int, new: int, offset: int) -> None:
    lines = prorate(
        old_amount_minor=old,
        new_amount_minor=new,
        period_start=START,
        period_end=END,
        changed_at=START + timedelta(seconds=offset),
    )
    assert -old <= lines.credit_minor <= 0
    assert 0 <= lines.charge_minor <= new
    assert abs(lines.net_minor) <= max(old, new)


@given(old=amounts, new=amounts, offset=seconds_into)
def test_a_change_and_its_reverse_in_the_same_second_net_to_zero(
    old: int, new: int, offset: int
) -> None:
    moment = START + timedelta(seconds=offset)
    there = prorate(
        old_amount_minor=old,
        new_amount_minor=new,
        period_start=START,
        period_end=END,
        changed_at=moment,
    )
    back = prorate(
        old_amount_minor=new,
        new_amount_minor=old,
        period_start=START,
        period_end=END,
        changed_at=moment,
    )
    assert there.net_minor + back.net_minor == 0


@given(amount=amounts, offset=seconds_into)
def test_keeping_the_same_price_prorates_to_nothing(amount: int, offset: int) -> None:
    lines = prorate(
        old_amount_minor=amount,
        new_amount_minor=amount,
        period_start=START,
        period_end=END,
        changed_at=START + timedelta(seconds=offset),
    )
    assert lines.net_minor == 0


@given(
    total=st.integers(min_value=-1_000_000, max_value=1_000_000),
    balance=st.integers(min_value=-1_000_000, max_value=1_000_000),
)
def test_balance_settlement_keeps_due_equal_to_total_plus_balance_change(
    total: int, balance: int
) -> None:
    due, ending = settle_balance(total, balance, "usd")
    assert due == total + ending - balance
    assert due == 0 or due >= 50  # below Stripe's minimum it is carried, not charged
    assert due >= 0


def test_periods_keep_the_anchor_day_through_short_months() -> None:
    anchor = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
    ends = [period_bounds(anchor, BillingCycle.MONTHLY, i)[1].date().isoformat() for i in range(3)]
    assert ends == ["2026-02-28", "2026-03-31", "2026-04-30"]
    assert add_months(datetime(2028, 2, 29, tzinfo=UTC), 12).date().isoformat() == "2029-02-28"
    assert period_bounds(anchor, BillingCycle.QUARTERLY, 1) == (
        datetime(2026, 4, 30, 9, 30, tzinfo=UTC),
        datetime(2026, 7, 31, 9, 30, tzinfo=UTC),
    )
