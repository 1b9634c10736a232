"""Two workers renewing the same subscriptions at once charge each invoice once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from payport.billing.clock import FixedClock
from payport.billing.renewals import BillingEngine
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
