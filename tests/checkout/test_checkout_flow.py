"""Seed 004's flows against the sandbox and a real shop: paid → order CONFIRMED; declined or
expired → inventory released per item, order CANCELLED; each exactly once."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import orjson
from bench.broker import TansuBroker
from sqlalchemy import select

from payport.checkout.models import OrderCall
from payport.db import utcnow
from payport.providers.sandbox import SandboxProvider
from payport.providers.sandbox.store import SandboxStore
from payport.webhooks.models import ProviderEvent
from payport.webhooks.signature import signature_header
from tests.checkout.conftest import checkout_settings, create_session, pay
from tests.checkout.shop import Shop, user_token
from tests.harness import Harness, Stack


async def _checkout_events(harness: Harness) -> list[dict[str, object]]:
    return [e for e in await harness.stored_events() if str(e["type"]).startswith("checkout.")]


async def _order_calls(harness: Harness) -> list[OrderCall]:
    async with harness.runtime.db.read() as session:
        return list(await session.scalars(select(OrderCall).order_by(OrderCall.id)))


async def _redeliver(harness: Harness, event_type: str) -> dict[str, object]:
    """POST the stored copy of a sandbox event again, freshly signed, to /payments/webhook."""
    async with harness.runtime.db.read() as session:
        body = await session.scalar(
            select(ProviderEvent.body).where(ProviderEvent.event_type == event_type)
        )
    assert body is not None
    secret = (await harness.runtime.webhook_secrets())[0]
    response = await harness.client.post(
        "/payments/webhook",
        content=body.encode(),
        headers={"Stripe-Signature": signature_header(secret, body.encode())},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


async def test_paid_checkout_confirms_the_order_once(payport: Harness, shop: Shop) -> None:
    user = shop.add_user("ada@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 2)])
    token = user_token(user)

    created = await create_session(payport, token, order_id)
    assert created.status_code == 200, created.text
    session_id = created.json()["sessionId"]
    assert session_id.startswith("cs_test_")
    assert created.json()["checkoutUrl"].endswith(f"/sandbox/checkout/{session_id}")

    paid = await pay(payport, session_id, "4242 4242 4242 4242")
    assert paid.status_code == 303
    assert paid.headers["location"].endswith(f"/payments/checkout/success?session_id={session_id}")
    await payport.drain()

    assert shop.order_status(order_id) == "CONFIRMED"
    [update] = shop.state.status_updates
    status = (
        await payport.client.get(
            f"/payments/status/{order_id}", headers={"Authorization": f"Bearer {token}"}
        )
    ).json()
    assert update == {"orderId": order_id, "status": "CONFIRMED", "paymentId": update["paymentId"]}
    assert status["status"] == "SUCCESS"
    assert status["amount"] == 199.98
    assert status["currency"] == "usd"
    [event] = await _checkout_events(payport)
    assert event["type"] == "checkout.completed"
    assert event["payload"]["amount"] == 19998  # type: ignore[index]
    assert event["payload"]["order_id"] == order_id  # type: ignore[index]

    # Stripe re-sends; payport stores the copy once and changes nothing.
    assert (await _redeliver(payport, "checkout.session.completed"))["duplicate"] is True
    await payport.drain()
    assert len(shop.state.status_updates) == 1
    assert len(await _checkout_events(payport)) == 1
    assert shop.state.releases == []


async def test_declined_card_releases_every_item_then_cancels(payport: Harness, shop: Shop) -> None:
    user = shop.add_user("bob@example.com", "pw")
    shop.stock_up(prod_tea=10, prod_cake=10)
    order_id = shop.add_order(user, [("prod_tea", 2), ("prod_cake", 3)])
    assert shop.state.stock == {"prod_tea": 8, "prod_cake": 7}
    session_id = (await create_session(payport, user_token(user), order_id)).json()["sessionId"]

    declined = await pay(payport, session_id, "4000 0000 0000 0002")
    assert declined.status_code == 402
    assert "Your card was declined." in declined.text
    await payport.drain()

    assert shop.order_status(order_id) == "CANCELLED"
    assert shop.state.stock == {"prod_tea": 10, "prod_cake": 10}
    assert shop.state.releases == [
        {"orderId": order_id, "productId": "prod_tea", "quantity": 2},
        {"orderId": order_id, "productId": "prod_cake", "quantity": 3},
    ]
    paths = [call["path"] for call in shop.state.internal_calls]
    assert paths == ["/internal/inventory/release"] * 2 + [f"/internal/orders/{order_id}/status"]
    [event] = await _checkout_events(payport)
    assert event["type"] == "checkout.failed"
    assert event["payload"]["reason"] == "generic_decline"  # type: ignore[index]
    # payport closed the session after the decline (checkout.session.expired followed):
    # two failure events, one outcome, and no later payment can get through.
    assert len(shop.state.status_updates) == 1
    provider = payport.runtime.provider
    assert isinstance(provider, SandboxProvider)
    closed = await provider.find_checkout_session(session_id)
    assert closed is not None
    assert closed.status == "expired"
    again = await pay(payport, session_id, "4242 4242 4242 4242")
    assert again.status_code == 409


async def test_payment_after_a_decline_is_refunded(payport: Harness, shop: Shop) -> None:
    """The customer retries with a good card before payport has closed the session."""
    user = shop.add_user("gus@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 1)])
    session_id = (await create_session(payport, user_token(user), order_id)).json()["sessionId"]
    assert (await pay(payport, session_id, "4000000000000002")).status_code == 402
    # payport learns of the decline, but has not closed the session yet...
    assert await payport.runtime.delivery_step() == 1
    await payport.runtime.webhook_step()
    await payport.runtime.webhook_processor.join()
    # ...when the customer pays with another card.
    assert (await pay(payport, session_id, "4242424242424242")).status_code == 303
    await payport.drain()

    assert shop.order_status(order_id) == "CANCELLED"
    provider = payport.runtime.provider
    assert isinstance(provider, SandboxProvider)
    session = await provider.find_checkout_session(session_id)
    assert session is not None
    assert session.status == "complete"
    assert session.payment_intent is not None
    intent = await provider.retrieve_payment_intent(session.payment_intent)
    assert intent.latest_charge is not None
    async with payport.runtime.db.read() as db_session:
        charge = await SandboxStore(db_session).get(intent.latest_charge, "charge")
    assert charge is not None
    assert charge["amount_refunded"] == 9999
    [event] = await _checkout_events(payport)
    assert event["type"] == "checkout.failed"


async def test_expired_session_cancels_the_order(payport: Harness, shop: Shop) -> None:
    user = shop.add_user("cy@example.com", "pw")
    order_id = shop.add_order(user, [("prod_cake", 1)])
    await create_session(payport, user_token(user), order_id)
    provider = payport.runtime.provider
    assert isinstance(provider, SandboxProvider)

    assert await provider.expire_due_checkout_sessions() == 0  # not yet
    later = utcnow() + timedelta(hours=2)
    assert await provider.expire_due_checkout_sessions(now=later) == 1
    await payport.drain()

    assert shop.order_status(order_id) == "CANCELLED"
    assert shop.state.releases == [{"orderId": order_id, "productId": "prod_cake", "quantity": 1}]
    assert await provider.expire_due_checkout_sessions(now=later) == 0


async def test_second_create_session_returns_the_open_session(payport: Harness, shop: Shop) -> None:
    user = shop.add_user("di@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 1)])
    token = user_token(user)
    first, second = await asyncio.gather(
        create_session(payport, token, order_id), create_session(payport, token, order_id)
    )
    third = await create_session(payport, token, order_id)
    assert first.status_code == second.status_code == third.status_code == 200
    assert first.json() == second.json() == third.json()


async def test_order_service_down_gets_its_call_when_back(payport: Harness, shop: Shop) -> None:
    user = shop.add_user("ed@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 1)])
    session_id = (await create_session(payport, user_token(user), order_id)).json()["sessionId"]
    shop.stop()
    await pay(payport, session_id, "4242424242424242")
    await payport.drain()
    await asyncio.sleep(0.3)
    await payport.drain()
    [call] = await _order_calls(payport)
    assert call.status == "pending"
    assert call.attempts >= 2
    assert "ConnectError" in (call.last_error or "")

    shop.start()
    deadline = time.monotonic() + 10
    while shop.order_status(order_id) != "CONFIRMED":
        assert time.monotonic() < deadline, "the confirm call never arrived"
        await asyncio.sleep(0.1)
        await payport.drain()
    await asyncio.sleep(0.3)
    await payport.drain()
    [call] = await _order_calls(payport)
    assert call.status == "done"
    assert len(shop.state.status_updates) == 1
    assert orjson.loads(call.body) == {"status": "CONFIRMED", "paymentId": call.payment_id}


async def test_internal_calls_carry_a_signed_service_token(payport: Harness, shop: Shop) -> None:
    user = shop.add_user("fa@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 1)])
    session_id = (await create_session(payport, user_token(user), order_id)).json()["sessionId"]
    await pay(payport, session_id, "4242424242424242")
    await payport.drain()
    # The shop refuses any call without a valid token; every one of payport's got through.
    assert shop.state.refused_calls == 0
    assert shop.state.internal_calls[0]["key"].startswith("order_status:")


async def test_a_wrong_service_secret_is_refused_by_the_shop(database_url: str, shop: Shop) -> None:
    user = shop.add_user("ho@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 1)])
    settings = checkout_settings(shop, INTERNAL_SERVICE_SECRET="not-the-shop-secret-" + "x" * 20)
    async with Harness.started(database_url, **settings) as harness:
        response = await create_session(harness, user_token(user), order_id)
    assert response.status_code == 503
    assert response.json()["error"] == "Order service unavailable; try again shortly"
    assert shop.state.refused_calls == 1


async def test_checkout_events_reach_kafka(
    postgres_url: str, kafka_broker: TansuBroker, shop: Shop
) -> None:
    user = shop.add_user("ka@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 1)])
    stack = Stack.on_kafka(postgres_url, kafka_broker.bootstrap)
    async with stack.started(**checkout_settings(shop)) as harness:
        session_id = (await create_session(harness, user_token(user), order_id)).json()["sessionId"]
        await pay(harness, session_id, "4242424242424242")
        await harness.drain()
        published = [e for e in await harness.all_events() if e["type"].startswith("checkout.")]
    [event] = published
    assert event["type"] == "checkout.completed"
    assert event["payload"]["order_id"] == order_id
    assert event["source"] == "payment-service"
    assert shop.order_status(order_id) == "CONFIRMED"
