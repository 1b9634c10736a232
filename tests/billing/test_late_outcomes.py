"""Payment outcomes that arrive later: 3-D Secure answered after the call, and a call whose
answer was lost. The webhook (or a reconcile) settles each attempt exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from payport.billing.clock import get_test_clock
from payport.billing.models import PaymentAttempt
from payport.billing.renewals import BillingEngine
from payport.billing.subscriptions import get_subscription
from payport.providers import base
from payport.providers.sandbox.models import SandboxObject
from tests.billing.helpers import START, Billing
from tests.harness import Harness

HOUR = timedelta(hours=1)
RETURN_URL = "https://shop.example/billing/back"


async def intents(harness: Harness) -> int:
    async with harness.runtime.db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(SandboxObject)
            .where(SandboxObject.object_type == "payment_intent")
        )
    return int(count or 0)


async def needs_3ds(billing: Billing) -> tuple[str, str]:
    """An incomplete subscription whose card wants 3-D Secure: the off-session charge is
    refused (authentication_required), as Stripe refuses it."""
    plan = await billing.plan(price_minor=3000)
    sub = await billing.subscribe(
        plan["plan_id"],
        test_clock=await billing.clock(),
        payment_method_id="pm_card_authenticationRequired",
    )
    assert sub["status"] == "incomplete"
    [invoice] = await billing.invoices(sub["subscription_id"])
    assert [a["failure_code"] for a in invoice["attempts"]] == ["authentication_required"]
    return sub["subscription_id"], invoice["invoice_id"]


async def answer_3ds(billing: Billing, intent_id: str, *, approve: bool) -> None:
    """The customer on the sandbox's 3-D Secure page, sent back to the return_url."""
    action = "approve" if approve else "fail"
    response = await billing.client.post(f"/sandbox/authenticate/{intent_id}/{action}")
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(RETURN_URL)


async def pay(billing: Billing, invoice_id: str) -> dict[str, Any]:
    response = await billing.client.post(
        f"/api/v1/invoices/{invoice_id}/pay", json={"return_url": RETURN_URL}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_3ds_on_an_invoice_paid_while_present_is_settled_by_the_webhook(
    billing: Billing,
) -> None:
    sub_id, invoice_id = await needs_3ds(billing)
    body = await pay(billing, invoice_id)
    assert body["status"] == "open"
    attempt = body["attempts"][-1]
    assert attempt["status"] == "requires_action"
    assert "/sandbox/authenticate/" in body["next_action"]["redirect_to_url"]

    again = await billing.client.post(
        f"/api/v1/invoices/{invoice_id}/pay", json={"return_url": RETURN_URL}
    )
    assert again.status_code == 409, again.text  # no second charge while one waits
    await billing.harness.drain()
    assert (await billing.subscription(sub_id))["status"] == "incomplete"

    await answer_3ds(billing, attempt["payment_intent_id"], approve=True)
    await billing.harness.drain()
    sub = await billing.subscription(sub_id)
    assert (sub["status"], sub["latest_invoice"]["status"]) == ("active", "paid")
    [invoice] = await billing.invoices(sub_id)
    assert [a["status"] for a in invoice["attempts"]] == ["failed", "succeeded"]
    assert invoice["payment_intent_id"] == attempt["payment_intent_id"]
    assert await billing.balance("customer:user_ada") == -3000
    types = await billing.event_types()
    assert types.count("invoice.payment_action_required") == 1
    assert types.count("invoice.paid") == 1
    await billing.assert_ledger_adds_up()


async def test_3ds_failed_by_the_customer_leaves_the_invoice_open(billing: Billing) -> None:
    sub_id, invoice_id = await needs_3ds(billing)
    attempt = (await pay(billing, invoice_id))["attempts"][-1]
    await answer_3ds(billing, attempt["payment_intent_id"], approve=False)
    await billing.harness.drain()
    [invoice] = await billing.invoices(sub_id)
    assert invoice["status"] == "open"
    assert [a["status"] for a in invoice["attempts"]] == ["failed", "failed"]
    assert invoice["attempts"][-1]["failure_code"] == "payment_intent_authentication_failure"
    assert (await billing.subscription(sub_id))["status"] == "incomplete"
    assert await billing.balance("customer:user_ada") == 0
    # The customer may try again.
    assert (await pay(billing, invoice_id))["attempts"][-1]["status"] == "requires_action"


async def test_reconcile_settles_an_attempt_whose_webhook_never_came_and_only_once(
    billing: Billing,
) -> None:
    sub_id, invoice_id = await needs_3ds(billing)
    attempt = (await pay(billing, invoice_id))["attempts"][-1]
    engine: BillingEngine = billing.harness.runtime.billing
    async with billing.harness.runtime.db.read() as session:
        attempt_id = await session.scalar(
            select(PaymentAttempt.id).where(
                PaymentAttempt.payment_intent_id == attempt["payment_intent_id"]
            )
        )
    assert attempt_id is not None
    assert await engine.reconcile(attempt_id) is False  # still waiting on the customer
    await answer_3ds(billing, attempt["payment_intent_id"], approve=True)
    assert await engine.reconcile(attempt_id) is True  # asked before the webhook came
    assert await engine.reconcile(attempt_id) is False
    await billing.harness.drain()  # ...then the webhook: already settled, nothing more
    assert (await billing.subscription(sub_id))["status"] == "active"
    assert await billing.balance("customer:user_ada") == -3000
    assert (await billing.event_types()).count("invoice.paid") == 1
    await billing.assert_ledger_adds_up()


async def clock_time(billing: Billing, sub_id: str) -> datetime:
    async with billing.harness.runtime.db.read() as session:
        subscription = await get_subscription(session, sub_id)
        assert subscription.test_clock_id is not None
        return (await get_test_clock(session, subscription.test_clock_id)).frozen_time


class LostAnswers:
    """Fault injection (named as such): the sandbox really charges the card, then the answer
    is lost on the way back, as in a timeout after the provider acted."""

    def __init__(self, provider: base.PaymentProvider) -> None:
        self.provider = provider
        self.losing = True

    async def charge_off_session(
        self, charge: base.OffSessionCharge, *, idempotency_key: str
    ) -> base.IntentView:
        intent = await self.provider.charge_off_session(charge, idempotency_key=idempotency_key)
        if self.losing:
            raise base.ProviderTransientError("timed out waiting for the provider")
        return intent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)


