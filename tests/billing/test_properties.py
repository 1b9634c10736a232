"""Hypothesis over the billing API: random plan and quantity changes at random seconds,
then the renewal; the invoices and the ledger must agree whatever happened."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.billing.helpers import START, Billing
from tests.harness import Harness

PLANS = {"small": 1000, "medium": 2500, "large": 9999}
PERIOD_S = 31 * 86_400  # Jan 15 - Feb 15

change = st.tuples(
    st.integers(min_value=0, max_value=PERIOD_S - 1),  # seconds into the period
    st.sampled_from(sorted(PLANS)),
    st.integers(min_value=1, max_value=4),  # quantity
    st.sampled_from(["create_prorations", "always_invoice", "none"]),
)


async def start(billing: Billing) -> tuple[str, str]:
    for plan_id, price in PLANS.items():
        await billing.plan(plan_id=plan_id, name=plan_id, price_minor=price)
    clock = await billing.clock()
    sub = await billing.subscribe("small", test_clock=clock)
    return clock, sub["subscription_id"]


def paid(invoices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in invoices if i["status"] == "paid"]


settings_for_api = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings_for_api
@given(changes=st.lists(change, min_size=1, max_size=5))
async def test_any_changes_leave_invoices_and_ledger_in_agreement(
    harness: Harness, changes: list[tuple[int, str, int, str]]
) -> None:
    await harness.reset()
    billing = Billing(harness)
    clock, sub_id = await start(billing)
    moment = START
    for offset, plan_id, quantity, behavior in sorted(changes):
        if START + timedelta(seconds=offset) > moment:
            moment = START + timedelta(seconds=offset)
            await billing.advance(clock, moment)
        await billing.update(
            sub_id, plan_id=plan_id, quantity=quantity, proration_behavior=behavior
        )
    await billing.advance(clock, START + timedelta(seconds=PERIOD_S))

    invoices = await billing.invoices(sub_id)
    assert all(i["status"] == "paid" for i in invoices), invoices
    lines = [line["amount_minor"] for i in paid(invoices) for line in i["lines"]]
    assert await billing.balance("customer:user_ada") == -sum(
        i["amount_paid_minor"] for i in invoices
    )
    assert await billing.balance("billing_revenue") == sum(a for a in lines if a > 0)
    assert await billing.balance("proration_credits") == sum(a for a in lines if a < 0)
    credit = sum(i["ending_balance_minor"] - i["starting_balance_minor"] for i in invoices)
    # Negative only by a debt below the minimum charge (50 cents), carried to the next invoice.
    assert await billing.balance("customer_credit:user_ada") == credit > -50
    for invoice in invoices:
        total = sum(line["amount_minor"] for line in invoice["lines"])
        assert invoice["total_minor"] == total
        change_in_balance = invoice["ending_balance_minor"] - invoice["starting_balance_minor"]
        assert invoice["amount_paid_minor"] == total + change_in_balance >= 0
        assert invoice["ending_balance_minor"] > -50
    await billing.assert_ledger_adds_up()


@settings_for_api
@given(
    offset=st.integers(min_value=0, max_value=PERIOD_S - 2),
    detour=st.lists(st.tuples(st.sampled_from(sorted(PLANS)), st.integers(1, 4)), max_size=4),
)
async def test_changes_undone_in_the_same_second_prorate_to_nothing(
    harness: Harness, offset: int, detour: list[tuple[str, int]]
) -> None:
    await harness.reset()
    billing = Billing(harness)
    clock, sub_id = await start(billing)
    await billing.advance(clock, START + timedelta(seconds=offset + 1))  # clocks move forward
    for plan_id, quantity in [*detour, ("small", 1)]:
        await billing.update(sub_id, plan_id=plan_id, quantity=quantity)
    await billing.advance(clock, START + timedelta(seconds=PERIOD_S))
    renewal = (await billing.invoices(sub_id))[-1]
    prorations = [line["amount_minor"] for line in renewal["lines"] if line["kind"] == "proration"]
    assert sum(prorations) == 0
    assert renewal["total_minor"] == PLANS["small"]
