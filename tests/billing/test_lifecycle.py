"""Issue 7's leftovers: incomplete_expired, trials with their $0 invoice and notice, and
a test clock that one advance at a time may move."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from payport.billing.renewals import BillingEngine
from payport.billing.test_clocks import claim_clock, release_clock
from payport.errors import InvalidStatus
from tests.billing.helpers import START, Billing, iso
from tests.harness import Harness

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


async def test_a_first_invoice_unpaid_for_23_hours_expires_the_subscription(
    billing: Billing,
) -> None:
    plan = await billing.plan(price_minor=3000)
    clock = await billing.clock()
    sub = await billing.subscribe(
        plan["plan_id"], test_clock=clock, payment_method_id="pm_card_chargeDeclined"
    )
    sub_id = sub["subscription_id"]
    assert sub["status"] == "incomplete"

    await billing.advance(clock, START + 22 * HOUR)
    assert (await billing.subscription(sub_id))["status"] == "incomplete"

    await billing.advance(clock, START + 30 * HOUR)
    sub = await billing.subscription(sub_id)
    assert (sub["status"], sub["ended_at"]) == ("incomplete_expired", iso(START + 23 * HOUR))
    [invoice] = await billing.invoices(sub_id)
    assert (invoice["status"], invoice["next_payment_attempt"]) == ("void", None)
    assert [a["status"] for a in invoice["attempts"]] == ["failed"]
    assert await billing.balance("customer:user_ada") == 0  # nothing collected, nothing posted

    # Final: a new card changes nothing, and no renewal ever comes.
    response = await billing.client.put(
        f"/api/v1/subscriptions/{sub_id}", json={"payment_method_id": "pm_card_visa"}
    )
    assert response.status_code == 409, response.text
    assert response.json()["field"] == "status"
    await billing.advance(clock, START + 70 * DAY)
    assert len(await billing.invoices(sub_id)) == 1
    types = await billing.event_types()
    assert types.count("invoice.voided") == 1
    assert "subscription.renewed" not in types
    await billing.assert_ledger_adds_up()


async def test_a_first_invoice_paid_within_23_hours_keeps_the_subscription(
    billing: Billing,
) -> None:
    plan = await billing.plan(price_minor=3000)
    clock = await billing.clock()
    sub_id = (
        await billing.subscribe(
            plan["plan_id"], test_clock=clock, payment_method_id="pm_card_chargeDeclined"
        )
    )["subscription_id"]
    await billing.advance(clock, START + 10 * HOUR)
    assert (await billing.update(sub_id, payment_method_id="pm_card_visa"))["status"] == "active"
    await billing.advance(clock, START + 2 * DAY)
    assert (await billing.subscription(sub_id))["status"] == "active"
    assert [i["status"] for i in await billing.invoices(sub_id)] == ["paid"]
    assert await billing.balance("customer:user_ada") == -3000


async def test_a_trial_opens_with_a_zero_invoice_warns_three_days_ahead_then_charges(
    billing: Billing,
) -> None:
    plan = await billing.plan(price_minor=3000, trial_days=14)
    clock = await billing.clock()
    sub = await billing.subscribe(plan["plan_id"], test_clock=clock)
    sub_id = sub["subscription_id"]
    [trial] = await billing.invoices(sub_id)
    assert (trial["status"], trial["total_minor"], trial["amount_paid_minor"]) == ("paid", 0, 0)
    assert (trial["period_start"], trial["period_end"]) == (iso(START), iso(START + 14 * DAY))
    assert [line["description"] for line in trial["lines"]] == ["Trial period for Pro"]
    assert trial["billing_reason"] == "subscription_create"

    await billing.advance(clock, START + 11 * DAY - HOUR)
    assert "subscription.trial_will_end" not in await billing.event_types()
    await billing.advance(clock, START + 11 * DAY + HOUR)
    types = await billing.event_types()
    assert types.count("subscription.trial_will_end") == 1
    assert (await billing.subscription(sub_id))["status"] == "trialing"
    assert await billing.balance("customer:user_ada") == 0

    await billing.advance(clock, START + 20 * DAY)  # the trial ended on day 14: charged
    sub = await billing.subscription(sub_id)
    assert (sub["status"], sub["current_period_start"]) == ("active", iso(START + 14 * DAY))
    invoices = await billing.invoices(sub_id)
    assert [(i["total_minor"], i["status"]) for i in invoices] == [(0, "paid"), (3000, "paid")]
    assert invoices[1]["billing_reason"] == "subscription_cycle"
    types = await billing.event_types()
    assert types.count("subscription.trial_will_end") == 1
    assert types.index("subscription.trial_will_end") < types.index("subscription.renewed")
    assert await billing.balance("customer:user_ada") == -3000
    assert await billing.balance("billing_revenue") == 3000
    await billing.assert_ledger_adds_up()


async def test_a_trial_shorter_than_three_days_warns_at_once(billing: Billing) -> None:
    plan = await billing.plan(price_minor=3000, trial_days=2)
    await billing.subscribe(plan["plan_id"], test_clock=await billing.clock())
    types = await billing.event_types()
    assert types.count("subscription.trial_will_end") == 1


async def test_a_trial_canceled_before_its_notice_sends_none(billing: Billing) -> None:
    plan = await billing.plan(price_minor=3000, trial_days=14)
    clock = await billing.clock()
    sub_id = (await billing.subscribe(plan["plan_id"], test_clock=clock))["subscription_id"]
    response = await billing.client.post(f"/api/v1/subscriptions/{sub_id}/cancel", json={})
    assert response.status_code == 200, response.text
    await billing.advance(clock, START + 20 * DAY)
    assert "subscription.trial_will_end" not in await billing.event_types()


async def test_a_clock_being_advanced_refuses_a_second_advance(billing: Billing) -> None:
    plan = await billing.plan(price_minor=3000)
    clock = await billing.clock()
    await billing.subscribe(plan["plan_id"], test_clock=clock)
    engine: BillingEngine = billing.harness.runtime.billing
    db = billing.harness.runtime.db
    await claim_clock(db, clock, START + 40 * DAY, "other")  # as if an advance were under way
    response = await billing.client.post(
        f"/api/v1/test_clocks/{clock}/advance", json={"frozen_time": iso(START + 40 * DAY)}
    )
    assert response.status_code == 409, response.text
    assert response.json()["field"] == "status"
    shown = (await billing.client.get(f"/api/v1/test_clocks/{clock}")).json()
    assert (shown["status"], shown["frozen_time"]) == ("advancing", iso(START))
    with pytest.raises(InvalidStatus):
        await engine.advance_clock(clock, START + 40 * DAY)
    await release_clock(db, clock, "other")
    body = await billing.advance(clock, START + 40 * DAY)
    assert (body["status"], body["frozen_time"]) == ("ready", iso(START + 40 * DAY))


async def test_two_advances_of_one_clock_at_once_renew_once_and_move_time_once(
    database_url: str,
) -> None:
    # Provider latency, so the first advance is still charging when the second arrives.
    async with Harness.started(database_url, PAYPORT_SANDBOX_LATENCY_MS="50") as harness:
        billing = Billing(harness)
        plan = await billing.plan(price_minor=3000)
        clock = await billing.clock()
        subs = [
            (await billing.subscribe(plan["plan_id"], test_clock=clock, user_id=f"u{n}"))[
                "subscription_id"
            ]
            for n in range(3)
        ]
        target = {"frozen_time": iso(START + 95 * DAY)}  # three renewals each
        url = f"/api/v1/test_clocks/{clock}/advance"
        answers = await asyncio.gather(*(billing.client.post(url, json=target) for _ in range(3)))
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [200, 409, 409], [answer.text for answer in answers]
        for sub_id in subs:
            invoices = await billing.invoices(sub_id)
            assert [i["status"] for i in invoices] == ["paid"] * 4
            assert [len(i["attempts"]) for i in invoices] == [1] * 4
        shown = (await billing.client.get(f"/api/v1/test_clocks/{clock}")).json()
        assert (shown["status"], shown["frozen_time"]) == ("ready", target["frozen_time"])
        assert await billing.balance("billing_revenue") == 3 * 4 * 3000
        await billing.assert_ledger_adds_up()


async def test_proration_behavior_none_changes_the_price_from_the_next_period_only(
    billing: Billing,
) -> None:
    await billing.plan(plan_id="basic", price_minor=3000)
    await billing.plan(plan_id="pro", name="Pro", price_minor=6000)
    clock = await billing.clock()
    sub_id = (await billing.subscribe("basic", test_clock=clock))["subscription_id"]
    await billing.advance(clock, START + 10 * DAY)
    changed = await billing.update(sub_id, plan_id="pro", quantity=2, proration_behavior="none")
    assert (changed["plan_id"], changed["quantity"]) == ("pro", 2)
    assert len(await billing.invoices(sub_id)) == 1  # nothing invoiced now

    await billing.advance(clock, START + 31 * DAY)
    renewal = (await billing.invoices(sub_id))[-1]
    lines = [(line["kind"], line["plan_id"], line["amount_minor"]) for line in renewal["lines"]]
    assert lines == [("plan", "pro", 12000)]  # no credit, no charge for the rest of January
    assert await billing.balance("proration_credits") == 0
    assert await billing.balance("customer:user_ada") == -(3000 + 12000)
    types = await billing.event_types()
    assert types.count("subscription.updated") == 2  # first payment, then the change
    await billing.assert_ledger_adds_up()
