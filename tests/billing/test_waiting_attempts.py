"""Attempts left waiting on a webhook that never comes: the worker asks the provider, settles
them once, and gives up on 3-D Secure after 23 hours so dunning goes on."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select

from payport.billing.clock import FixedClock
from payport.billing.models import Invoice, PaymentAttempt
from payport.billing.renewals import BillingEngine
from payport.providers.sandbox.models import SandboxObject, SandboxWebhookDelivery
from tests.billing.helpers import START, Billing
from tests.billing.test_late_outcomes import RETURN_URL, answer_3ds, intents, pay
from tests.harness import Harness

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


async def lose_webhooks(harness: Harness) -> int:
    """The provider's webhooks not yet delivered are lost (dropped on the way)."""
    async with harness.runtime.db.transaction() as session:
        result = await session.execute(
            delete(SandboxWebhookDelivery).where(SandboxWebhookDelivery.delivered_at.is_(None))
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def attempt_statuses(billing: Billing, sub_id: str) -> list[list[str]]:
    return [[a["status"] for a in i["attempts"]] for i in await billing.invoices(sub_id)]


async def intent_status(harness: Harness, intent_id: str) -> str:
    intent = await harness.runtime.provider.retrieve_payment_intent(intent_id)
    return intent.status


async def waiting_on_3ds(billing: Billing) -> tuple[str, str]:
    """An incomplete subscription on the engine's clock whose payment, made by the customer
    while present, waits on 3-D Secure; returns (subscription id, intent id)."""
    plan = await billing.plan(price_minor=3000)
    sub = await billing.subscribe(
        plan["plan_id"], payment_method_id="pm_card_authenticationRequired"
    )
    assert sub["status"] == "incomplete"
    [invoice] = await billing.invoices(sub["subscription_id"])
    attempt = (await pay(billing, invoice["invoice_id"]))["attempts"][-1]
    assert attempt["status"] == "requires_action"
    await billing.harness.drain()
    return sub["subscription_id"], attempt["payment_intent_id"]


async def test_the_worker_settles_an_attempt_whose_webhook_was_lost(database_url: str) -> None:
    async with Harness.started(database_url) as harness:
        clock = FixedClock(START)
        engine: BillingEngine = harness.runtime.billing
        engine.clock = clock
        billing = Billing(harness)
        sub_id, intent_id = await waiting_on_3ds(billing)

        await answer_3ds(billing, intent_id, approve=True)
        assert await lose_webhooks(harness) >= 1
        clock.moment = START + 5 * MINUTE
        assert await engine.run_due() == 0  # too young to ask about: a webhook may come
        assert await attempt_statuses(billing, sub_id) == [["failed", "requires_action"]]

        clock.moment = START + 11 * MINUTE
        assert await engine.run_due() == 1  # asked the provider: it succeeded
        assert await engine.run_due() == 0
        await harness.drain()
        sub = await billing.subscription(sub_id)
        assert (sub["status"], sub["latest_invoice"]["status"]) == ("active", "paid")
        assert await attempt_statuses(billing, sub_id) == [["failed", "succeeded"]]
        assert await intents(harness) == 2  # the refused off-session one and the paid one
        assert await billing.balance("customer:user_ada") == -3000
        assert (await billing.event_types()).count("invoice.paid") == 1
        await billing.assert_ledger_adds_up()


async def test_a_payment_still_awaiting_3ds_waits_then_fails_after_23_hours(
    database_url: str,
) -> None:
    async with Harness.started(database_url) as harness:
        clock = FixedClock(START)
        engine: BillingEngine = harness.runtime.billing
        engine.clock = clock
        billing = Billing(harness)
        sub_id, intent_id = await waiting_on_3ds(billing)

        for minutes in (11, 12, 30, 22 * 60):
            clock.moment = START + minutes * MINUTE
            assert await engine.run_due() == 0  # the provider says: still requires_action
        assert await attempt_statuses(billing, sub_id) == [["failed", "requires_action"]]
        assert (await billing.subscription(sub_id))["status"] == "incomplete"
        assert await intents(harness) == 2  # asked, never charged again
        assert await intent_status(harness, intent_id) == "requires_action"

        clock.moment = START + 23 * HOUR + 10 * MINUTE
        assert await engine.run_due() > 0  # the attempt failed, then the subscription expired
        assert await intent_status(harness, intent_id) == "canceled"
        [invoice] = await billing.invoices(sub_id)
        assert [a["status"] for a in invoice["attempts"]] == ["failed", "failed"]
        assert invoice["attempts"][-1]["failure_code"] == "payment_intent_canceled"
        sub = await billing.subscription(sub_id)
        assert (sub["status"], sub["latest_invoice"]["status"]) == ("incomplete_expired", "void")
        # The customer comes back too late: the canceled intent cannot charge them.
        await billing.client.post(f"/sandbox/authenticate/{intent_id}/approve")
        assert await intent_status(harness, intent_id) == "canceled"
        await harness.drain()
        assert await engine.run_due() == 0
        assert await billing.balance("customer:user_ada") == 0
        assert (await billing.event_types()).count("invoice.paid") == 0
        await billing.assert_ledger_adds_up()


async def test_an_abandoned_3ds_payment_on_a_test_clock_lets_dunning_go_on(
    billing: Billing,
) -> None:
    plan = await billing.plan(price_minor=3000)
    clock = await billing.clock()
    sub_id = (await billing.subscribe(plan["plan_id"], test_clock=clock))["subscription_id"]
    await billing.update(sub_id, payment_method_id="pm_card_chargeDeclined")
    await billing.advance(clock, START + 31 * DAY + HOUR)  # the renewal charge is declined
    assert (await billing.subscription(sub_id))["status"] == "past_due"
    renewal = (await billing.invoices(sub_id))[-1]
    response = await billing.client.post(
        f"/api/v1/invoices/{renewal['invoice_id']}/pay",
        json={"return_url": RETURN_URL, "payment_method_id": "pm_card_authenticationRequired"},
    )
    assert response.status_code == 200, response.text
    intent_id = response.json()["attempts"][-1]["payment_intent_id"]
    await billing.harness.drain()
    before = await intents(billing.harness)

    await billing.advance(clock, START + 32 * DAY - 2 * HOUR)  # 21 h later: still waiting
    assert (await attempt_statuses(billing, sub_id))[-1] == ["failed", "requires_action"]
    assert await intents(billing.harness) == before  # no second charge while it waits

    await billing.advance(clock, START + 40 * DAY)
    assert await intent_status(billing.harness, intent_id) == "canceled"
    statuses = (await attempt_statuses(billing, sub_id))[-1]
    assert statuses[:2] == ["failed", "failed"]  # the abandoned 3-D Secure counted as failed
    assert len(statuses) > 2  # ...and the dunning schedule retried off-session after it
    assert await intents(billing.harness) > before
    await billing.assert_ledger_adds_up()


async def test_a_webhook_that_comes_after_the_worker_settled_changes_nothing(
    database_url: str,
) -> None:
    async with Harness.started(database_url) as harness:
        clock = FixedClock(START)
        engine: BillingEngine = harness.runtime.billing
        engine.clock = clock
        billing = Billing(harness)
        sub_id, intent_id = await waiting_on_3ds(billing)
        await answer_3ds(billing, intent_id, approve=True)
        clock.moment = START + 11 * MINUTE
        assert await engine.run_due() == 1  # before the (slow, not lost) webhook
        await harness.drain()  # the webhook: already settled
        async with harness.runtime.db.read() as session:
            succeeded = await session.scalar(
                select(func.count())
                .select_from(PaymentAttempt)
                .join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
                .where(Invoice.subscription_id == sub_id, PaymentAttempt.status == "succeeded")
            )
            charged = await session.scalar(
                select(func.count())
                .select_from(SandboxObject)
                .where(SandboxObject.object_type == "payment_intent")
            )
        assert (succeeded, charged) == (1, 2)
        assert (await billing.event_types()).count("invoice.paid") == 1
        assert await billing.balance("customer:user_ada") == -3000
