"""payport with PAYPORT_PROVIDER=stripe, against localstripe, on SQLite and PostgreSQL.

Commands go in as the CONTRACT envelope; what payport says (events, the CampusG
routes) is checked against what Stripe (localstripe) then holds, read back with the SDK.
Webhooks are not configured here: every outcome below comes from the provider's answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import stripe

from payport.providers.views import expandable_id
from tests.harness import Harness
from tests.stripe_provider.conftest import SECRET_KEY

# The SDK hands httpx its form body as `data=`, which httpx deprecates; not payport's call.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

RUNNER = {"runner_id": "runner_bob", "runner_connect_account_id": "acct_bob"}
StartPayport = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest.fixture
def start_payport(database_url: str, stripe_url: str) -> StartPayport:
    """payport wired to localstripe; keyword arguments are extra settings."""

    def start(**settings: Any) -> AbstractAsyncContextManager[Harness]:
        return Harness.started(
            database_url,
            PAYPORT_PROVIDER="stripe",
            STRIPE_SECRET_KEY=SECRET_KEY,
            STRIPE_API_BASE=stripe_url,
            **settings,
        )

    return start


@pytest.fixture
async def payport(start_payport: StartPayport) -> AsyncIterator[Harness]:
    async with start_payport() as running:
        yield running


def flat_authorize(order_id: str, payment_method: str = "pm_card_visa") -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": "user_alice",
        "payment_method_id": payment_method,
        "amount": 2500,
        "currency": "usd",
    }


async def run(harness: Harness, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send one command, let the worker settle, return its outcome event."""
    cid = await harness.command(kind, payload)
    await harness.drain()
    return await harness.outcome(cid)


async def authorized(harness: Harness, order_id: str) -> dict[str, Any]:
    event = await run(harness, "authorize_payment", flat_authorize(order_id))
    assert event["type"] == "payment.authorized", event
    return event["payload"]


async def stripe_intent(client: stripe.StripeClient, intent_id: str) -> dict[str, Any]:
    return (await client.v1.payment_intents.retrieve_async(intent_id)).to_dict()


async def test_authorize_holds_the_money_on_stripe(
    payport: Harness, stripe_client: stripe.StripeClient
) -> None:
    payload = await authorized(payport, "order-1")
    assert payload["status"] == "AUTHORIZED"
    assert payload["payment_intent_id"].startswith("pi_")
    intent = await stripe_intent(stripe_client, payload["payment_intent_id"])
    assert intent["status"] == "requires_capture"
    assert intent["capture_method"] == "manual"
    assert intent["amount"] == 2500
    assert intent["metadata"] == {"payment_id": payload["payment_id"], "order_id": "order-1"}
    payment = await payport.payment_by_order("order-1")
    assert (payment["status"], payment["paymentIntentId"]) == ("AUTHORIZED", intent["id"])


async def test_nested_authorize_charges_the_stripe_customer(
    payport: Harness, stripe_client: stripe.StripeClient
) -> None:
    customer = await stripe_client.v1.customers.create_async({"email": "alice@example.com"})
    event = await run(
        payport,
        "authorize_payment",
        {
            "order_id": "order-2",
            "customer": {
                "clerkUserId": "user_alice",
                "stripeCustomerId": customer.id,
                "userStripeCard": {"payment_method_id": "pm_card_visa"},
            },
            "order": {"amount": 1800, "description": "Two bubble teas"},
        },
    )
    assert event["type"] == "payment.authorized", event
    intent = await stripe_intent(stripe_client, event["payload"]["payment_intent_id"])
    assert intent["customer"] == customer.id
    assert intent["description"] == "Two bubble teas"
    assert intent["amount"] == 1800


