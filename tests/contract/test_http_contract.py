"""CONTRACT.md replayed on every stack: SQLite and PostgreSQL, local transport and Kafka,
the sandbox provider and Stripe (localstripe, its webhooks calling payport).

Commands go in through `POST /api/v1/commands` (the CONTRACT envelope, byte for byte)
and events come out of `GET /api/v1/events` (or the event topic); the CampusG routes are
called as the seeds' orchestrators call them. What the provider holds is read back from
the provider itself (tests/provider_truth.py). Kafka's dead-letter queue is covered in
tests/kafka; everything else in CONTRACT.md is here.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from payport.webhooks.models import ProviderEvent
from payport.webhooks.signature import signature_header
from tests import provider_truth
from tests.harness import BASE, Harness, nested_authorize, sandbox_only

EVENT_KEYS = {"type", "correlation_id", "timestamp", "payload", "source", "event_id"}
PAYMENT_KEYS = {
    "paymentId",
    "orderId",
    "customerId",
    "runnerId",
    "amount",
    "currency",
    "status",
    "description",
    "paymentIntentId",
    "transferId",
    "createdAt",
    "updatedAt",
}
STATUSES = {"INITIATING", "REQUIRES_ACTION", "AUTHORIZED", "SUCCEEDED", "FAILED", "REVERTED"}
AUTHORIZED_KEYS = {"payment_id", "order_id", "payment_intent_id", "status"}
FAILED_KEYS = {"error", "message"}
RELEASED_KEYS = {"payment_id", "order_id", "runner_id", "amount", "transfer_id", "status"}
REVERTED_KEYS = {"payment_id", "order_id", "status", "reason"}
STRIPE_REASONS = {"duplicate", "fraudulent", "requested_by_customer", "abandoned"}
RUNNER = {"runner_id": "runner_bob", "runner_connect_account_id": "acct_bob"}


# --- helpers --------------------------------------------------------------------------------


def flat_authorize(
    order_id: str,
    customer_id: str,
    *,
    amount: int = 2500,
    payment_method: str = "pm_card_visa",
    currency: str | None = None,
) -> dict[str, Any]:
    """Seed 002's flat `authorize_payment` payload."""
    payload: dict[str, Any] = {
        "customer_id": customer_id,
        "payment_method_id": payment_method,
        "amount": amount,
        "order_id": order_id,
    }
    if currency is not None:
        payload["currency"] = currency
    return payload


