"""PaymentIntent events settle a payment from the provider's current view, once.

The sandbox and localstripe emit these events signed like Stripe; payport stores them, then
fetches the intent again and applies its state, so duplicates, replays and
late copies change nothing twice.
"""

from __future__ import annotations

from typing import Any

from tests.harness import Harness, nested_authorize
from tests.webhooks.helpers import of_type, post_event, stored_bodies


async def waiting_for_3ds(harness: Harness, order_id: str) -> tuple[str, dict[str, Any]]:
    cid = await harness.command(
        "authorize_payment", nested_authorize(order_id, 4000, "pm_card_authenticationRequired")
    )
    await harness.drain()
    payment = await harness.payment_by_order(order_id)
    assert payment["status"] == "REQUIRES_ACTION"
    return cid, payment


async def test_approved_3ds_authorizes_and_announces_once(harness: Harness) -> None:
    cid, payment = await waiting_for_3ds(harness, "order-3ds-ok")
    assert of_type(await harness.all_events(), "payment.authorized") == []

    await harness.answer_3ds(payment["paymentIntentId"], approve=True)
    await harness.drain()

    outcome = await harness.outcome(cid)
    assert outcome["type"] == "payment.authorized"
    assert outcome["payload"]["status"] == "AUTHORIZED"
    assert (await harness.payment_by_order("order-3ds-ok"))["status"] == "AUTHORIZED"


async def test_replayed_intent_events_are_stored_once_and_change_nothing(
    harness: Harness,
) -> None:
    _cid, payment = await waiting_for_3ds(harness, "order-3ds-replay")
    await harness.answer_3ds(payment["paymentIntentId"], approve=True)
    await harness.drain()
    before = await harness.all_events()

    for body in await stored_bodies(harness, "payment_intent.amount_capturable_updated"):
        response = await post_event(harness, body)
        assert response.status_code == 200
        assert response.json() == {"received": True, "duplicate": True}
    await harness.drain()

    assert await harness.all_events() == before


async def test_late_requires_action_event_does_not_move_an_authorized_payment_back(
    harness: Harness,
) -> None:
    _cid, payment = await waiting_for_3ds(harness, "order-3ds-late")
    await harness.answer_3ds(payment["paymentIntentId"], approve=True)
    await harness.drain()
    before = await harness.all_events()

    [requires_action] = await stored_bodies(harness, "payment_intent.requires_action")
    late = requires_action | {"id": "evt_late_requires_action"}  # a retry that arrived last
    assert (await post_event(harness, late)).status_code == 200
    await harness.drain()

    assert (await harness.payment_by_order("order-3ds-late"))["status"] == "AUTHORIZED"
    assert await harness.all_events() == before


async def test_failed_3ds_fails_the_payment_with_one_payment_failed(harness: Harness) -> None:
    cid, payment = await waiting_for_3ds(harness, "order-3ds-fail")

    await harness.answer_3ds(payment["paymentIntentId"], approve=False)
    await harness.drain()

    outcome = await harness.outcome(cid)
    assert outcome["type"] == "payment.failed"
    assert outcome["payload"]["order_id"] == "order-3ds-fail"
    assert (await harness.payment_by_order("order-3ds-fail"))["status"] == "FAILED"


async def test_hold_canceled_outside_payport_fails_the_payment_once(harness: Harness) -> None:
    authorized = await harness.authorize("order-canceled-outside")
    intent_id = authorized["payload"]["payment_intent_id"]

    await harness.runtime.provider.cancel_payment_intent(
        intent_id, reason="abandoned", idempotency_key="dashboard:cancel-1"
    )
    await harness.drain()
    [canceled] = await stored_bodies(harness, "payment_intent.canceled")
    await post_event(harness, canceled | {"id": "evt_canceled_again"})
    await harness.drain()

    failed = of_type(await harness.all_events(), "payment.failed")
    assert len(failed) == 1
    assert failed[0]["payload"]["error"] == "PAYMENT_CANCELED"
    assert (await harness.payment_by_order("order-canceled-outside"))["status"] == "FAILED"


async def test_succeeded_event_after_release_changes_nothing(harness: Harness) -> None:
    authorized = await harness.authorize("order-captured")
    payment_id = authorized["payload"]["payment_id"]
    cid = await harness.command(
        "release_payment",
        {"payment_id": payment_id, "runner_id": "r1", "runner_connect_account_id": "acct_r1"},
    )
    await harness.drain()
    assert (await harness.outcome(cid))["type"] == "payment.released"
    before = await harness.all_events()

    [succeeded] = await stored_bodies(harness, "payment_intent.succeeded")
    await post_event(harness, succeeded | {"id": "evt_succeeded_late"})
    await harness.drain()

    assert (await harness.payment_by_order("order-captured"))["status"] == "SUCCEEDED"
    assert await harness.all_events() == before
