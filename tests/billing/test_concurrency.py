"""Two workers renewing the same subscriptions at once charge each invoice once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from payport.billing.clock import FixedClock
from payport.billing.invoices import available_balance, open_invoice
from payport.billing.plans import get_plan
from payport.billing.renewals import BillingEngine
from payport.billing.subscriptions import get_subscription, plan_line
from payport.providers.sandbox.models import SandboxObject
from tests.billing.helpers import START, Billing
from tests.harness import Harness


async def test_two_workers_racing_on_the_same_renewals_charge_each_invoice_once(
    database_url: str,
) -> None:
    async with Harness.started(database_url) as harness:
        runtime = harness.runtime
        clock = FixedClock(START)
        runtime.billing.clock = clock
        billing = Billing(harness)
        plan = await billing.plan(price_minor=3000)
        subs = [
            (await billing.subscribe(plan["plan_id"], user_id=f"user_{n}"))["subscription_id"]
            for n in range(6)
        ]
        other = BillingEngine(runtime.db, runtime.provider, runtime.settings, clock=clock)
        clock.moment = START + timedelta(days=62)  # two renewals due for each
        await asyncio.gather(runtime.billing.run_due(), other.run_due(), runtime.billing.run_due())

        for sub_id in subs:
            invoices = await billing.invoices(sub_id)
            assert [i["status"] for i in invoices] == ["paid"] * 3
            assert [len(i["attempts"]) for i in invoices] == [1, 1, 1]
        async with runtime.db.read() as session:
            intents = await session.scalar(
                select(func.count())
                .select_from(SandboxObject)
                .where(SandboxObject.object_type == "payment_intent")
            )
        assert intents == 6 * 3
        assert await billing.balance("billing_revenue") == 6 * 3 * 3000
        await billing.assert_ledger_adds_up()


async def test_two_renewals_of_one_customer_racing_spend_a_credit_once(
    database_url: str,
) -> None:
    async with Harness.started(database_url) as harness:
        runtime = harness.runtime
        clock = FixedClock(START)
        runtime.billing.clock = clock
        billing = Billing(harness)
        await billing.plan(plan_id="basic", price_minor=3000)
        await billing.plan(plan_id="pro", name="Pro", price_minor=6000)
        first = (await billing.subscribe("pro"))["subscription_id"]
        second = (await billing.subscribe("basic"))["subscription_id"]
        clock.moment = START + timedelta(days=10)
        down = await billing.update(first, plan_id="basic", proration_behavior="always_invoice")
        assert down["latest_invoice"]["total_minor"] == -2033  # 6000 * 21/31 back, 3000 * 21/31
        assert await billing.balance("customer_credit:user_ada") == 2033

        other = BillingEngine(runtime.db, runtime.provider, runtime.settings, clock=clock)
        clock.moment = START + timedelta(days=31)
        await asyncio.gather(
            runtime.billing.settle(first, until=clock.moment),
            other.settle(second, until=clock.moment),
        )
        renewals = [(await billing.invoices(sub))[-1] for sub in (first, second)]
        assert all(i["status"] == "paid" and i["total_minor"] == 3000 for i in renewals)
        spent = sum(i["starting_balance_minor"] - i["ending_balance_minor"] for i in renewals)
        assert spent == 2033
        assert sum(i["amount_paid_minor"] for i in renewals) == 6000 - 2033
        assert await billing.balance("customer_credit:user_ada") == 0
        await billing.assert_ledger_adds_up()


async def test_an_invoice_using_credit_holds_the_balance_until_it_commits(
    database_url: str,
) -> None:
    """The race above, made certain: the second reader must wait for the first invoice."""
    async with Harness.started(database_url) as harness:
        runtime = harness.runtime
        clock = FixedClock(START)
        runtime.billing.clock = clock
        billing = Billing(harness)
        await billing.plan(plan_id="basic", price_minor=3000)
        await billing.plan(plan_id="pro", name="Pro", price_minor=6000)
        sub_id = (await billing.subscribe("pro"))["subscription_id"]
        clock.moment = START + timedelta(days=10)
        await billing.update(sub_id, plan_id="basic", proration_behavior="always_invoice")
        first_claimed = asyncio.Event()

        async def invoice_using_the_credit() -> None:
            async with runtime.db.transaction() as session:
                subscription = await get_subscription(session, sub_id, for_update=True)
                plan = await get_plan(session, "basic")
                period = (clock.moment, clock.moment + timedelta(days=30))
                await open_invoice(
                    session,
                    subscription,
                    reason="manual",
                    currency="usd",
                    issued_at=clock.moment,
                    new_lines=[plan_line(plan, 1, period)],
                    collect=False,
                )
                first_claimed.set()
                await asyncio.sleep(0.3)  # still uncommitted

        async def read_the_balance() -> int:
            await first_claimed.wait()
            async with runtime.db.transaction() as session:
                return await available_balance(session, "user_ada", "usd")

        _, seen = await asyncio.gather(invoice_using_the_credit(), read_the_balance())
        assert seen == 0  # not the 2033 the first invoice has already taken