async def test_a_charge_whose_answer_was_lost_is_settled_once_by_its_webhook(
    billing: Billing,
) -> None:
    runtime = billing.harness.runtime
    engine: BillingEngine = runtime.billing
    lossy = LostAnswers(runtime.provider)
    engine.provider = lossy  # type: ignore[assignment]
    plan = await billing.plan(price_minor=3000)
    sub = await billing.subscribe(plan["plan_id"], test_clock=await billing.clock())
    sub_id = sub["subscription_id"]
    assert sub["status"] == "incomplete"  # charged, but payport does not know it yet
    [invoice] = await billing.invoices(sub_id)
    [attempt] = invoice["attempts"]
    assert (attempt["status"], attempt["payment_intent_id"]) == ("pending", None)
    assert await intents(billing.harness) == 1

    await billing.harness.drain()  # payment_intent.succeeded, found by the charge's metadata
    sub = await billing.subscription(sub_id)
    assert (sub["status"], sub["latest_invoice"]["status"]) == ("active", "paid")
    [invoice] = await billing.invoices(sub_id)
    [attempt] = invoice["attempts"]
    assert attempt["status"] == "succeeded" and attempt["payment_intent_id"]

    lossy.losing = False
    assert await engine.settle(sub_id, until=await clock_time(billing, sub_id)) == 0
    assert await intents(billing.harness) == 1  # never sent again: nothing was pending
    assert await billing.balance("customer:user_ada") == -3000
    assert (await billing.event_types()).count("invoice.paid") == 1
    await billing.assert_ledger_adds_up()


async def test_a_lost_answer_then_a_retry_with_the_same_key_charges_once(
    billing: Billing,
) -> None:
    runtime = billing.harness.runtime
    engine: BillingEngine = runtime.billing
    lossy = LostAnswers(runtime.provider)
    engine.provider = lossy  # type: ignore[assignment]
    plan = await billing.plan(price_minor=3000)
    sub_id = (await billing.subscribe(plan["plan_id"], test_clock=await billing.clock()))[
        "subscription_id"
    ]
    lossy.losing = False
    # The engine resumes the pending attempt before any webhook: the same key replays.
    assert await engine.settle(sub_id, until=await clock_time(billing, sub_id)) == 1
    await billing.harness.drain()  # the webhook comes after: settled already
    [invoice] = await billing.invoices(sub_id)
    assert [a["status"] for a in invoice["attempts"]] == ["succeeded"]
    assert await intents(billing.harness) == 1
    assert await billing.balance("customer:user_ada") == -3000
    assert (await billing.event_types()).count("invoice.paid") == 1


async def test_a_first_payment_awaiting_3ds_keeps_the_subscription_until_3ds_fails(
    billing: Billing,
) -> None:
    """Money may still arrive, so it does not expire meanwhile; once 3-D Secure fails, it does."""
    sub_id, invoice_id = await needs_3ds(billing)
    clock = (await billing.subscription(sub_id))["test_clock"]
    attempt = (await pay(billing, invoice_id))["attempts"][-1]
    await billing.update(sub_id, payment_method_id="pm_card_visa")  # no second charge now
    await billing.advance(clock, START + 22 * HOUR)
    assert (await billing.subscription(sub_id))["status"] == "incomplete"
    [invoice] = await billing.invoices(sub_id)
    assert [a["status"] for a in invoice["attempts"]] == ["failed", "requires_action"]

    await answer_3ds(billing, attempt["payment_intent_id"], approve=False)
    await billing.harness.drain()
    await billing.advance(clock, START + 23 * HOUR)
    sub = await billing.subscription(sub_id)
    assert (sub["status"], sub["latest_invoice"]["status"]) == ("incomplete_expired", "void")
    assert await billing.balance("customer:user_ada") == 0


async def test_a_first_payment_whose_3ds_never_comes_fails_after_23_hours(
    billing: Billing,
) -> None:
    """As on Stripe: the authentication is given up on (the intent canceled, so it can no
    longer charge), the attempt fails and the incomplete subscription expires."""
    sub_id, invoice_id = await needs_3ds(billing)
    clock = (await billing.subscription(sub_id))["test_clock"]
    attempt = (await pay(billing, invoice_id))["attempts"][-1]
    await billing.update(sub_id, payment_method_id="pm_card_visa")
    await billing.advance(clock, START + 30 * HOUR)
    sub = await billing.subscription(sub_id)
    assert (sub["status"], sub["latest_invoice"]["status"]) == ("incomplete_expired", "void")
    [invoice] = await billing.invoices(sub_id)
    assert [a["status"] for a in invoice["attempts"]] == ["failed", "failed"]
    engine: BillingEngine = billing.harness.runtime.billing
    intent = await engine.provider.retrieve_payment_intent(attempt["payment_intent_id"])
    assert intent.status == base.PI_CANCELED
    await billing.harness.drain()
    assert await intents(billing.harness) == 2  # never charged with the new card
    assert await billing.balance("customer:user_ada") == 0