async def run(
    harness: Harness, kind: str, payload: dict[str, Any], *, correlation_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Send one command, let the worker settle, return (correlation id, its outcome event)."""
    cid = await harness.command(kind, payload, correlation_id=correlation_id)
    await harness.drain()
    return cid, await harness.outcome(cid)


async def events_for(harness: Harness, correlation_id: str) -> list[dict[str, Any]]:
    return [e for e in await harness.all_events() if e["correlation_id"] == correlation_id]


def check_event(event: dict[str, Any], event_type: str, correlation_id: str) -> dict[str, Any]:
    """The envelope every event carries; returns the payload."""
    assert set(event) == EVENT_KEYS, event
    assert event["type"] == event_type, event
    assert event["correlation_id"] == correlation_id
    assert event["source"] == "payment-service"
    assert isinstance(event["event_id"], str) and event["event_id"]
    assert isinstance(event["timestamp"], str)
    datetime.fromisoformat(event["timestamp"])
    payload: dict[str, Any] = event["payload"]
    assert isinstance(payload, dict)
    return payload


def check_authorized(event: dict[str, Any], correlation_id: str, order_id: str) -> dict[str, Any]:
    payload = check_event(event, "payment.authorized", correlation_id)
    assert set(payload) >= AUTHORIZED_KEYS, payload
    assert payload["order_id"] == order_id
    assert payload["status"] == "AUTHORIZED"
    assert isinstance(payload["payment_id"], str) and payload["payment_id"]
    assert str(payload["payment_intent_id"]).startswith("pi_")
    return payload


def check_failed(event: dict[str, Any], correlation_id: str, error: str) -> dict[str, Any]:
    payload = check_event(event, "payment.failed", correlation_id)
    assert set(payload) >= FAILED_KEYS, payload
    assert payload["error"] == error, payload
    assert isinstance(payload["message"], str) and payload["message"]
    return payload


async def authorized_payment(harness: Harness, order_id: str, amount: int = 2500) -> str:
    event = await harness.authorize(order_id, amount=amount)
    assert event["type"] == "payment.authorized", event
    payment_id: str = event["payload"]["payment_id"]
    return payment_id


async def released_payment(harness: Harness, order_id: str, amount: int = 2500) -> str:
    payment_id = await authorized_payment(harness, order_id, amount)
    _cid, event = await run(harness, "release_payment", {"payment_id": payment_id, **RUNNER})
    assert event["type"] == "payment.released", event
    return payment_id


async def provider_count(harness: Harness, object_type: str) -> int:
    """How many objects of a kind (payment_intent, charge, transfer, refund) the provider holds."""
    return await provider_truth.provider_count(harness.runtime, object_type)


async def provider_intent(harness: Harness, intent_id: str) -> dict[str, Any]:
    return await provider_truth.provider_intent(harness.runtime, intent_id)


async def api_payment(harness: Harness, payment_id: str) -> dict[str, Any]:
    response = await harness.client.get(f"/api/v1/payments/{payment_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def webhook_secret(harness: Harness) -> str:
    return (await harness.runtime.webhook_secrets())[0]


async def post_signed_webhook(harness: Harness, path: str, body: bytes) -> Any:
    header = signature_header(await webhook_secret(harness), body, timestamp=int(time.time()))
    return await harness.client.post(
        path, content=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


def parse_iso(value: object) -> datetime:
    assert isinstance(value, str), value
    return datetime.fromisoformat(value)


# --- GET /health ----------------------------------------------------------------------------


async def test_health_answers_healthy(harness: Harness) -> None:
    response = await harness.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


# --- the local transport ------------------------------------------------------------------


async def test_command_is_accepted_with_202_and_echoed_correlation_id(harness: Harness) -> None:
    cid = str(uuid.uuid4())
    envelope = {
        "type": "authorize_payment",
        "correlation_id": cid,
        "timestamp": "2025-03-31T10:15:30.123456",
        "payload": nested_authorize("order-accept"),
    }
    response = await harness.client.post("/api/v1/commands", content=orjson.dumps(envelope))
    assert response.status_code == 202
    assert response.json() == {
        "accepted": True,
        "type": "authorize_payment",
        "correlation_id": cid,
    }
    await harness.drain()
    check_authorized(await harness.outcome(cid), cid, "order-accept")


async def test_events_are_read_after_a_cursor_in_publish_order(harness: Harness) -> None:
    await authorized_payment(harness, "order-page-1")
    await authorized_payment(harness, "order-page-2")
    first = (await harness.client.get("/api/v1/events", params={"after": 0, "limit": 1})).json()
    assert [e["payload"]["order_id"] for e in first["data"]] == ["order-page-1"]
    assert first["has_more"] is True
    rest = (
        await harness.client.get(
            "/api/v1/events", params={"after": first["next_cursor"], "limit": 10}
        )
    ).json()
    assert [e["payload"]["order_id"] for e in rest["data"]] == ["order-page-2"]
    assert rest["has_more"] is False
    assert first["data"][0]["event_id"] != rest["data"][0]["event_id"]


# --- authorize_payment: both shapes -------------------------------------------------------


async def test_flat_authorize_with_provider_customer_reports_it_as_user(harness: Harness) -> None:
    cid, event = await run(
        harness, "authorize_payment", flat_authorize("order-flat-cus", "cus_seed002")
    )
    payload = check_authorized(event, cid, "order-flat-cus")
    payment = await harness.payment_by_order("order-flat-cus")
    assert payment["customerId"] == "cus_seed002"
    assert payment["paymentId"] == payload["payment_id"]
    assert payment["paymentIntentId"] == payload["payment_intent_id"]
    assert payment["status"] == "AUTHORIZED"
    assert payment["currency"] == "usd"
    assert payment["amount"] == 25.0
    assert (await api_payment(harness, payload["payment_id"]))[
        "provider_customer_id"
    ] == "cus_seed002"
    intent = await provider_intent(harness, payload["payment_intent_id"])
    assert intent["customer"] == "cus_seed002"
    assert intent["capture_method"] == "manual"
    assert intent["status"] == "requires_capture"
    assert intent["amount"] == 2500


async def test_flat_authorize_with_marketplace_user_charges_without_provider_customer(
    harness: Harness,
) -> None:
    cid, event = await run(
        harness, "authorize_payment", flat_authorize("order-flat-user", "user_carol")
    )
    payload = check_authorized(event, cid, "order-flat-user")
    payment = await harness.payment_by_order("order-flat-user")
    assert payment["customerId"] == "user_carol"
    assert (await api_payment(harness, payload["payment_id"]))["provider_customer_id"] is None
    intent = await provider_intent(harness, payload["payment_intent_id"])
    assert intent["customer"] is None
    assert intent["capture_method"] == "manual"


async def test_nested_authorize_uses_clerk_user_and_stripe_customer(harness: Harness) -> None:
    cid, event = await run(harness, "authorize_payment", nested_authorize("order-nested", 4200))
    payload = check_authorized(event, cid, "order-nested")
    payment = await harness.payment_by_order("order-nested")
    assert payment["customerId"] == "user_alice"
    assert payment["description"] == "Campus delivery"
    assert payment["amount"] == 42.0
    assert payment["status"] == "AUTHORIZED"
    assert (await api_payment(harness, payload["payment_id"]))["provider_customer_id"] == (
        "cus_alice"
    )
    intent = await provider_intent(harness, payload["payment_intent_id"])
    assert intent["customer"] == "cus_alice"
    assert intent["capture_method"] == "manual"
    assert intent["amount"] == 4200


async def test_flat_authorize_with_explicit_currency(harness: Harness) -> None:
    cid, event = await run(
        harness,
        "authorize_payment",
        flat_authorize("order-eur", "user_carol", amount=1999, currency="EUR"),
    )
    check_authorized(event, cid, "order-eur")
    payment = await harness.payment_by_order("order-eur")
    assert payment["currency"] == "eur"
    assert payment["amount"] == 19.99


@pytest.mark.parametrize(
    ("payment_method", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_declined_card_publishes_payment_failed(
    harness: Harness, payment_method: str, decline_code: str
) -> None:
    cid, event = await run(
        harness, "authorize_payment", nested_authorize("order-declined", 2500, payment_method)
    )
    payload = check_failed(event, cid, "STRIPE_CARD_ERROR")
    assert payload["stripe_code"] == "card_declined"
    assert payload["decline_code"] == decline_code
    assert payload["order_id"] == "order-declined"
    payment = await harness.payment_by_order("order-declined")
    assert payload["payment_id"] == payment["paymentId"]
    assert payment["status"] == "FAILED"
    assert len(await events_for(harness, cid)) == 1


# --- release_payment ----------------------------------------------------------------------


async def test_release_captures_and_transfers_to_runner(harness: Harness) -> None:
    payment_id = await authorized_payment(harness, "order-release")
    cid, event = await run(harness, "release_payment", {"payment_id": payment_id, **RUNNER})
    payload = check_event(event, "payment.released", cid)
    assert set(payload) >= RELEASED_KEYS, payload
    assert payload["payment_id"] == payment_id
    assert payload["order_id"] == "order-release"
    assert payload["runner_id"] == "runner_bob"
    assert payload["amount"] == 2500
    assert payload["status"] == "SUCCEEDED"
    assert str(payload["transfer_id"]).startswith("tr_")

    payment = await harness.payment_by_order("order-release")
    assert payment["status"] == "SUCCEEDED"
    assert payment["transferId"] == payload["transfer_id"]
    assert payment["runnerId"] == "runner_bob"
    assert payment["amount"] == 25.0
    intent = await provider_intent(harness, payment["paymentIntentId"])
    assert intent["status"] == "succeeded"
    assert intent["amount_received"] == 2500
    assert await provider_count(harness, "transfer") == 1


async def test_legacy_release_route_queues_release_payment(harness: Harness) -> None:
    payment_id = await authorized_payment(harness, "order-legacy-release")
    response = await harness.client.post(f"/payment/{payment_id}/release", json=RUNNER)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["success"] is True
    cid = body["correlation_id"]
    assert isinstance(cid, str) and cid
    await harness.drain()
    payload = check_event(await harness.outcome(cid), "payment.released", cid)
    assert payload["payment_id"] == payment_id
    assert payload["runner_id"] == "runner_bob"
    assert str(payload["transfer_id"]).startswith("tr_")
    assert (await harness.payment_by_order("order-legacy-release"))["status"] == "SUCCEEDED"


# --- revert_payment -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("changed my mind", "requested_by_customer"),
        ("fraudulent", "fraudulent"),
        ("duplicate", "duplicate"),
        (None, "requested_by_customer"),
    ],
)
async def test_revert_before_capture_cancels_the_hold(
    harness: Harness, reason: str | None, expected: str
) -> None:
    payment_id = await authorized_payment(harness, "order-cancel")
    command: dict[str, Any] = {"payment_id": payment_id}
    if reason is not None:
        command["reason"] = reason
    cid, event = await run(harness, "revert_payment", command)
    payload = check_event(event, "payment.reverted", cid)
    assert set(payload) >= REVERTED_KEYS, payload
    assert payload["payment_id"] == payment_id
    assert payload["order_id"] == "order-cancel"
    assert payload["status"] == "REVERTED"
    assert payload["reason"] == expected
    assert payload["reason"] in STRIPE_REASONS
    assert "refund_id" not in payload
    payment = await harness.payment_by_order("order-cancel")
    assert payment["status"] == "REVERTED"
    intent = await provider_intent(harness, payment["paymentIntentId"])
    assert intent["status"] == "canceled"
    assert intent["cancellation_reason"] == expected
    assert await provider_count(harness, "refund") == 0


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("changed my mind", "requested_by_customer"), ("fraudulent", "fraudulent")],
)
async def test_revert_after_release_refunds(harness: Harness, reason: str, expected: str) -> None:
    payment_id = await released_payment(harness, "order-refund")
    cid, event = await run(harness, "revert_payment", {"payment_id": payment_id, "reason": reason})
    payload = check_event(event, "payment.reverted", cid)
    assert set(payload) >= REVERTED_KEYS, payload
    assert payload["payment_id"] == payment_id
    assert payload["order_id"] == "order-refund"
    assert payload["status"] == "REVERTED"
    assert payload["reason"] == expected
    assert str(payload["refund_id"]).startswith("re_")
    assert (await harness.payment_by_order("order-refund"))["status"] == "REVERTED"
    assert await provider_count(harness, "refund") == 1


async def test_legacy_revert_route_takes_no_body_and_no_content_type(harness: Harness) -> None:
    payment_id = await authorized_payment(harness, "order-legacy-revert")
    response = await harness.client.post(f"/payment/{payment_id}/revert")
    assert "content-type" not in response.request.headers
    assert response.request.content == b""
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["success"] is True
    cid = body["correlation_id"]
    assert isinstance(cid, str) and cid
    await harness.drain()
    payload = check_event(await harness.outcome(cid), "payment.reverted", cid)
    assert payload["payment_id"] == payment_id
    assert payload["reason"] == "requested_by_customer"
    assert (await harness.payment_by_order("order-legacy-revert"))["status"] == "REVERTED"


async def test_legacy_revert_route_passes_the_reason(harness: Harness) -> None:
    payment_id = await authorized_payment(harness, "order-legacy-reason")
    response = await harness.client.post(
        f"/payment/{payment_id}/revert", json={"reason": "fraudulent"}
    )
    assert response.status_code == 202, response.text
    cid = response.json()["correlation_id"]
    await harness.drain()
    payload = check_event(await harness.outcome(cid), "payment.reverted", cid)
    assert payload["reason"] == "fraudulent"


# --- GET /payment/{order_id}/status and /payment/{payment_id}/details --------------------


async def test_status_and_details_show_the_same_camelcase_payment(harness: Harness) -> None:
    started = datetime.now().astimezone()
    payment_id = await authorized_payment(harness, "order-view")
    status = await harness.client.get("/payment/order-view/status")
    details = await harness.client.get(f"/payment/{payment_id}/details")
    assert status.status_code == 200
    assert details.status_code == 200
    assert set(status.json()) == {"success", "payment"}
    assert status.json()["success"] is True
    assert details.json()["success"] is True
    payment = status.json()["payment"]
    assert details.json()["payment"] == payment
    assert set(payment) == PAYMENT_KEYS, payment
    assert payment["paymentId"] == payment_id
    assert payment["orderId"] == "order-view"
    assert payment["customerId"] == "user_alice"
    assert payment["runnerId"] is None
    assert payment["amount"] == 25.0
    assert isinstance(payment["amount"], float | int) and not isinstance(payment["amount"], bool)
    assert payment["currency"] == "usd"
    assert payment["status"] == "AUTHORIZED"
    assert payment["status"] in STATUSES
    assert payment["description"] == "Campus delivery"
    assert str(payment["paymentIntentId"]).startswith("pi_")
    assert payment["transferId"] is None
    created, updated = parse_iso(payment["createdAt"]), parse_iso(payment["updatedAt"])
    assert created.tzinfo is not None
    assert updated >= created
    assert abs((created - started).total_seconds()) < 60


@pytest.mark.parametrize(
    ("currency", "amount_minor", "major"),
    [
        ("usd", 2500, 25.0),
        ("usd", 1234, 12.34),
        ("usd", 50, 0.5),
        ("usd", 99_999_999, 999_999.99),
        ("jpy", 500, 500),
    ],
)
async def test_payment_amount_is_in_major_units(
    harness: Harness, currency: str, amount_minor: int, major: float
) -> None:
    cid, event = await run(
        harness,
        "authorize_payment",
        flat_authorize("order-major", "user_carol", amount=amount_minor, currency=currency),
    )
    check_authorized(event, cid, "order-major")
    payment = await harness.payment_by_order("order-major")
    assert payment["amount"] == major
    assert payment["currency"] == currency


@pytest.mark.parametrize(
    "path",
    ["/payment/order-nobody/status", "/payment/00000000-0000-4000-8000-000000000000/details"],
)
async def test_unknown_payment_answers_404_not_found(harness: Harness, path: str) -> None:
    await authorized_payment(harness, "order-somebody")
    response = await harness.client.get(path)
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"success", "error", "message"}, body
    assert body["success"] is False
    assert body["error"] == "NOT_FOUND"
    assert isinstance(body["message"], str) and body["message"]


# --- GET /history/{user_id} ---------------------------------------------------------------


async def test_history_sums_spent_and_earned_in_major_units(harness: Harness) -> None:
    await released_payment(harness, "order-h-released", 2500)  # alice spent, bob earned
    await authorized_payment(harness, "order-h-held", 1050)  # alice spent
    declined = await harness.authorize("order-h-declined", payment_method="pm_card_chargeDeclined")
    assert declined["type"] == "payment.failed"
    reverted = await authorized_payment(harness, "order-h-reverted", 700)
    _cid, event = await run(harness, "revert_payment", {"payment_id": reverted})
    assert event["type"] == "payment.reverted"

    alice = await harness.client.get("/history/user_alice")
    assert alice.status_code == 200
    assert alice.json() == {
        "userId": "user_alice",
        "totalSpent": 35.5,
        "totalEarned": 0,
        "spentCount": 2,
        "earnedCount": 0,
    }
    bob = (await harness.client.get("/history/runner_bob")).json()
    assert bob == {
        "userId": "runner_bob",
        "totalSpent": 0,
        "totalEarned": 25.0,
        "spentCount": 0,
        "earnedCount": 1,
    }


async def test_history_of_unknown_user_is_all_zero(harness: Harness) -> None:
    await authorized_payment(harness, "order-h-other")
    response = await harness.client.get("/history/user_nobody")
    assert response.status_code == 200
    assert response.json() == {
        "userId": "user_nobody",
        "totalSpent": 0,
        "totalEarned": 0,
        "spentCount": 0,
        "earnedCount": 0,
    }


async def test_history_counts_flat_shape_user_as_customer(harness: Harness) -> None:
    _cid, event = await run(
        harness, "authorize_payment", flat_authorize("order-h-flat", "user_dave", amount=1999)
    )
    assert event["type"] == "payment.authorized"
    body = (await harness.client.get("/history/user_dave")).json()
    assert body["totalSpent"] == 19.99
    assert body["spentCount"] == 1


# --- 3-D Secure -----------------------------------------------------------------------------


async def start_3ds(harness: Harness, order_id: str) -> tuple[str, dict[str, Any]]:
    """Authorize with a card that needs authentication; return (cid, payment)."""
    cid = await harness.command(
        "authorize_payment", nested_authorize(order_id, 2500, "pm_card_authenticationRequired")
    )
    await harness.drain()
    assert await events_for(harness, cid) == []
    payment = await harness.payment_by_order(order_id)
    assert payment["status"] == "REQUIRES_ACTION"
    intent = await provider_intent(harness, payment["paymentIntentId"])
    assert intent["status"] == "requires_action"
    return cid, payment


async def answer_3ds(harness: Harness, payment: dict[str, Any], *, approve: bool) -> None:
    await harness.answer_3ds(payment["paymentIntentId"], approve=approve)
    await harness.drain()


@sandbox_only("the 3-D Secure page is the sandbox's own; Stripe hosts its own page")
async def test_3ds_page_is_linked_from_the_payment_and_offers_approve(harness: Harness) -> None:
    _cid, payment = await start_3ds(harness, "order-3ds-page")
    url = payment["nextActionUrl"]
    assert url == f"{BASE}/sandbox/authenticate/{payment['paymentIntentId']}"
    page = await harness.client.get(url.removeprefix(BASE))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"{url.removeprefix(BASE)}/approve" in page.text


async def test_3ds_approve_authorizes_once(harness: Harness) -> None:
    cid, before = await start_3ds(harness, "order-3ds-ok")
    await answer_3ds(harness, before, approve=True)
    events = await events_for(harness, cid)
    assert len(events) == 1, events
    payload = check_authorized(events[0], cid, "order-3ds-ok")
    assert payload["payment_id"] == before["paymentId"]
    assert payload["payment_intent_id"] == before["paymentIntentId"]
    payment = await harness.payment_by_order("order-3ds-ok")
    assert payment["status"] == "AUTHORIZED"
    assert "nextActionUrl" not in payment


async def test_3ds_fail_publishes_card_error(harness: Harness) -> None:
    cid, before = await start_3ds(harness, "order-3ds-fail")
    await answer_3ds(harness, before, approve=False)
    events = await events_for(harness, cid)
    assert len(events) == 1, events
    payload = check_failed(events[0], cid, "STRIPE_CARD_ERROR")
    assert payload["payment_id"] == before["paymentId"]
    assert payload["order_id"] == "order-3ds-fail"
    assert (await harness.payment_by_order("order-3ds-fail"))["status"] == "FAILED"


# --- one order, one payment; duplicates ----------------------------------------------------


async def test_duplicate_authorize_charges_once(harness: Harness) -> None:
    first_cid, first = await run(harness, "authorize_payment", nested_authorize("order-dup"))
    second_cid, second = await run(harness, "authorize_payment", nested_authorize("order-dup"))
    first_payload = check_authorized(first, first_cid, "order-dup")
    second_payload = check_authorized(second, second_cid, "order-dup")
    assert second_payload["payment_id"] == first_payload["payment_id"]
    assert second_payload["payment_intent_id"] == first_payload["payment_intent_id"]
    assert second["event_id"] != first["event_id"]
    assert await provider_count(harness, "payment_intent") == 1
    assert await provider_count(harness, "charge") == 1
    response = await harness.client.get("/api/v1/payments", params={"order_id": "order-dup"})
    assert len(response.json()["data"]) == 1


async def test_duplicate_authorize_of_failed_order_repeats_the_failure(harness: Harness) -> None:
    payload = nested_authorize("order-dup-failed", 2500, "pm_card_chargeDeclined")
    first_cid, first = await run(harness, "authorize_payment", payload)
    second_cid, second = await run(harness, "authorize_payment", payload)
    assert (
        check_failed(first, first_cid, "STRIPE_CARD_ERROR")["payment_id"]
        == (check_failed(second, second_cid, "STRIPE_CARD_ERROR")["payment_id"])
    )
    assert await provider_count(harness, "payment_intent") == 1


async def test_resent_authorize_gets_the_same_event_and_no_second_charge(
    harness: Harness,
) -> None:
    cid, first = await run(harness, "authorize_payment", nested_authorize("order-resent"))
    await harness.command("authorize_payment", nested_authorize("order-resent"), correlation_id=cid)
    await harness.drain()
    copies = await events_for(harness, cid)
    assert len(copies) == 2, copies
    assert all(copy == first for copy in copies)
    assert await provider_count(harness, "payment_intent") == 1
    assert await provider_count(harness, "charge") == 1


async def test_resent_release_gets_the_same_event_and_no_second_transfer(
    harness: Harness,
) -> None:
    payment_id = await authorized_payment(harness, "order-resent-release")
    command = {"payment_id": payment_id, **RUNNER}
    cid, first = await run(harness, "release_payment", command)
    assert first["type"] == "payment.released"
    await harness.command("release_payment", command, correlation_id=cid)
    await harness.drain()
    copies = await events_for(harness, cid)
    assert len(copies) == 2, copies
    assert all(copy == first for copy in copies)
    assert await provider_count(harness, "transfer") == 1
    assert (await harness.payment_by_order("order-resent-release"))["status"] == "SUCCEEDED"


async def test_resent_revert_gets_the_same_event_and_no_second_refund(harness: Harness) -> None:
    payment_id = await released_payment(harness, "order-resent-revert")
    command = {"payment_id": payment_id, "reason": "duplicate"}
    cid, first = await run(harness, "revert_payment", command)
    assert first["type"] == "payment.reverted"
    await harness.command("revert_payment", command, correlation_id=cid)
    await harness.drain()
    copies = await events_for(harness, cid)
    assert len(copies) == 2, copies
    assert all(copy == first for copy in copies)
    assert await provider_count(harness, "refund") == 1


async def test_every_command_gets_exactly_one_outcome(harness: Harness) -> None:
    authorize_cid, authorized = await run(
        harness, "authorize_payment", nested_authorize("order-one-each")
    )
    payment_id = authorized["payload"]["payment_id"]
    release_cid, _ = await run(harness, "release_payment", {"payment_id": payment_id, **RUNNER})
    revert_cid, _ = await run(harness, "revert_payment", {"payment_id": payment_id})
    events = await harness.all_events()
    assert [e["type"] for e in events] == [
        "payment.authorized",
        "payment.released",
        "payment.reverted",
    ]
    assert [e["correlation_id"] for e in events] == [authorize_cid, release_cid, revert_cid]
    assert len({e["event_id"] for e in events}) == 3


# --- POST /stripe-webhook and /api/stripe-webhook ------------------------------------------


@pytest.mark.parametrize("path", ["/stripe-webhook", "/api/stripe-webhook"])
async def test_webhook_route_stores_a_signed_event_once(harness: Harness, path: str) -> None:
    event_id = f"evt_{uuid.uuid4().hex}"
    body = orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "charge.updated",
            "data": {"object": {"id": "ch_unknown", "object": "charge"}},
        }
    )
    first = await post_signed_webhook(harness, path, body)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "duplicate": False}
    again = await post_signed_webhook(harness, path, body)
    assert again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True}
    async with harness.runtime.db.read() as session:
        stored = (
            await session.execute(
                select(func.count())
                .select_from(ProviderEvent)
                .where(ProviderEvent.event_id == event_id)
            )
        ).scalar_one()
    assert stored == 1


async def test_redelivered_provider_event_is_applied_once(harness: Harness) -> None:
    cid, before = await start_3ds(harness, "order-redeliver")
    await answer_3ds(harness, before, approve=True)
    assert len(await events_for(harness, cid)) == 1
    async with harness.runtime.db.read() as session:
        bodies = (
            await session.execute(
                select(ProviderEvent.body).where(
                    ProviderEvent.event_type == "payment_intent.amount_capturable_updated"
                )
            )
        ).scalars()
        delivered = list(bodies)
    assert len(delivered) == 1  # as the provider sent it, stored once
    before_events = await harness.all_events()
    before_payment = await harness.payment_by_order("order-redeliver")

    response = await post_signed_webhook(harness, "/api/stripe-webhook", delivered[0].encode())
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": True}
    await harness.drain()
    assert await harness.all_events() == before_events
    assert await harness.payment_by_order("order-redeliver") == before_payment


async def test_duplicate_authorizes_sent_together_charge_once(harness: Harness) -> None:
    first = await harness.command("authorize_payment", nested_authorize("order-together"))
    second = await harness.command("authorize_payment", nested_authorize("order-together"))
    await harness.drain()
    one = check_authorized(await harness.outcome(first), first, "order-together")
    two = check_authorized(await harness.outcome(second), second, "order-together")
    assert one["payment_id"] == two["payment_id"]
    assert await provider_count(harness, "payment_intent") == 1
    assert await provider_count(harness, "charge") == 1


async def test_redelivered_command_before_processing_gets_one_event_id(harness: Harness) -> None:
    cid = await harness.command("authorize_payment", nested_authorize("order-twice"))
    await harness.command("authorize_payment", nested_authorize("order-twice"), correlation_id=cid)
    await harness.drain()
    copies = await events_for(harness, cid)
    assert len(copies) == 2, copies
    assert len({copy["event_id"] for copy in copies}) == 1
    check_authorized(copies[0], cid, "order-twice")
    assert await provider_count(harness, "payment_intent") == 1


async def test_duplicate_authorize_during_3ds_is_answered_once_settled(harness: Harness) -> None:
    first, before = await start_3ds(harness, "order-3ds-dup")
    second = await harness.command(
        "authorize_payment",
        nested_authorize("order-3ds-dup", 2500, "pm_card_authenticationRequired"),
    )
    await harness.drain()
    assert await events_for(harness, second) == []
    await answer_3ds(harness, before, approve=True)
    for cid in (first, second):
        events = await events_for(harness, cid)
        assert len(events) == 1, events
        assert (
            check_authorized(events[0], cid, "order-3ds-dup")["payment_id"] == (before["paymentId"])
        )
    assert await provider_count(harness, "payment_intent") == 1


async def test_revert_during_3ds_cancels_and_answers_the_authorize(harness: Harness) -> None:
    authorize_cid, before = await start_3ds(harness, "order-3ds-revert")
    revert_cid, event = await run(
        harness, "revert_payment", {"payment_id": before["paymentId"], "reason": "abandoned"}
    )
    payload = check_event(event, "payment.reverted", revert_cid)
    assert payload["status"] == "REVERTED"
    assert payload["reason"] == "abandoned"
    authorize_events = await events_for(harness, authorize_cid)
    assert len(authorize_events) == 1, authorize_events
    assert authorize_events[0]["type"] == "payment.failed"
    assert authorize_events[0]["payload"]["payment_id"] == before["paymentId"]
    assert (await harness.payment_by_order("order-3ds-revert"))["status"] == "REVERTED"
    intent = await provider_intent(harness, before["paymentIntentId"])
    assert intent["status"] == "canceled"


async def test_openapi_documents_every_campusg_route(harness: Harness) -> None:
    schema = (await harness.client.get("/openapi.json")).json()
    for path in (
        "/health",
        "/payment/{order_id}/status",
        "/payment/{payment_id}/details",
        "/history/{user_id}",
        "/payment/{payment_id}/release",
        "/payment/{payment_id}/revert",
        "/stripe-webhook",
    ):
        assert path in schema["paths"], path
    assert (await harness.client.get("/docs")).status_code == 200
