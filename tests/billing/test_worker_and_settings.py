"""The worker's renewal step on the injected clock, and dunning settings."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from payport.billing.clock import FixedClock
from payport.billing.renewals import BillingEngine
from payport.config import ConfigError, load_settings
from tests.billing.helpers import START, Billing
from tests.harness import Harness

DAY = timedelta(days=1)


async def test_the_worker_renews_subscriptions_on_the_engine_clock(database_url: str) -> None:
    async with Harness.started(database_url) as harness:
        clock = FixedClock(START)
        harness.runtime.billing.clock = clock
        billing = Billing(harness)
        plan = await billing.plan(price_minor=3000)
        sub = await billing.subscribe(plan["plan_id"])  # no test clock: the engine's clock
        assert (sub["started_at"], sub["status"]) == ("2026-01-15T12:00:00Z", "active")

        engine: BillingEngine = harness.runtime.billing
        assert await engine.run_due() == 0  # nothing due yet
        clock.moment = START + 31 * DAY
        assert await engine.run_due() > 0
        assert await engine.run_due() == 0  # a second run finds nothing left: no double charge

        invoices = await billing.invoices(sub["subscription_id"])
        assert [i["status"] for i in invoices] == ["paid", "paid"]
        assert await billing.balance("customer:user_ada") == -6000


async def test_test_clock_subscriptions_are_left_to_their_clock(database_url: str) -> None:
    async with Harness.started(database_url) as harness:
        harness.runtime.billing.clock = FixedClock(START + 400 * DAY)
        billing = Billing(harness)
        plan = await billing.plan(price_minor=3000)
        clock = await billing.clock(START)
        sub = await billing.subscribe(plan["plan_id"], test_clock=clock)
        assert await harness.runtime.billing.run_due() == 0
        assert len(await billing.invoices(sub["subscription_id"])) == 1


async def test_final_action_unpaid_keeps_the_subscription_until_a_new_card_pays(
    database_url: str,
) -> None:
    async with Harness.started(
        database_url, BILLING_DUNNING_FINAL_ACTION="unpaid", BILLING_DUNNING_RETRY_DAYS="2"
    ) as harness:
        billing = Billing(harness)
        plan = await billing.plan(price_minor=3000)
        clock = await billing.clock()
        sub_id = (await billing.subscribe(plan["plan_id"], test_clock=clock))["subscription_id"]
        await billing.update(sub_id, payment_method_id="pm_card_chargeDeclined")

        await billing.advance(clock, START + 40 * DAY)
        sub = await billing.subscription(sub_id)
        assert sub["status"] == "unpaid"
        invoice = sub["latest_invoice"]
        assert (invoice["status"], invoice["attempt_count"]) == ("open", 2)
        assert invoice["next_payment_attempt"] is None  # the schedule (day 2) is spent

        sub = await billing.update(sub_id, payment_method_id="pm_card_visa")
        assert sub["status"] == "active"
        assert sub["latest_invoice"]["status"] == "paid"
        assert await billing.balance("customer:user_ada") == -6000
        await billing.assert_ledger_adds_up()


async def test_a_first_payment_that_fails_leaves_the_subscription_incomplete(
    billing: Billing,
) -> None:
    plan = await billing.plan(price_minor=3000)
    sub = await billing.subscribe(plan["plan_id"], payment_method_id="pm_card_chargeDeclined")
    assert sub["status"] == "incomplete"
    invoice = sub["latest_invoice"]
    assert (invoice["status"], invoice["attempt_count"], invoice["next_payment_attempt"]) == (
        "open",
        1,
        None,
    )
    sub = await billing.update(sub["subscription_id"], payment_method_id="pm_card_visa")
    assert (sub["status"], sub["latest_invoice"]["status"]) == ("active", "paid")


async def test_a_card_that_needs_3ds_cannot_be_charged_off_session(billing: Billing) -> None:
    plan = await billing.plan(price_minor=3000)
    sub = await billing.subscribe(
        plan["plan_id"], payment_method_id="pm_card_authenticationRequired"
    )
    assert sub["status"] == "incomplete"
    invoices = await billing.invoices(sub["subscription_id"])
    attempt = invoices[0]["attempts"][0]
    assert (attempt["status"], attempt["failure_code"]) == ("failed", "authentication_required")


async def test_a_subscription_without_a_card_waits_for_one(billing: Billing) -> None:
    plan = await billing.plan(price_minor=3000)
    sub = await billing.subscribe(plan["plan_id"], payment_method_id=None)
    assert sub["status"] == "incomplete"
    assert sub["latest_invoice"]["attempt_count"] == 0
    sub = await billing.update(sub["subscription_id"], payment_method_id="pm_card_visa")
    assert sub["status"] == "active"


async def test_a_provider_outage_leaves_the_attempt_pending_for_the_next_run(
    database_url: str,
) -> None:
    """The sandbox's own failure injection (PAYPORT_SANDBOX_FAILURE_RATE) stands in for an
    outage: every call fails transiently, so the outcome of the charge is unknown."""
    async with Harness.started(database_url, PAYPORT_SANDBOX_FAILURE_RATE="1.0") as harness:
        billing = Billing(harness)
        plan = await billing.plan(price_minor=3000)
        clock = await billing.clock()
        sub = await billing.subscribe(plan["plan_id"], test_clock=clock)
        assert sub["status"] == "incomplete"  # the change committed; the charge is pending
        invoice = (await billing.invoices(sub["subscription_id"]))[0]
        assert [a["status"] for a in invoice["attempts"]] == ["pending"]

        provider = harness.runtime.provider
        provider._failure_rate = 0.0  # type: ignore[attr-defined]  # the outage ends
        await billing.advance(clock, START + timedelta(hours=1))
        sub = await billing.subscription(sub["subscription_id"])
        assert (sub["status"], sub["latest_invoice"]["status"]) == ("active", "paid")
        invoice = (await billing.invoices(sub["subscription_id"]))[0]
        assert [a["status"] for a in invoice["attempts"]] == ["succeeded"]  # same attempt, key


async def test_the_running_worker_renews_on_its_own(database_url: str) -> None:
    """`payport serve`'s loops, started as they are in production (with their lease)."""
    async with Harness.started(database_url, PAYPORT_BILLING_INTERVAL="1") as harness:
        clock = FixedClock(START)
        harness.runtime.billing.clock = clock
        billing = Billing(harness)
        plan = await billing.plan(price_minor=3000)
        sub_id = (await billing.subscribe(plan["plan_id"]))["subscription_id"]
        clock.moment = START + 31 * DAY
        harness.runtime.start_worker()
        for _ in range(100):
            invoices = await billing.invoices(sub_id)
            if len(invoices) == 2 and invoices[-1]["status"] == "paid":
                break
            await asyncio.sleep(0.1)
        assert [i["status"] for i in invoices] == ["paid", "paid"]
        assert (await billing.subscription(sub_id))["current_period_end"] == (
            "2026-03-15T12:00:00Z"
        )


@pytest.mark.parametrize("value", ["3,1", "0", "1,1", "soon"])
def test_a_bad_retry_schedule_stops_start_up_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(BILLING_DUNNING_RETRY_DAYS=value)
    assert raised.value.variable == "BILLING_DUNNING_RETRY_DAYS"


def test_the_retry_schedule_and_final_action_are_read_from_the_environment() -> None:
    settings = load_settings(
        BILLING_DUNNING_RETRY_DAYS="2,4,8", BILLING_DUNNING_FINAL_ACTION="unpaid"
    )
    assert (settings.billing_retry_days, settings.billing_final_action) == ([2, 4, 8], "unpaid")
    assert load_settings(BILLING_DUNNING_RETRY_DAYS="").billing_retry_days == []
    with pytest.raises(ConfigError) as raised:
        load_settings(BILLING_DUNNING_FINAL_ACTION="delete")
    assert raised.value.variable == "BILLING_DUNNING_FINAL_ACTION"
