"""The Stripe path: the official SDK against recorded Checkout Session responses served over
real HTTP, and Stripe-signed recorded events (localstripe has no Checkout Sessions)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import orjson
import pytest
import stripe
from pydantic import SecretStr

from payport.db import utcnow
from payport.providers.base import CheckoutLineItem, CheckoutSessionRequest
from payport.providers.stripe.provider import StripeProvider
from tests.checkout.conftest import checkout_settings, create_session
from tests.checkout.shop import Shop, user_token
from tests.checkout.stripe_recorded import (
    INTENT_ID,
    RECORDED_DECLINED_INTENT,
    RecordedStripe,
    recorded_event,
)
from tests.harness import Harness

WEBHOOK_SECRET = "whsec_recorded_test_secret"
SECRET_KEY = "sk_test_recorded_key_0123456789"


@pytest.fixture
def stripe_api() -> Iterator[RecordedStripe]:
    server = RecordedStripe()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def on_stripe(
    database_url: str, shop: Shop, stripe_api: RecordedStripe
) -> AsyncIterator[Harness]:
    settings = checkout_settings(
        shop,
        PAYPORT_PROVIDER="stripe",
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_API_BASE=stripe_api.url,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    async with Harness.started(database_url, **settings) as harness:
        yield harness


async def test_sdk_sends_minor_units_urls_expiry_and_the_key(stripe_api: RecordedStripe) -> None:
    provider = StripeProvider(SecretStr(SECRET_KEY), api_base=stripe_api.url)
    expires = utcnow().replace(microsecond=0) + timedelta(hours=1)
    request = CheckoutSessionRequest(
        currency="usd",
        line_items=[CheckoutLineItem("Bubble tea", 9999, 2), CheckoutLineItem("Cake", 1250, 1)],
        success_url="https://shop.example/ok?s={CHECKOUT_SESSION_ID}",
        cancel_url="https://shop.example/cancel",
        expires_at=expires,
        client_reference_id="order-1",
        metadata={"order_id": "order-1", "checkout_payment_id": "pay-1"},
    )
    try:
        view = await provider.create_checkout_session(request, idempotency_key="checkout:pay-1")
    finally:
        await provider.aclose()
    [sent] = stripe_api.recorded.requests
    form = sent["form"]
    assert sent["idempotency_key"] == "checkout:pay-1"
    assert sent["authorization"] == f"Bearer {SECRET_KEY}"
    assert form["mode"] == "payment"
    assert form["line_items"]["0"] == {
        "quantity": "2",
        "price_data": {"currency": "usd", "unit_amount": "9999",
                       "product_data": {"name": "Bubble tea"}},
    }  # fmt: skip
    assert form["line_items"]["1"]["price_data"]["unit_amount"] == "1250"
    assert form["expires_at"] == str(int(expires.timestamp()))
    assert form["success_url"] == "https://shop.example/ok?s={CHECKOUT_SESSION_ID}"
    assert form["payment_intent_data"]["metadata"] == {
        "order_id": "order-1", "checkout_payment_id": "pay-1"
    }  # fmt: skip
    assert view.amount_total_minor == 2 * 9999 + 1250
    assert view.url is not None
    assert view.url.startswith("https://checkout.stripe.com/c/pay/cs_test_")
    assert view.status == "open"


def _signed(event: dict[str, object]) -> tuple[bytes, str]:
    body = orjson.dumps(event)
    return body, stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)


async def _post_event(harness: Harness, event: dict[str, object]) -> None:
    body, header = _signed(event)
    response = await harness.client.post(
        "/payments/webhook", content=body, headers={"Stripe-Signature": header}
    )
    assert response.status_code == 200, response.text


async def test_paid_on_stripe_confirms_the_order(
    on_stripe: Harness, shop: Shop, stripe_api: RecordedStripe
) -> None:
    user = shop.add_user("st@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 2)])
    created = await create_session(on_stripe, user_token(user), order_id)
    assert created.status_code == 200, created.text
    assert created.json()["checkoutUrl"].startswith("https://checkout.stripe.com/c/pay/")
    [sent] = stripe_api.recorded.requests
    assert sent["form"]["line_items"]["0"]["price_data"]["unit_amount"] == "9999"
    assert sent["form"]["metadata"]["order_id"] == order_id

    session = stripe_api.recorded.sessions[created.json()["sessionId"]]
    paid = session | {
        "status": "complete", "payment_status": "paid", "payment_intent": INTENT_ID,
        "customer_details": {"email": "st@example.com", "name": "St"},
    }  # fmt: skip
    await _post_event(on_stripe, recorded_event("checkout.session.completed", paid,
                                                event_id="evt_1QcqCompleted"))  # fmt: skip
    await on_stripe.drain()
    assert shop.order_status(order_id) == "CONFIRMED"


async def test_failed_on_stripe_expires_the_session_and_cancels(
    on_stripe: Harness, shop: Shop, stripe_api: RecordedStripe
) -> None:
    user = shop.add_user("sf@example.com", "pw")
    order_id = shop.add_order(user, [("prod_cake", 2)])
    created = await create_session(on_stripe, user_token(user), order_id)
    session_id = created.json()["sessionId"]
    session = stripe_api.recorded.sessions[session_id]
    intent = RECORDED_DECLINED_INTENT | {
        "amount": session["amount_total"], "metadata": session["metadata"]
    }  # fmt: skip
    event = recorded_event("payment_intent.payment_failed", intent, event_id="evt_1QcqFailed")
    await _post_event(on_stripe, event)
    await _post_event(on_stripe, event)  # Stripe re-sends
    await on_stripe.drain()

    assert shop.order_status(order_id) == "CANCELLED"
    assert shop.state.releases == [{"orderId": order_id, "productId": "prod_cake", "quantity": 2}]
    paths = [(r["method"], r["path"], r["idempotency_key"]) for r in stripe_api.recorded.requests]
    assert ("GET", f"/v1/payment_intents/{INTENT_ID}", None) in paths
    [expire] = [p for p in paths if p[1].endswith("/expire")]
    assert expire[2] is not None
    assert expire[2].startswith("expire_session:")
    assert session["status"] == "expired"


async def test_delayed_payment_settles_on_the_async_event(
    on_stripe: Harness, shop: Shop, stripe_api: RecordedStripe
) -> None:
    """A bank debit: the session completes unpaid (nothing yet), then settles later."""
    user = shop.add_user("sd@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 1)])
    session_id = (await create_session(on_stripe, user_token(user), order_id)).json()["sessionId"]
    session = stripe_api.recorded.sessions[session_id]
    unpaid = session | {"status": "complete", "payment_status": "unpaid",
                        "payment_intent": INTENT_ID}  # fmt: skip
    await _post_event(on_stripe, recorded_event("checkout.session.completed", unpaid,
                                                event_id="evt_1QcqUnpaid"))  # fmt: skip
    await on_stripe.drain()
    assert shop.order_status(order_id) == "PENDING"

    paid = unpaid | {"payment_status": "paid"}
    await _post_event(on_stripe, recorded_event("checkout.session.async_payment_succeeded",
                                                paid, event_id="evt_1QcqSettled"))  # fmt: skip
    await on_stripe.drain()
    assert shop.order_status(order_id) == "CONFIRMED"