async def test_duplicate_authorize_creates_one_intent(
    payport: Harness, stripe_client: stripe.StripeClient
) -> None:
    cid = await payport.command("authorize_payment", flat_authorize("order-3"))
    await payport.command("authorize_payment", flat_authorize("order-3"), correlation_id=cid)
    await payport.command("authorize_payment", flat_authorize("order-3"))
    await payport.drain()
    intents = (await stripe_client.v1.payment_intents.list_async({"limit": 100})).data
    assert len(intents) == 1


async def test_declined_card_fails_the_payment(payport: Harness) -> None:
    event = await run(
        payport, "authorize_payment", flat_authorize("order-4", "pm_card_chargeCustomerFail")
    )
    assert event["type"] == "payment.failed", event
    assert event["payload"]["error"] == "STRIPE_CARD_ERROR"
    assert event["payload"]["stripe_code"] == "card_declined"
    assert (await payport.payment_by_order("order-4"))["status"] == "FAILED"


async def test_release_captures_and_pays_the_runner_less_the_fee(
    start_payport: StartPayport, stripe_client: stripe.StripeClient
) -> None:
    async with start_payport(PLATFORM_FEE_BPS="1000") as payport:
        payment = await authorized(payport, "order-5")
        event = await run(
            payport, "release_payment", {"payment_id": payment["payment_id"]} | RUNNER
        )
        assert event["type"] == "payment.released", event
        assert event["payload"]["status"] == "SUCCEEDED"
        intent = await stripe_intent(stripe_client, payment["payment_intent_id"])
        assert (intent["status"], intent["amount_received"]) == ("succeeded", 2500)
        transfer = await stripe_client.v1.transfers.retrieve_async(event["payload"]["transfer_id"])
        assert transfer.amount == 2250
        assert transfer.destination == "acct_bob"
        assert transfer.transfer_group == "order-5"
        assert transfer.source_transaction == expandable_id(intent["latest_charge"])
        assert transfer.metadata.to_dict() == {
            "payment_id": payment["payment_id"],
            "order_id": "order-5",
        }
        assert (await payport.payment_by_order("order-5"))["status"] == "SUCCEEDED"


async def test_revert_after_release_reverses_the_transfer_and_refunds(
    payport: Harness, stripe_client: stripe.StripeClient
) -> None:
    payment = await authorized(payport, "order-6")
    released = await run(payport, "release_payment", {"payment_id": payment["payment_id"]} | RUNNER)
    assert released["type"] == "payment.released", released
    event = await run(
        payport, "revert_payment", {"payment_id": payment["payment_id"], "reason": "fraudulent"}
    )
    assert event["type"] == "payment.reverted", event
    assert event["payload"]["reason"] == "fraudulent"
    refund = await stripe_client.v1.refunds.retrieve_async(event["payload"]["refund_id"])
    assert (refund.amount, refund.reason) == (2500, "fraudulent")
    assert refund.payment_intent == payment["payment_intent_id"]
    transfer = await stripe_client.v1.transfers.retrieve_async(released["payload"]["transfer_id"])
    assert (transfer.reversed, transfer.amount_reversed) == (True, 2500)
    assert (await payport.payment_by_order("order-6"))["status"] == "REVERTED"


@pytest.mark.parametrize(
    ("reason", "cancellation_reason"),
    [("abandoned", "abandoned"), ("customer changed their mind", "requested_by_customer")],
)
async def test_revert_before_release_cancels_the_hold(
    payport: Harness, stripe_client: stripe.StripeClient, reason: str, cancellation_reason: str
) -> None:
    payment = await authorized(payport, "order-7")
    event = await run(
        payport, "revert_payment", {"payment_id": payment["payment_id"], "reason": reason}
    )
    assert event["type"] == "payment.reverted", event
    assert "refund_id" not in event["payload"]
    intent = await stripe_intent(stripe_client, payment["payment_intent_id"])
    assert intent["status"] == "canceled"
    assert intent["cancellation_reason"] == cancellation_reason
    assert (await payport.payment_by_order("order-7"))["status"] == "REVERTED"
