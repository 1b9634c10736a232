"""Bad input gets a clear error and changes nothing already stored.

Each test first stores a good, authorized payment, then sends one bad thing and checks
the answer, that every stored payment and provider object is exactly as before, and
that the event stream only grew by the one expected `payment.failed` (or not at all).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from payport.webhooks.models import ProviderEvent
from payport.webhooks.signature import signature_header
from tests.harness import Harness, nested_authorize
from tests.provider_truth import provider_count

MAX_BODY = 1_048_576
PROBLEM_KEYS = {"type", "title", "status", "code", "detail", "field"}
RUNNER = {"runner_id": "runner_bob", "runner_connect_account_id": "acct_bob"}
MISSING = object()
PROVIDER_KINDS = ("payment_intent", "charge", "refund", "transfer")


# --- what is stored, before and after --------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    payments: list[dict[str, Any]]
    events: list[dict[str, Any]]
    provider_objects: dict[str, int]
    commands: int
    webhooks: int


async def _count(harness: Harness, model: Any) -> int:
    async with harness.runtime.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def stored(harness: Harness) -> Stored:
    response = await harness.client.get("/api/v1/payments", params={"limit": 100})
    assert response.status_code == 200
    counts = {kind: await provider_count(harness.runtime, kind) for kind in PROVIDER_KINDS}
    return Stored(
        payments=response.json()["data"],
        events=await harness.all_events(),
        provider_objects={kind: n for kind, n in counts.items() if n},
        commands=await harness.commands_submitted(),
        webhooks=await _count(harness, ProviderEvent),
    )


async def assert_untouched(
    harness: Harness, before: Stored, *, new_events: int, commands_added: int = 0
) -> list[dict[str, Any]]:
    """Drain, then check nothing stored changed; return the events added since `before`."""
    await harness.drain()
    after = await stored(harness)
    assert after.payments == before.payments
    assert after.provider_objects == before.provider_objects
    assert after.webhooks == before.webhooks
    assert after.commands == before.commands + commands_added
    assert after.events[: len(before.events)] == before.events
    added = after.events[len(before.events) :]
    assert len(added) == new_events, added
    return added


@pytest.fixture
async def good(harness: Harness) -> str:
    """A good order, authorized before the bad input arrives; returns its payment id."""
    event = await harness.authorize("order-good")
    assert event["type"] == "payment.authorized", event
    payment_id: str = event["payload"]["payment_id"]
    return payment_id


# --- helpers ---------------------------------------------------------------------------------


def envelope(kind: str, payload: dict[str, Any], correlation_id: str) -> bytes:
    # json, not orjson: some bad amounts (10**20) are beyond what orjson will encode.
    document = {
        "type": kind,
        "correlation_id": correlation_id,
        "timestamp": "2025-03-31T10:15:30.123456",
        "payload": payload,
    }
    return json.dumps(document).encode()


async def send_raw(harness: Harness, kind: str, payload: dict[str, Any]) -> str:
    cid = str(uuid.uuid4())
    response = await harness.client.post("/api/v1/commands", content=envelope(kind, payload, cid))
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": True, "type": kind, "correlation_id": cid}
    return cid


def check_failure(event: dict[str, Any], cid: str, error: str, field: str | None) -> dict[str, Any]:
    assert event["type"] == "payment.failed", event
    assert event["correlation_id"] == cid
    assert event["source"] == "payment-service"
    payload: dict[str, Any] = event["payload"]
    assert payload["error"] == error, payload
    assert isinstance(payload["message"], str) and payload["message"]
    if field is not None:
        assert payload["field"] == field, payload
    return payload


def check_problem(response: httpx.Response, status: int, code: str, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) == PROBLEM_KEYS, body
    assert body["status"] == status
    assert body["code"] == code
    assert body["field"] == field
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["type"], str) and body["type"]


def check_legacy_failure(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    return body


def flat(order_id: str, /, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "customer_id": "cus_seed002",
        "payment_method_id": "pm_card_visa",
        "amount": 2500,
        "currency": "usd",
        "order_id": order_id,
    }
    for key, value in changes.items():
        if value is MISSING:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def nested(order_id: str, *, amount: Any = 2500, currency: Any = MISSING) -> dict[str, Any]:
    payload = nested_authorize(order_id)
    if amount is MISSING:
        del payload["order"]["amount"]
    else:
        payload["order"]["amount"] = amount
    if currency is not MISSING:
        payload["order"]["currency"] = currency
    return payload


async def no_payment_for(harness: Harness, order_id: str) -> None:
    response = await harness.client.get(f"/payment/{order_id}/status")
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "NOT_FOUND"


# --- the envelope: 400 at the door, nothing stored -------------------------------------------

GOOD_PAYLOAD = {"order_id": "order-bad", "amount": 2500, "payment_method_id": "pm_card_visa"}


def _doc(**fields: Any) -> bytes:
    document: dict[str, Any] = {
        "type": "authorize_payment",
        "correlation_id": str(uuid.uuid4()),
        "timestamp": "2025-03-31T10:15:30.123456",
        "payload": GOOD_PAYLOAD,
    }
    for key, value in fields.items():
        if value is MISSING:
            document.pop(key)
        else:
            document[key] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b'{"type": "authorize_payment", ', "body", id="not-json"),
        pytest.param(b"", "body", id="empty"),
        pytest.param(b"[1, 2, 3]", "body", id="json-list"),
        pytest.param(b"42", "body", id="json-number"),
        pytest.param(b'"authorize_payment"', "body", id="json-string"),
        pytest.param(_doc(type=MISSING), "type", id="missing-type"),
        pytest.param(_doc(type="refund_everything"), "type", id="unknown-type"),
        pytest.param(_doc(type=7), "type", id="type-not-a-string"),
        pytest.param(_doc(correlation_id=MISSING), "correlation_id", id="missing-correlation-id"),
        pytest.param(_doc(correlation_id=""), "correlation_id", id="empty-correlation-id"),
        pytest.param(_doc(correlation_id="c" * 256), "correlation_id", id="long-correlation-id"),
        pytest.param(_doc(correlation_id=12345), "correlation_id", id="number-correlation-id"),
        pytest.param(_doc(payload=[GOOD_PAYLOAD]), "payload", id="payload-a-list"),
        pytest.param(_doc(payload=MISSING), "payload", id="missing-payload"),
    ],
)
async def test_bad_envelope_is_refused_with_400_and_not_stored(
    harness: Harness, good: str, body: bytes, field: str
) -> None:
    before = await stored(harness)
    response = await harness.client.post("/api/v1/commands", content=body)
    check_problem(response, 400, "INVALID_PAYLOAD", field)
    await assert_untouched(harness, before, new_events=0)
    await no_payment_for(harness, "order-bad")


# --- authorize_payment: bad amounts --------------------------------------------------------

BAD_AMOUNTS = [
    pytest.param(MISSING, id="missing"),
    pytest.param(None, id="null"),
    pytest.param(0, id="zero"),
    pytest.param(-2500, id="negative"),
    pytest.param(12.5, id="fractional"),
    pytest.param("1000", id="string"),
    pytest.param(True, id="boolean"),
    pytest.param(100_000_000, id="over-stripe-maximum"),
    pytest.param(10**20, id="absurdly-large"),
    pytest.param(49, id="under-usd-minimum"),
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_bad_amount_in_flat_authorize_fails_with_invalid_amount(
    harness: Harness, good: str, amount: Any
) -> None:
    before = await stored(harness)
    cid = await send_raw(harness, "authorize_payment", flat("order-bad", amount=amount))
    [event] = await assert_untouched(harness, before, new_events=1, commands_added=1)
    payload = check_failure(event, cid, "INVALID_AMOUNT", "amount")
    assert payload["order_id"] == "order-bad"
    await no_payment_for(harness, "order-bad")


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_bad_amount_in_nested_authorize_fails_with_invalid_amount(
    harness: Harness, good: str, amount: Any
) -> None:
    before = await stored(harness)
    cid = await send_raw(harness, "authorize_payment", nested("order-bad", amount=amount))
    [event] = await assert_untouched(harness, before, new_events=1, commands_added=1)
    payload = check_failure(event, cid, "INVALID_AMOUNT", "order.amount")
    assert payload["order_id"] == "order-bad"
    await no_payment_for(harness, "order-bad")


async def test_amount_at_the_usd_minimum_is_authorized(harness: Harness, good: str) -> None:
    cid = await send_raw(harness, "authorize_payment", flat("order-fifty", amount=50))
    await harness.drain()
    event = await harness.outcome(cid)
    assert event["type"] == "payment.authorized", event
    assert (await harness.payment_by_order("order-fifty"))["amount"] == 0.5


async def test_rejected_authorize_does_not_block_the_order(harness: Harness, good: str) -> None:
    rejected = await send_raw(harness, "authorize_payment", flat("order-retry", amount=0))
    await harness.drain()
    assert (await harness.outcome(rejected))["type"] == "payment.failed"
    retried = await send_raw(harness, "authorize_payment", flat("order-retry"))
    await harness.drain()
    event = await harness.outcome(retried)
    assert event["type"] == "payment.authorized", event
    assert (await harness.payment_by_order("order-retry"))["status"] == "AUTHORIZED"


# --- authorize_payment: other bad fields -----------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param(flat("order-bad", currency="zzz"), "currency", id="flat-unknown-currency"),
        pytest.param(flat("order-bad", currency=5), "currency", id="flat-currency-not-text"),
        pytest.param(nested("order-bad", currency="zzz"), "order.currency", id="nested-currency"),
        pytest.param(
            flat("order-bad", payment_method_id=MISSING),
            "payment_method_id",
            id="flat-missing-payment-method",
        ),
        pytest.param(
            {
                **nested_authorize("order-bad"),
                "customer": {"clerkUserId": "user_alice", "userStripeCard": {}},
            },
            "customer.userStripeCard.payment_method_id",
            id="nested-missing-payment-method",
        ),
        pytest.param(
            {**nested_authorize("order-bad"), "customer": "user_alice"},
            "customer",
            id="nested-customer-not-an-object",
        ),
        pytest.param(
            {**nested_authorize("order-bad"), "order": [2500]},
            "order",
            id="nested-order-not-an-object",
        ),
    ],
)
async def test_bad_authorize_field_fails_with_invalid_payload(
    harness: Harness, good: str, payload: dict[str, Any], field: str
) -> None:
    before = await stored(harness)
    cid = await send_raw(harness, "authorize_payment", payload)
    [event] = await assert_untouched(harness, before, new_events=1, commands_added=1)
    failed = check_failure(event, cid, "INVALID_PAYLOAD", field)
    assert failed["order_id"] == "order-bad"
    await no_payment_for(harness, "order-bad")


async def test_authorize_without_order_id_fails_with_invalid_payload(
    harness: Harness, good: str
) -> None:
    before = await stored(harness)
    cid = await send_raw(harness, "authorize_payment", flat("order-bad", order_id=MISSING))
    [event] = await assert_untouched(harness, before, new_events=1, commands_added=1)
    check_failure(event, cid, "INVALID_PAYLOAD", "order_id")


# --- release_payment / revert_payment: unknown payment ---------------------------------------


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("release_payment", RUNNER), ("revert_payment", {"reason": "fraudulent"})],
)
async def test_command_for_unknown_payment_fails_with_not_found(
    harness: Harness, good: str, kind: str, extra: dict[str, str]
) -> None:
    before = await stored(harness)
    cid = await send_raw(harness, kind, {"payment_id": str(uuid.uuid4()), **extra})
    [event] = await assert_untouched(harness, before, new_events=1, commands_added=1)
    check_failure(event, cid, "NOT_FOUND", "payment_id")


@pytest.mark.parametrize(
    ("action", "body"),
    [("release", RUNNER), ("revert", None), ("revert", {"reason": "fraudulent"})],
)
async def test_legacy_route_for_unknown_payment_answers_404(
    harness: Harness, good: str, action: str, body: dict[str, str] | None
) -> None:
    before = await stored(harness)
    response = await harness.client.post(f"/payment/{uuid.uuid4()}/{action}", json=body)
    check_legacy_failure(response, 404, "NOT_FOUND")
    await assert_untouched(harness, before, new_events=0)


# --- release_payment: wrong status, missing account ------------------------------------------


async def _succeeded(harness: Harness, payment_id: str) -> str:
    cid = await send_raw(harness, "release_payment", {"payment_id": payment_id, **RUNNER})
    await harness.drain()
    assert (await harness.outcome(cid))["type"] == "payment.released"
    return payment_id


async def payment_in(harness: Harness, good: str, status: str) -> str:
    """A payment (besides the good one) in `status`; returns its id."""
    if status == "SUCCEEDED":
        return await _succeeded(harness, good)
    if status == "FAILED":
        event = await harness.authorize("order-other", payment_method="pm_card_chargeDeclined")
        assert event["type"] == "payment.failed"
        payment_id: str = event["payload"]["payment_id"]
        return payment_id
    if status == "REQUIRES_ACTION":
        await send_raw(
            harness,
            "authorize_payment",
            nested_authorize("order-other", 2500, "pm_card_authenticationRequired"),
        )
        await harness.drain()
        payment = await harness.payment_by_order("order-other")
        assert payment["status"] == "REQUIRES_ACTION"
        return str(payment["paymentId"])
    assert status == "REVERTED"
    event = await harness.authorize("order-other")
    cid = await send_raw(harness, "revert_payment", {"payment_id": event["payload"]["payment_id"]})
    await harness.drain()
    assert (await harness.outcome(cid))["type"] == "payment.reverted"
    return str(event["payload"]["payment_id"])


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED", "REVERTED", "REQUIRES_ACTION"])
async def test_release_of_payment_not_authorized_fails_with_invalid_status(
    harness: Harness, good: str, status: str
) -> None:
    payment_id = await payment_in(harness, good, status)
    before = await stored(harness)
    release = {
        "payment_id": payment_id,
        "runner_id": "runner_eve",
        "runner_connect_account_id": "acct_eve",
    }
    cid = await send_raw(harness, "release_payment", release)
    [event] = await assert_untouched(harness, before, new_events=1, commands_added=1)
    payload = check_failure(event, cid, "INVALID_STATUS", None)
    assert payload["payment_id"] == payment_id
    assert payload["order_id"] in ("order-good", "order-other")
    payment = (await harness.client.get(f"/payment/{payment_id}/details")).json()["payment"]
    assert payment["status"] == status
    assert payment["runnerId"] != "runner_eve"


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED", "REVERTED"])
async def test_legacy_release_of_payment_not_authorized_publishes_invalid_status(
    harness: Harness, good: str, status: str
) -> None:
    payment_id = await payment_in(harness, good, status)
    before = await stored(harness)
    response = await harness.client.post(f"/payment/{payment_id}/release", json=RUNNER)
    assert response.status_code == 202, response.text
    cid = response.json()["correlation_id"]
    [event] = await assert_untouched(harness, before, new_events=1, commands_added=1)
    check_failure(event, cid, "INVALID_STATUS", None)


async def test_revert_of_reverted_payment_fails_with_invalid_status(
    harness: Harness, good: str
) -> None:
    payment_id = await payment_in(harness, good, "REVERTED")
    before = await stored(harness)
    cid = await send_raw(harness, "revert_payment", {"payment_id": payment_id})
    [event] = await assert_untouched(harness, before, new_events=1, commands_added=1)
    payload = check_failure(event, cid, "INVALID_STATUS", None)
    assert payload["payment_id"] == payment_id
    assert payload["order_id"] == "order-other"


async def test_revert_of_refunded_payment_fails_with_invalid_status(
    harness: Harness, good: str
) -> None:
    await _succeeded(harness, good)
    first = await send_raw(harness, "revert_payment", {"payment_id": good})
    await harness.drain()
    assert (await harness.outcome(first))["type"] == "payment.reverted"
    before = await stored(harness)
    cid = await send_raw(harness, "revert_payment", {"payment_id": good})
    [event] = await assert_untouched(harness, before, new_events=1, commands_added=1)
    check_failure(event, cid, "INVALID_STATUS", None)
    assert before.provider_objects.get("refund") == 1


@pytest.mark.parametrize(
    ("command", "field"),
    [
        pytest.param({"runner_id": "runner_bob"}, "runner_connect_account_id", id="no-account"),
        pytest.param(
            {"runner_id": "runner_bob", "runner_connect_account_id": "bob"},
            "runner_connect_account_id",
            id="account-not-acct",
        ),
        pytest.param({"runner_connect_account_id": "acct_bob"}, "runner_id", id="no-runner"),
    ],
)
async def test_release_command_without_runner_account_fails_with_invalid_payload(
    harness: Harness, good: str, command: dict[str, str], field: str
) -> None:
    before = await stored(harness)
    cid = await send_raw(harness, "release_payment", {"payment_id": good, **command})
    [event] = await assert_untouched(harness, before, new_events=1, commands_added=1)
    check_failure(event, cid, "INVALID_PAYLOAD", field)
    assert (await harness.payment_by_order("order-good"))["status"] == "AUTHORIZED"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param(None, "runner_id", id="no-body"),
        pytest.param(b"{}", "runner_id", id="empty-object"),
        pytest.param(
            json.dumps({"runner_id": "runner_bob"}).encode(),
            "runner_connect_account_id",
            id="no-account",
        ),
        pytest.param(
            json.dumps({"runner_id": "runner_bob", "runner_connect_account_id": ""}).encode(),
            "runner_connect_account_id",
            id="empty-account",
        ),
        pytest.param(
            json.dumps({"runner_connect_account_id": "acct_bob"}).encode(),
            "runner_id",
            id="no-runner",
        ),
        pytest.param(b"runner_id=runner_bob", "body", id="not-json"),
        pytest.param(b'["runner_bob", "acct_bob"]', "body", id="json-list"),
    ],
)
async def test_legacy_release_without_runner_details_answers_400(
    harness: Harness, good: str, content: bytes | None, field: str
) -> None:
    before = await stored(harness)
    response = await harness.client.post(f"/payment/{good}/release", content=content)
    body = check_legacy_failure(response, 400, "INVALID_PAYLOAD")
    assert body["field"] == field
    await assert_untouched(harness, before, new_events=0)


async def test_legacy_revert_with_non_object_body_answers_400(harness: Harness, good: str) -> None:
    before = await stored(harness)
    response = await harness.client.post(f"/payment/{good}/revert", content=b"[]")
    check_legacy_failure(response, 400, "INVALID_PAYLOAD")
    await assert_untouched(harness, before, new_events=0)


# --- webhook signatures ---------------------------------------------------------------------


def provider_event(event_id: str) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "charge.updated",
            "data": {"object": {"id": "ch_unknown", "object": "charge"}},
        }
    ).encode()


async def _headers(harness: Harness, case: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    """The body actually sent and its headers, for each way a signature goes wrong."""
    secret = (await harness.runtime.webhook_secrets())[0]
    now = int(time.time())
    if case == "missing":
        return body, {}
    if case == "wrong-secret":
        return body, {"Stripe-Signature": signature_header("whsec_wrong", body, timestamp=now)}
    if case == "tampered-body":
        header = signature_header(secret, body, timestamp=now)
        return body.replace(b"charge.updated", b"charge.refunded"), {"Stripe-Signature": header}
    if case == "stale":
        return body, {"Stripe-Signature": signature_header(secret, body, timestamp=now - 400)}
    if case == "no-v1":
        return body, {"Stripe-Signature": f"t={now}"}
    assert case == "garbage"
    return body, {"Stripe-Signature": "not a signature"}


@pytest.mark.parametrize("path", ["/stripe-webhook", "/api/stripe-webhook"])
@pytest.mark.parametrize(
    "case", ["missing", "wrong-secret", "tampered-body", "stale", "no-v1", "garbage"]
)
async def test_badly_signed_webhook_answers_400_and_is_not_stored(
    harness: Harness, good: str, path: str, case: str
) -> None:
    event_id = f"evt_{uuid.uuid4().hex}"
    body = provider_event(event_id)
    sent, headers = await _headers(harness, case, body)
    before = await stored(harness)
    response = await harness.client.post(path, content=sent, headers=headers)
    check_legacy_failure(response, 400, "INVALID_SIGNATURE")
    await assert_untouched(harness, before, new_events=0)
    # Not stored: the same event, properly signed, is new.
    secret = (await harness.runtime.webhook_secrets())[0]
    header = signature_header(secret, body, timestamp=int(time.time()))
    accepted = await harness.client.post(path, content=body, headers={"Stripe-Signature": header})
    assert accepted.status_code == 200
    assert accepted.json() == {"received": True, "duplicate": False}


async def test_webhook_signed_within_tolerance_is_accepted(harness: Harness, good: str) -> None:
    body = provider_event(f"evt_{uuid.uuid4().hex}")
    secret = (await harness.runtime.webhook_secrets())[0]
    header = signature_header(secret, body, timestamp=int(time.time()) - 200)
    response = await harness.client.post(
        "/stripe-webhook", content=body, headers={"Stripe-Signature": header}
    )
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}


# --- bodies over 1 MB ------------------------------------------------------------------------


def oversized() -> bytes:
    padding = "x" * MAX_BODY
    return json.dumps(
        {
            "type": "authorize_payment",
            "correlation_id": str(uuid.uuid4()),
            "payload": {**GOOD_PAYLOAD, "description": padding},
        }
    ).encode()


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 65_536):
        yield body[start : start + 65_536]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/commands", "/stripe-webhook", "/api/stripe-webhook", "/payment/{good}/release"],
)
@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_body_over_1mb_answers_413(
    harness: Harness, good: str, path: str, streamed: bool
) -> None:
    body = oversized()
    assert len(body) > MAX_BODY
    secret = (await harness.runtime.webhook_secrets())[0]
    headers = {"Stripe-Signature": signature_header(secret, body, timestamp=int(time.time()))}
    before = await stored(harness)
    response = await harness.client.post(
        path.format(good=good),
        content=_chunks(body) if streamed else body,
        headers=headers,
    )
    assert ("content-length" in response.request.headers) is not streamed
    check_problem(response, 413, "PAYLOAD_TOO_LARGE", "body")
    await assert_untouched(harness, before, new_events=0)
    await no_payment_for(harness, "order-bad")


async def test_body_of_exactly_1mb_is_not_refused_for_size(harness: Harness, good: str) -> None:
    body = provider_event(f"evt_{uuid.uuid4().hex}")
    body = body[:-1] + b" " * (MAX_BODY - len(body)) + b"}"
    assert len(body) == MAX_BODY
    before = await stored(harness)
    response = await harness.client.post("/stripe-webhook", content=body)
    check_legacy_failure(response, 400, "INVALID_SIGNATURE")
    await assert_untouched(harness, before, new_events=0)
