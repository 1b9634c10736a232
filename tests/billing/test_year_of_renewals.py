"""A year on one test clock: two customers, declines in between, a recovery, a plan change.

Expected amounts are worked out by hand in the comments; the subscriptions,
their invoices and the ledger must all tell that story.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.billing.helpers import START, Billing
from tests.ledger.test_check import ledger_check_cli


def at(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, 12, 0, tzinfo=UTC)


def paid(invoices: list[dict[str, Any]]) -> int:
    return sum(i["amount_paid_minor"] for i in invoices if i["status"] == "paid")


async def test_a_year_of_renewals_with_declines_in_between(billing: Billing) -> None:
    basic = await billing.plan(plan_id="basic", price_minor=3000)
    pro = await billing.plan(plan_id="pro", name="Pro", price_minor=6000)
    clock = await billing.clock(START)  # 2026-01-15 12:00 UTC
    ada = (await billing.subscribe(basic["plan_id"], test_clock=clock))["subscription_id"]
    bob = (await billing.subscribe(basic["plan_id"], test_clock=clock, user_id="user_bob"))[
        "subscription_id"
    ]

    await billing.advance(clock, at(3, 20))  # Feb 15 and Mar 15 renew for both
    await billing.update(ada, payment_method_id="pm_card_chargeDeclinedInsufficientFunds")
    await billing.update(bob, payment_method_id="pm_card_chargeCustomerFail")

    await billing.advance(clock, at(4, 17))  # Apr 15 fails for both, Apr 16 retry fails
    assert (await billing.subscription(ada))["status"] == "past_due"
    assert (await billing.subscription(bob))["status"] == "past_due"

    recovered = await billing.update(ada, payment_method_id="pm_card_visa")  # retried at once
    assert recovered["status"] == "active"
    assert recovered["latest_invoice"]["status"] == "paid"

    await billing.advance(clock, at(6, 1))  # Bob: Apr 18, Apr 20 fail -> canceled
    assert (await billing.subscription(bob))["status"] == "canceled"

    # Period May 15 - Jun 15 is 31 days; 14 remain: 3000*14/31 = 1354.8, 6000*14/31 = 2709.7
    await billing.update(ada, plan_id=pro["plan_id"])
    await billing.advance(clock, at(1, 15, 2027))

    ada_sub, bob_sub = await billing.subscription(ada), await billing.subscription(bob)
    assert (ada_sub["status"], ada_sub["plan_id"]) == ("active", "pro")
    assert ada_sub["current_period_start"] == "2027-01-15T12:00:00Z"
    assert (bob_sub["status"], bob_sub["ended_at"]) == ("canceled", "2026-04-20T12:00:00Z")

    ada_invoices = await billing.invoices(ada)
    # Jan-May at 3000 (Apr paid on the third attempt), Jun 6000 + 2710 - 1355, Jul-Jan at 6000
    assert [i["amount_paid_minor"] for i in ada_invoices] == [3000] * 5 + [7355] + [6000] * 7
    assert all(i["status"] == "paid" for i in ada_invoices)
    april = ada_invoices[3]
    assert [(a["status"], a["attempted_at"][:10]) for a in april["attempts"]] == [
        ("failed", "2026-04-15"),
        ("failed", "2026-04-16"),
        ("succeeded", "2026-04-17"),
    ]
    bob_invoices = await billing.invoices(bob)
    assert [i["status"] for i in bob_invoices] == ["paid"] * 3 + ["uncollectible"]
    assert [a["decline_code"] for a in bob_invoices[3]["attempts"]] == ["generic_decline"] * 4

    numbers = sorted(i["number"] for i in ada_invoices + bob_invoices)
    assert numbers == [f"INV-2026-{n:06d}" for n in range(1, 17)] + ["INV-2027-000001"]

    assert paid(ada_invoices) == 64355
    assert paid(bob_invoices) == 9000
    assert await billing.balance("customer:user_ada") == -64355
    assert await billing.balance("customer:user_bob") == -9000
    assert await billing.balance("billing_revenue") == 9000 + 15000 + 2710 + 48000
    assert await billing.balance("proration_credits") == -1355
    await billing.assert_ledger_adds_up()
    status, output = await ledger_check_cli(billing.harness, "--provider")
    assert status == 0, output
    assert "ledger check OK" in output

    types = await billing.event_types()
    assert types.count("invoice.paid") == 13 + 3
    assert types.count("invoice.payment_failed") == 2 + 4
    assert types.count("subscription.canceled") == 1
