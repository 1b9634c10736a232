"""Issue 8: the usage of a subscription's last period is billed on a final invoice.

Metered usage is billed in arrears, so when a subscription ends (at the end of
its period, or canceled now) nothing would ever bill its last period: the
final invoice does, with any pending prorations, charged like any invoice.
Amounts are worked out by hand in the comments.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from payport.billing.clock import FixedClock
from payport.billing.invoices import FINAL_REASON, final_key, open_invoice, plan_line
from payport.billing.models import Invoice
from payport.billing.plans import get_plan
from payport.billing.renewals import BillingEngine
from payport.billing.subscriptions import end_subscription, get_subscription
from payport.providers.sandbox.models import SandboxObject
from tests.billing.helpers import START, Billing, iso
from tests.harness import Harness
from tests.ledger.test_check import ledger_check_cli

DAY = timedelta(days=1)
PERIOD_END = START + 31 * DAY  # 2026-02-15 12:00: the first monthly period ends


async def metered_plan(billing: Billing, plan_id: str = "metered") -> str:
    """3000 a month, 2 per API call (summed), 500 per seat (the period's maximum)."""
    await billing.plan(plan_id=plan_id, price_minor=3000)
    for metric, aggregation, unit in [("api_calls", "sum", 2), ("seats", "max", 500)]:
        response = await billing.client.post(
            f"/api/v1/plans/{plan_id}/metered_prices",
            json={"metric": metric, "aggregation": aggregation, "unit_amount_minor": unit},
        )
        assert response.status_code == 201, response.text
    return plan_id


async def metered_subscription(billing: Billing) -> tuple[str, str]:
    """(test clock, subscription id) of user_ada's subscription to the metered plan."""
    plan_id = await metered_plan(billing)
    clock = await billing.clock()
    return clock, (await billing.subscribe(plan_id, test_clock=clock))["subscription_id"]


async def report(
    billing: Billing, sub_id: str, event_id: str, metric: str, quantity: int, **at: Any
) -> Any:
    """One usage event; `at=` a moment for its timestamp, else the subscription's clock now."""
    body: dict[str, Any] = {"event_id": event_id, "subscription_id": sub_id,
                            "metric": metric, "quantity": quantity}  # fmt: skip
    if "at" in at:
        body["timestamp"] = iso(at["at"])
    return await billing.client.post("/api/v1/usage", json=body)


async def report_ok(billing: Billing, sub_id: str, *rows: tuple[Any, ...]) -> None:
    """Each accepted as new; events are named by subscription, metric and quantity."""
    for metric, quantity, *moment in rows:
        at = {"at": moment[0]} if moment else {}
        event_id = f"{sub_id}-{metric}-{quantity}"
        response = await report(billing, sub_id, event_id, metric, quantity, **at)
        assert response.status_code == 201, response.text
        assert response.json()["accepted"] == 1, response.text


def usage_of(invoice: dict[str, Any]) -> dict[str, int]:
    return {
        line["description"]: line["amount_minor"]
        for line in invoice["lines"]
        if line["kind"] == "usage"
    }


async def cancel(billing: Billing, sub_id: str, **body: Any) -> dict[str, Any]:
    response = await billing.client.post(f"/api/v1/subscriptions/{sub_id}/cancel", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_cancel_at_period_end_bills_the_final_periods_usage_and_charges_it(
    billing: Billing,
) -> None:
    clock, sub_id = await metered_subscription(billing)
    await report_ok(
        billing, sub_id,
        ("api_calls", 120, START + timedelta(minutes=1)),
        ("api_calls", 80, START + 20 * DAY),
        ("seats", 3, START + 2 * DAY), ("seats", 2, START + 3 * DAY),
    )  # fmt: skip
    await cancel(billing, sub_id, at_period_end=True)

    await billing.advance(clock, START + 40 * DAY)
    sub = await billing.subscription(sub_id)
    assert (sub["status"], sub["ended_at"]) == ("canceled", iso(PERIOD_END))
    first, final = await billing.invoices(sub_id)
    assert first["total_minor"] == 3000  # usage is billed in arrears: none on the first
    # 200 calls x 2 = 400; at most 3 seats x 500 = 1500
    assert usage_of(final) == {"200 x api_calls (sum)": 400, "3 x seats (max)": 1500}
    assert [line["kind"] for line in final["lines"]] == ["usage", "usage"]
    assert (final["billing_reason"], final["issued_at"]) == ("subscription_cancel", iso(PERIOD_END))
    assert (final["period_start"], final["period_end"]) == (iso(START), iso(PERIOD_END))
    assert (final["total_minor"], final["amount_paid_minor"], final["status"]) == (
        1900,
        1900,
        "paid",
    )
    assert [(a["status"], a["attempted_at"]) for a in final["attempts"]] == [
        ("succeeded", iso(PERIOD_END))
    ]
    assert sub["latest_invoice"]["invoice_id"] == final["invoice_id"]

    assert await billing.balance("customer:user_ada") == -(3000 + 1900)
    assert await billing.balance("billing_revenue") == 3000 + 1900
    types = await billing.event_types()
    assert types.count("invoice.created") == 2
    assert types.count("invoice.paid") == 2
    assert types.count("subscription.canceled") == 1
    assert "subscription.renewed" not in types
    await billing.assert_ledger_adds_up()

    await billing.advance(clock, START + 100 * DAY)
    assert len(await billing.invoices(sub_id)) == 2  # nothing after the final invoice


async def test_usage_after_the_end_is_refused_but_a_resent_event_is_a_duplicate(
    billing: Billing,
) -> None:
    clock, sub_id = await metered_subscription(billing)
    await report_ok(billing, sub_id, ("api_calls", 10, START + DAY))
    await cancel(billing, sub_id, at_period_end=True)
    await billing.advance(clock, START + 32 * DAY)

    # Late usage, stamped inside the final period: the final invoice is issued, so refused.
    late = await report(billing, sub_id, "late-1", "api_calls", 50, at=START + 30 * DAY)
    assert late.status_code == 409, late.text
    assert (late.json()["code"], late.json()["field"]) == (
        "INVALID_STATUS",
        "events.0.subscription_id",
    )
    # The event accepted before the end, sent again: counted as a duplicate, not refused.
    resent = f"{sub_id}-api_calls-10"
    again = await report(billing, sub_id, resent, "api_calls", 10, at=START + DAY)
    assert again.status_code == 201, again.text
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 1)
    # A batch with one late event stores none of it.
    batch = await billing.client.post(
        "/api/v1/usage",
        json={"events": [
            {"event_id": resent, "subscription_id": sub_id, "metric": "api_calls",
             "quantity": 10, "timestamp": iso(START + DAY)},
            {"event_id": "late-2", "subscription_id": sub_id, "metric": "api_calls",
             "quantity": 5, "timestamp": iso(START + 30 * DAY)},
        ]},
    )  # fmt: skip
    assert batch.status_code == 409, batch.text
    assert batch.json()["field"] == "events.1.subscription_id"
    summary = await billing.client.get(
        f"/api/v1/usage/subscriptions/{sub_id}",
        params={"start": iso(START), "end": iso(START + 40 * DAY)},
    )
    assert summary.json()["metrics"]["api_calls"]["sum"] == 10
    [_, final] = await billing.invoices(sub_id)
    assert usage_of(final) == {"10 x api_calls (sum)": 20, "0 x seats (max)": 0}


async def test_usage_stamped_before_the_current_period_is_refused(billing: Billing) -> None:
    """That period's invoice is issued already: the usage could never be billed."""
    clock, sub_id = await metered_subscription(billing)
    await billing.advance(clock, PERIOD_END + DAY)
    stale = await report(billing, sub_id, "stale-1", "api_calls", 7, at=PERIOD_END - DAY)
    assert stale.status_code == 400, stale.text
    assert stale.json()["field"] == "events.0.timestamp"
    fresh = await report(billing, sub_id, "fresh-1", "api_calls", 7, at=PERIOD_END)
    assert fresh.status_code == 201, fresh.text


async def test_cancel_now_bills_the_usage_so_far_and_the_pending_prorations(
    billing: Billing,
) -> None:
    clock, sub_id = await metered_subscription(billing)
    await report_ok(billing, sub_id, ("api_calls", 100, START + DAY), ("seats", 2, START + DAY))
    await billing.advance(clock, START + 10 * DAY)
    await billing.update(sub_id, quantity=2)  # prorations wait for the next invoice
    await report_ok(billing, sub_id, ("api_calls", 1, START + 15 * DAY))
    await billing.advance(clock, START + 20 * DAY)

    sub = await cancel(billing, sub_id, reason="moving")
    assert (sub["status"], sub["ended_at"]) == ("canceled", iso(START + 20 * DAY))
    final = sub["latest_invoice"]
    assert (final["billing_reason"], final["status"]) == ("subscription_cancel", "paid")
    [_, listed] = await billing.invoices(sub_id)
    assert listed["invoice_id"] == final["invoice_id"]
    # Pending: -3000 * 21/31 = -2032, +6000 * 21/31 = 4065 (see test_renewals);
    # usage: 101 calls x 2 = 202, 2 seats x 500 = 1000
    lines = [(line["kind"], line["amount_minor"]) for line in listed["lines"]]
    assert lines == [("proration", -2032), ("proration", 4065), ("usage", 202), ("usage", 1000)]
    assert (listed["total_minor"], listed["amount_paid_minor"]) == (3235, 3235)
    assert (listed["period_start"], listed["period_end"]) == (
        iso(START),
        iso(START + 20 * DAY),
    )
    assert await billing.balance("billing_revenue") == 3000 + 4065 + 202 + 1000
    assert await billing.balance("proration_credits") == -2032
    await billing.assert_ledger_adds_up()


async def test_cancel_now_bills_usage_up_to_the_moment_of_the_cancel(billing: Billing) -> None:
    clock, sub_id = await metered_subscription(billing)
    await report_ok(billing, sub_id, ("api_calls", 300, START + DAY))
    await billing.advance(clock, START + 10 * DAY)
    # No timestamp: recorded at the clock's now, the very moment of the cancel below.
    await report_ok(billing, sub_id, ("seats", 4))

    await cancel(billing, sub_id)
    [_, final] = await billing.invoices(sub_id)
    # 300 x 2 = 600; 4 seats x 500 = 2000
    assert usage_of(final) == {"300 x api_calls (sum)": 600, "4 x seats (max)": 2000}
    assert (final["total_minor"], final["amount_paid_minor"], final["status"]) == (
        2600,
        2600,
        "paid",
    )
    assert final["issued_at"] == iso(START + 10 * DAY)
    assert await billing.balance("billing_revenue") == 3000 + 2600
    await billing.assert_ledger_adds_up()


async def test_cancel_now_with_prorate_nets_the_credit_against_the_usage(
    billing: Billing,
) -> None:
    clock, sub_id = await metered_subscription(billing)
    await report_ok(billing, sub_id, ("api_calls", 200, START + DAY))
    await billing.advance(clock, START + 10 * DAY)

    final = (await cancel(billing, sub_id, prorate=True))["latest_invoice"]
    [_, listed] = await billing.invoices(sub_id)
    # Unused 21 of 31 days: -3000 * 21/31 = -2032; usage 200 x 2 = 400; seats 0
    lines = [(line["kind"], line["amount_minor"]) for line in listed["lines"]]
    assert lines == [("proration", -2032), ("usage", 400), ("usage", 0)]
    assert (final["total_minor"], final["amount_paid_minor"]) == (-1632, 0)
    assert final["status"] == "paid"
    assert await billing.balance("customer_credit:user_ada") == 1632
    assert await billing.balance("billing_revenue") == 3000 + 400
    assert await billing.balance("proration_credits") == -2032
    await billing.assert_ledger_adds_up()


async def test_cancel_now_without_invoice_now_waives_the_usage(billing: Billing) -> None:
    """As Stripe's `invoice_now=false`: nothing is billed; the usage stays on record."""
    clock, sub_id = await metered_subscription(billing)
    await report_ok(billing, sub_id, ("api_calls", 200, START + DAY))
    await billing.advance(clock, START + 10 * DAY)

    sub = await cancel(billing, sub_id, invoice_now=False)
    assert sub["status"] == "canceled"
    assert len(await billing.invoices(sub_id)) == 1
    summary = await billing.client.get(f"/api/v1/usage/subscriptions/{sub_id}")
    assert summary.json()["metrics"]["api_calls"]["sum"] == 200
    bad = await billing.client.post(
        f"/api/v1/subscriptions/{sub_id}/cancel", json={"invoice_now": "maybe"}
    )
    assert (bad.status_code, bad.json()["field"]) == (400, "invoice_now")


async def test_a_final_period_without_usage_or_pending_items_makes_no_invoice(
    billing: Billing,
) -> None:
    plan_id = await metered_plan(billing)
    clock = await billing.clock()
    at_end = (await billing.subscribe(plan_id, test_clock=clock))["subscription_id"]
    now = (await billing.subscribe(plan_id, test_clock=clock, user_id="user_bob"))[
        "subscription_id"
    ]
    await cancel(billing, at_end, at_period_end=True)
    await billing.advance(clock, START + 10 * DAY)
    assert (await cancel(billing, now))["status"] == "canceled"
    await billing.advance(clock, START + 40 * DAY)

    assert (await billing.subscription(at_end))["status"] == "canceled"
    for sub_id in (at_end, now):
        assert [i["billing_reason"] for i in await billing.invoices(sub_id)] == [
            "subscription_create"
        ]
    assert (await billing.event_types()).count("invoice.created") == 2
    await billing.assert_ledger_adds_up()


async def test_a_declined_final_charge_is_retried_on_schedule_then_written_off(
    billing: Billing,
) -> None:
    clock, sub_id = await metered_subscription(billing)
    await report_ok(billing, sub_id, ("api_calls", 500, START + DAY))
    await billing.update(sub_id, payment_method_id="pm_card_chargeDeclinedInsufficientFunds")
    await cancel(billing, sub_id, at_period_end=True)

    await billing.advance(clock, PERIOD_END + timedelta(hours=1))
    final = (await billing.subscription(sub_id))["latest_invoice"]
    assert (final["status"], final["attempt_count"], final["total_minor"]) == ("open", 1, 1000)
    assert final["next_payment_attempt"] == iso(PERIOD_END + DAY)  # BILLING_DUNNING_RETRY_DAYS

    await billing.advance(clock, PERIOD_END + 10 * DAY)
    sub = await billing.subscription(sub_id)
    assert sub["status"] == "canceled"  # it was over already; dunning does not move it
    [_, final] = await billing.invoices(sub_id)
    assert final["status"] == "uncollectible"
    assert [(a["status"], a["attempted_at"][:10]) for a in final["attempts"]] == [
        ("failed", "2026-02-15"),
        ("failed", "2026-02-16"),
        ("failed", "2026-02-18"),
        ("failed", "2026-02-20"),
    ]
    assert final["next_payment_attempt"] is None
    types = await billing.event_types()
    assert types.count("invoice.payment_failed") == 4
    assert types.count("invoice.marked_uncollectible") == 1
    assert await billing.balance("customer:user_ada") == -3000  # nothing collected, none posted
    await billing.assert_ledger_adds_up()


async def test_with_final_action_unpaid_a_declined_final_invoice_stays_open(
    database_url: str,
) -> None:
    async with Harness.started(database_url, BILLING_DUNNING_FINAL_ACTION="unpaid") as harness:
        billing = Billing(harness)
        clock, sub_id = await metered_subscription(billing)
        await report_ok(billing, sub_id, ("seats", 2, START + DAY))
        await billing.update(sub_id, payment_method_id="pm_card_chargeDeclined")
        await cancel(billing, sub_id, at_period_end=True)
        await billing.advance(clock, PERIOD_END + 10 * DAY)

        [_, final] = await billing.invoices(sub_id)
        assert (final["status"], final["attempt_count"]) == ("open", 4)
        assert final["next_payment_attempt"] is None  # the customer may still pay it
        assert (await billing.subscription(sub_id))["status"] == "canceled"
        await billing.assert_ledger_adds_up()


async def test_a_declined_final_charge_is_paid_by_a_later_on_session_payment(
    billing: Billing,
) -> None:
    clock, sub_id = await metered_subscription(billing)
    await report_ok(billing, sub_id, ("seats", 1, START + DAY))
    await billing.update(sub_id, payment_method_id="pm_card_chargeDeclined")
    await cancel(billing, sub_id, at_period_end=True)
    await billing.advance(clock, PERIOD_END + timedelta(hours=1))
    final = (await billing.subscription(sub_id))["latest_invoice"]
    assert final["status"] == "open"

    paid = await billing.client.post(
        f"/api/v1/invoices/{final['invoice_id']}/pay",
        json={"return_url": "https://shop.example/back", "payment_method_id": "pm_card_visa"},
    )
    assert paid.status_code == 200, paid.text
    [_, final] = await billing.invoices(sub_id)
    assert (final["status"], final["amount_paid_minor"]) == ("paid", 500)
    await billing.advance(clock, PERIOD_END + 10 * DAY)
    assert [a["status"] for a in (await billing.invoices(sub_id))[1]["attempts"]] == [
        "failed",
        "succeeded",
    ]
    await billing.assert_ledger_adds_up()


async def test_months_of_usage_then_a_period_end_cancel_add_up(billing: Billing) -> None:
    """Each renewal bills the month before; the final invoice bills the last one."""
    clock, sub_id = await metered_subscription(billing)
    calls = [100, 250, 40, 1]  # per period; seats: 1, 2, 3, 4
    # Recorded at the clock's now: Jan 15, Feb 15, Mar 18, Apr 18, one in each period
    # (Jan 15, Feb 15, Mar 15, Apr 15); the cancel on Apr 18 ends it on May 15.
    for index, quantity in enumerate(calls):
        await report_ok(billing, sub_id, ("api_calls", quantity), ("seats", index + 1))
        if index == len(calls) - 1:
            await cancel(billing, sub_id, at_period_end=True)
        await billing.advance(clock, START + (index + 1) * 31 * DAY)
    assert (await billing.subscription(sub_id))["ended_at"] == "2026-05-15T12:00:00Z"

    invoices = await billing.invoices(sub_id)
    assert [i["billing_reason"] for i in invoices] == ["subscription_create"] + [
        "subscription_cycle"
    ] * 3 + ["subscription_cancel"]
    # Renewals: 3000 + the period before (calls x 2 + seats x 500); final: usage only
    expected = [3000, 3000 + 200 + 500, 3000 + 500 + 1000, 3000 + 80 + 1500, 2 + 2000]
    assert [i["amount_paid_minor"] for i in invoices] == expected
    assert all(i["status"] == "paid" for i in invoices)
    assert await billing.balance("customer:user_ada") == -sum(expected)
    assert await billing.balance("billing_revenue") == sum(expected)
    numbers = [i["number"] for i in invoices]
    assert numbers == [f"INV-2026-{n:06d}" for n in range(1, 6)]
    await billing.assert_ledger_adds_up()
    status, output = await ledger_check_cli(billing.harness, "--provider")
    assert status == 0, output
    assert "ledger check OK" in output


async def test_workers_run_twice_and_racing_make_one_final_invoice_each(
    database_url: str,
) -> None:
    async with Harness.started(database_url) as harness:
        runtime = harness.runtime
        clock = FixedClock(START)
        runtime.billing.clock = clock
        billing = Billing(harness)
        plan_id = await metered_plan(billing)
        subs = []
        for n in range(5):
            sub_id = (await billing.subscribe(plan_id, user_id=f"user_{n}"))["subscription_id"]
            await report_ok(billing, sub_id, ("api_calls", 100 * (n + 1), START + DAY))
            await cancel(billing, sub_id, at_period_end=True)
            subs.append(sub_id)
        other = BillingEngine(runtime.db, runtime.provider, runtime.settings, clock=clock)
        clock.moment = START + 40 * DAY
        await asyncio.gather(runtime.billing.run_due(), other.run_due(), runtime.billing.run_due())
        await runtime.billing.run_due()  # and once more, after all of them

        for n, sub_id in enumerate(subs):
            invoices = await billing.invoices(sub_id)
            assert [i["status"] for i in invoices] == ["paid", "paid"]
            assert invoices[1]["total_minor"] == 200 * (n + 1)  # 100(n+1) calls x 2
            assert len(invoices[1]["attempts"]) == 1
        async with runtime.db.read() as session:
            intents = await session.scalar(
                select(func.count())
                .select_from(SandboxObject)
                .where(SandboxObject.object_type == "payment_intent")
            )
            finals = await session.scalar(
                select(func.count()).where(Invoice.billing_reason == "subscription_cancel")
            )
        assert (finals, intents) == (5, 5 + 5)
        assert await billing.balance("billing_revenue") == 5 * 3000 + 200 * (1 + 2 + 3 + 4 + 5)
        await billing.assert_ledger_adds_up()


async def test_usage_arriving_while_the_subscription_ends_is_billed_or_refused(
    database_url: str,
) -> None:
    """Recording usage waits for the transaction that ends the subscription: the usage is
    then refused, never stored after the final invoice was made without it."""
    async with Harness.started(database_url) as harness:
        runtime = harness.runtime
        clock = FixedClock(START)
        runtime.billing.clock = clock
        billing = Billing(harness)
        plan_id = await metered_plan(billing)
        sub_id = (await billing.subscribe(plan_id))["subscription_id"]
        clock.moment = START + 5 * DAY
        ending = asyncio.Event()

        async def end_it() -> None:
            async with runtime.db.transaction() as session:
                subscription = await get_subscription(session, sub_id, for_update=True)
                plan = await get_plan(session, plan_id)
                await end_subscription(session, subscription, plan, at=clock.moment)
                ending.set()
                await asyncio.sleep(0.3)  # still uncommitted while the usage arrives

        async def record() -> Any:
            await ending.wait()
            return await report(billing, sub_id, "racing-1", "api_calls", 9)

        _, response = await asyncio.gather(end_it(), record())
        assert response.status_code == 409, response.text
        summary = await billing.client.get(f"/api/v1/usage/subscriptions/{sub_id}")
        assert summary.json()["metrics"] == {}


async def test_the_database_refuses_a_second_final_invoice_for_one_subscription(
    billing: Billing,
) -> None:
    """The row lock makes one; the unique cause key is what a bug would run into."""
    plan_id = await metered_plan(billing)
    sub_id = (await billing.subscribe(plan_id))["subscription_id"]
    db = billing.harness.runtime.db

    async def open_final() -> None:
        async with db.transaction() as session:
            subscription = await get_subscription(session, sub_id, for_update=True)
            plan = await get_plan(session, plan_id)
            period = (subscription.current_period_start, subscription.current_period_end)
            await open_invoice(
                session,
                subscription,
                reason=FINAL_REASON,
                currency="usd",
                issued_at=period[1],
                new_lines=[plan_line(plan, 1, period)],
                cycle_key=final_key(subscription),
                collect=False,
            )

    await open_final()
    with pytest.raises(IntegrityError):
        await open_final()
    assert len(await billing.invoices(sub_id)) == 2
