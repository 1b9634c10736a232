"""Paying a one-off invoice: POST /api/v1/invoices/{id}/pay charges through billing's payment
attempts (the saved card or one named), records a payment made out of band, and charges
once however often, or however many at once, it is called."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from payport.billing.renewals import RECHECK_AFTER, BillingEngine
from payport.db import utcnow
from payport.ledger.check import check
from payport.ledger.models import LedgerEntry
from tests.billing.test_late_outcomes import LostAnswers
from tests.conftest import STRIPE_STACKS, stack_named
from tests.harness import Harness, Stack
from tests.provider_truth import provider_objects

LINES = [
    {"description": "Consulting, March", "quantity": 3, "amount": "120.50"},
    {"description": "Sales tax 8%", "kind": "tax", "amount_minor": 2892},
]
TOTAL = 36150 + 2892
RETURN_URL = "https://shop.example/invoices/back"


async def _invoice(harness: Harness, user_id: str = "user_ivy", **fields: Any) -> str:
    body = {"user_id": user_id, "lines": LINES} | fields
    response = await harness.client.post("/api/v1/invoices", json=body)
    assert response.status_code == 201, response.text
    invoice_id: str = response.json()["invoice_id"]
    return invoice_id


async def _save_card(harness: Harness, user_id: str, payment_method_id: str, **fields: Any) -> None:
    """A subscription with a card: the customer's saved card, as renewals charge it."""
    plan = await harness.client.post(
        "/api/v1/plans", json={"name": "Basic", "price_minor": 1000, "billing_cycle": "monthly"}
    )
    assert plan.status_code == 201, plan.text
    sub = await harness.client.post(
        "/api/v1/subscriptions",
        json={
            "user_id": user_id,
            "plan_id": plan.json()["plan_id"],
            "payment_method_id": payment_method_id,
        }
        | fields,
    )
    assert sub.status_code == 201, sub.text
    assert sub.json()["status"] == "active"


async def _pay(harness: Harness, invoice_id: str, body: dict[str, Any] | None = None) -> Any:
    path = f"/api/v1/invoices/{invoice_id}/pay"
    return await harness.client.post(path, json=body) if body else await harness.client.post(path)


async def _paid(harness: Harness, invoice_id: str, body: dict[str, Any] | None = None) -> Any:
    response = await _pay(harness, invoice_id, body)
    assert response.status_code == 200, response.text
    return response.json()


async def _intents_of(harness: Harness, invoice_id: str) -> list[dict[str, Any]]:
    """The provider's own PaymentIntents for the invoice (by the metadata the charge carried)."""
    intents = await provider_objects(harness.runtime, "payment_intent")
    return [i for i in intents if (i.get("metadata") or {}).get("invoice_id") == invoice_id]


async def _entries(harness: Harness, invoice_id: str) -> list[tuple[str, str]]:
    async with harness.runtime.db.read() as session:
        rows = await session.execute(
            select(LedgerEntry.cause, LedgerEntry.kind).where(
                LedgerEntry.cause == f"invoice:{invoice_id}"
            )
        )
        return [(cause, kind) for cause, kind in rows]


async def _events_for(harness: Harness, invoice_id: str) -> list[str]:
    await harness.drain()
    return [
        event["type"]
        for event in await harness.all_events()
        if event["payload"].get("invoice", {}).get("invoice_id") == invoice_id
    ]


async def _approve_3ds(harness: Harness, intent_id: str) -> None:
    """The customer passes the sandbox's 3-D Secure page and is sent back to the shop."""
    response = await harness.client.post(f"/sandbox/authenticate/{intent_id}/approve")
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(RETURN_URL)


async def _assert_ledger_adds_up(harness: Harness) -> None:
    report = await check(harness.runtime.db)
    assert report.ok, [str(problem) for problem in report.problems]


async def test_pay_charges_the_customers_saved_card(harness: Harness) -> None:
    await _save_card(harness, "user_ivy", "pm_card_visa")
    invoice_id = await _invoice(harness)
    invoice = await _paid(harness, invoice_id)
    assert invoice["status"] == "paid"
    assert invoice["amount_paid_minor"] == TOTAL and invoice["amount_remaining_minor"] == 0
    assert invoice["paid_at"] is not None and invoice["paid_out_of_band"] is False
    [attempt] = invoice["attempts"]
    assert (attempt["status"], attempt["payment_method_id"]) == ("succeeded", "pm_card_visa")
    assert invoice["payment_intent_id"] == attempt["payment_intent_id"]
    assert invoice["last_payment_error"] is None and invoice["next_action"] is None
    [intent] = await _intents_of(harness, invoice_id)
    assert (intent["id"], intent["status"], intent["amount"], intent["currency"]) == (
        attempt["payment_intent_id"],
        "succeeded",
        TOTAL,
        "usd",
    )
    assert await _entries(harness, invoice_id) == [(f"invoice:{invoice_id}", "invoice")]
    types = await _events_for(harness, invoice_id)
    assert types.count("invoice.paid") == 1
    await _assert_ledger_adds_up(harness)


async def test_pay_with_a_named_payment_method(harness: Harness) -> None:
    invoice_id = await _invoice(harness, user_id="user_new")  # no saved card at all
    invoice = await _paid(harness, invoice_id, {"payment_method": "pm_card_mastercard"})
    assert invoice["status"] == "paid"
    assert invoice["attempts"][0]["payment_method_id"] == "pm_card_mastercard"
    assert len(await _intents_of(harness, invoice_id)) == 1


async def test_no_card_to_charge_is_refused_naming_payment_method(harness: Harness) -> None:
    invoice_id = await _invoice(harness, user_id="user_new")
    refused = await _pay(harness, invoice_id)
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == "payment_method"
    fetched = (await harness.client.get(f"/api/v1/invoices/{invoice_id}")).json()
    assert (fetched["status"], fetched["attempts"], fetched["attempt_count"]) == ("open", [], 0)


async def test_a_decline_leaves_the_invoice_open_with_the_decline_code(harness: Harness) -> None:
    invoice_id = await _invoice(harness)
    declined = await _paid(
        harness, invoice_id, {"payment_method": "pm_card_chargeDeclinedInsufficientFunds"}
    )
    assert declined["status"] == "open" and declined["amount_paid_minor"] == 0
    [attempt] = declined["attempts"]
    assert (attempt["status"], attempt["decline_code"]) == ("failed", "insufficient_funds")
    assert declined["last_payment_error"] == {
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": attempt["failure_message"],
    }
    assert declined["next_payment_attempt"] is None  # one-off: no dunning schedule
    assert await _entries(harness, invoice_id) == []
    assert await _events_for(harness, invoice_id) == [
        "invoice.created",
        "invoice.finalized",
        "invoice.payment_failed",
    ]
    # The customer tries another card: a new attempt, a new key, paid.
    paid = await _paid(harness, invoice_id, {"payment_method": "pm_card_visa"})
    assert paid["status"] == "paid"
    assert [a["status"] for a in paid["attempts"]] == ["failed", "succeeded"]
    assert len(await _intents_of(harness, invoice_id)) == 2
    await _assert_ledger_adds_up(harness)


async def test_a_declined_one_off_invoice_leaves_its_subscription_alone(harness: Harness) -> None:
    await _save_card(harness, "user_ivy", "pm_card_visa")
    [sub] = (await harness.client.get("/api/v1/subscriptions/user/user_ivy")).json()["data"]
    invoice_id = await _invoice(harness, subscription_id=sub["subscription_id"])
    declined = await _paid(harness, invoice_id, {"payment_method": "pm_card_chargeDeclined"})
    assert declined["status"] == "open" and declined["next_payment_attempt"] is None
    fetched = await harness.client.get(f"/api/v1/subscriptions/{sub['subscription_id']}")
    assert fetched.json()["status"] == "active"  # not past_due: no dunning for one-offs
    paid = await _paid(harness, invoice_id)  # the subscription's saved card
    assert paid["status"] == "paid"
    assert paid["attempts"][-1]["payment_method_id"] == "pm_card_visa"
    types = [e["type"] for e in await harness.all_events()]
    assert "subscription.past_due" not in types


async def test_an_amount_below_the_minimum_charge_is_refused_and_stays_open(
    harness: Harness,
) -> None:
    response = await harness.client.post(
        "/api/v1/invoices",
        json={"user_id": "user_ivy", "lines": [{"description": "Stamp", "amount_minor": 30}]},
    )
    invoice_id = response.json()["invoice_id"]
    refused = await _paid(harness, invoice_id, {"payment_method": "pm_card_visa"})
    assert refused["status"] == "open"
    assert refused["last_payment_error"]["code"] == "amount_too_small"
    assert await _entries(harness, invoice_id) == []


async def test_off_session_a_card_wanting_3ds_is_refused(harness: Harness) -> None:
    invoice_id = await _invoice(harness)
    declined = await _paid(
        harness, invoice_id, {"payment_method": "pm_card_authenticationRequired"}
    )
    assert declined["status"] == "open"
    assert declined["last_payment_error"]["code"] == "authentication_required"


async def test_3ds_with_the_customer_present_is_settled_by_the_webhook(harness: Harness) -> None:
    invoice_id = await _invoice(harness)
    body = {"payment_method": "pm_card_authenticationRequired", "return_url": RETURN_URL}
    waiting = await _paid(harness, invoice_id, body)
    assert waiting["status"] == "open"
    [attempt] = waiting["attempts"]
    assert attempt["status"] == "requires_action"
    assert "/sandbox/authenticate/" in waiting["next_action"]["redirect_to_url"]
    again = await _pay(harness, invoice_id, body)
    assert again.status_code == 409 and again.json()["field"] == "status"  # no second charge
    out_of_band = await _pay(harness, invoice_id, {"paid_out_of_band": True})
    assert out_of_band.status_code == 409  # money may still arrive for the waiting one

    await _approve_3ds(harness, attempt["payment_intent_id"])
    await harness.drain()
    paid = (await harness.client.get(f"/api/v1/invoices/{invoice_id}")).json()
    assert paid["status"] == "paid" and paid["amount_paid_minor"] == TOTAL
    assert [a["status"] for a in paid["attempts"]] == ["succeeded"]
    assert len(await _intents_of(harness, invoice_id)) == 1
    types = await _events_for(harness, invoice_id)
    assert types.count("invoice.payment_action_required") == 1
    assert types.count("invoice.paid") == 1
    await _assert_ledger_adds_up(harness)


async def test_3ds_whose_webhook_never_came_is_settled_by_the_worker(harness: Harness) -> None:
    invoice_id = await _invoice(harness)
    body = {"payment_method": "pm_card_authenticationRequired", "return_url": RETURN_URL}
    attempt = (await _paid(harness, invoice_id, body))["attempts"][0]
    await _approve_3ds(harness, attempt["payment_intent_id"])
    engine: BillingEngine = harness.runtime.billing
    later = utcnow() + RECHECK_AFTER + timedelta(minutes=1)
    assert await engine.reconcile_waiting(later, clock_id=None) == 1  # asked the provider
    fetched = (await harness.client.get(f"/api/v1/invoices/{invoice_id}")).json()
    assert fetched["status"] == "paid"
    await harness.drain()  # the late webhook finds the attempt settled
    assert (await _events_for(harness, invoice_id)).count("invoice.paid") == 1
    await _assert_ledger_adds_up(harness)


async def test_a_lost_answer_is_settled_once_by_the_webhook(harness: Harness) -> None:
    engine: BillingEngine = harness.runtime.billing
    engine.provider = LostAnswers(harness.runtime.provider)  # type: ignore[assignment]
    invoice_id = await _invoice(harness)
    unknown = await _paid(harness, invoice_id, {"payment_method": "pm_card_visa"})
    assert unknown["status"] == "open"  # charged, but payport does not know it yet
    [attempt] = unknown["attempts"]
    assert (attempt["status"], attempt["payment_intent_id"]) == ("pending", None)
    refused = await _pay(harness, invoice_id, {"payment_method": "pm_card_mastercard"})
    assert refused.status_code == 409  # its outcome is still coming: no second charge
    await harness.drain()  # payment_intent.succeeded, matched by the charge's metadata
    paid = (await harness.client.get(f"/api/v1/invoices/{invoice_id}")).json()
    assert paid["status"] == "paid" and paid["attempts"][0]["status"] == "succeeded"
    assert len(await _intents_of(harness, invoice_id)) == 1
    later = utcnow() + RECHECK_AFTER + timedelta(minutes=1)
    assert await engine.resume_interrupted(later) == 0  # nothing left pending
    assert len(await _intents_of(harness, invoice_id)) == 1
    await _assert_ledger_adds_up(harness)


async def test_a_lost_answer_is_resumed_by_the_worker_with_the_same_key(
    harness: Harness,
) -> None:
    engine: BillingEngine = harness.runtime.billing
    lossy = LostAnswers(harness.runtime.provider)
    engine.provider = lossy  # type: ignore[assignment]
    invoice_id = await _invoice(harness)
    await _paid(harness, invoice_id, {"payment_method": "pm_card_visa"})
    lossy.losing = False
    assert await engine.resume_interrupted(utcnow()) == 0  # it may still be in flight
    later = utcnow() + RECHECK_AFTER + timedelta(minutes=1)
    assert await engine.resume_interrupted(later) == 1  # before any webhook: the key replays
    paid = (await harness.client.get(f"/api/v1/invoices/{invoice_id}")).json()
    assert paid["status"] == "paid" and [a["status"] for a in paid["attempts"]] == ["succeeded"]
    assert len(await _intents_of(harness, invoice_id)) == 1
    assert (await _events_for(harness, invoice_id)).count("invoice.paid") == 1  # webhook: late
    await _assert_ledger_adds_up(harness)


async def test_paid_out_of_band_charges_nothing_and_posts_saying_so(harness: Harness) -> None:
    await _save_card(harness, "user_ivy", "pm_card_visa")
    invoice_id = await _invoice(harness)
    invoice = await _paid(harness, invoice_id, {"paid_out_of_band": True})
    assert (invoice["status"], invoice["paid_out_of_band"]) == ("paid", True)
    assert invoice["amount_paid_minor"] == TOTAL and invoice["paid_at"] is not None
    assert invoice["attempts"] == [] and invoice["payment_intent_id"] is None
    assert await _intents_of(harness, invoice_id) == []
    assert await _entries(harness, invoice_id) == [(f"invoice:{invoice_id}", "invoice_out_of_band")]
    assert (await _events_for(harness, invoice_id)).count("invoice.paid") == 1
    await _assert_ledger_adds_up(harness)


async def test_a_subscription_invoice_paid_out_of_band_activates_it(harness: Harness) -> None:
    plan = await harness.client.post(
        "/api/v1/plans", json={"name": "Basic", "price_minor": 1000, "billing_cycle": "monthly"}
    )
    created = await harness.client.post(
        "/api/v1/subscriptions",
        json={
            "user_id": "user_ivy",
            "plan_id": plan.json()["plan_id"],
            "payment_method_id": "pm_card_chargeDeclined",
        },
    )
    sub = created.json()
    assert sub["status"] == "incomplete"
    invoice_id = sub["latest_invoice"]["invoice_id"]
    invoice = await _paid(harness, invoice_id, {"paid_out_of_band": True})
    assert (invoice["status"], invoice["paid_out_of_band"]) == ("paid", True)
    assert [a["status"] for a in invoice["attempts"]] == ["failed"]  # the declined first try
    fetched = await harness.client.get(f"/api/v1/subscriptions/{sub['subscription_id']}")
    assert fetched.json()["status"] == "active"
    assert await _entries(harness, invoice_id) == [(f"invoice:{invoice_id}", "invoice_out_of_band")]
    await _assert_ledger_adds_up(harness)


async def test_paying_a_paid_invoice_answers_it_unchanged(harness: Harness) -> None:
    invoice_id = await _invoice(harness)
    first = await _paid(harness, invoice_id, {"payment_method": "pm_card_visa"})
    for body in (None, {"payment_method": "pm_card_mastercard"}, {"paid_out_of_band": True}):
        again = await _paid(harness, invoice_id, body)
        assert again | {"last_payment_error": None} == first | {"last_payment_error": None}
    assert len(await _intents_of(harness, invoice_id)) == 1
    assert len(await _entries(harness, invoice_id)) == 1
    assert (await _events_for(harness, invoice_id)).count("invoice.paid") == 1


async def test_only_open_invoices_are_paid(harness: Harness) -> None:
    draft = await _invoice(harness, draft=True)
    voided = await _invoice(harness)
    assert (await harness.client.post(f"/api/v1/invoices/{voided}/void")).status_code == 200
    written_off = await _invoice(harness)
    marked = await harness.client.post(f"/api/v1/invoices/{written_off}/mark_uncollectible")
    assert marked.status_code == 200
    for invoice_id, status in ((draft, "draft"), (voided, "void"), (written_off, "uncollectible")):
        for body in ({"payment_method": "pm_card_visa"}, {"paid_out_of_band": True}):
            refused = await _pay(harness, invoice_id, body)
            assert refused.status_code == 409, refused.text
            assert refused.json()["field"] == "status"
            fetched = (await harness.client.get(f"/api/v1/invoices/{invoice_id}")).json()
            assert (fetched["status"], fetched["attempts"]) == (status, [])
        assert await _intents_of(harness, invoice_id) == []
    missing = await _pay(harness, "in_missing", {"payment_method": "pm_card_visa"})
    assert missing.status_code == 404 and missing.json()["field"] == "invoice_id"


async def test_bad_pay_bodies_name_the_field_and_change_nothing(harness: Harness) -> None:
    invoice_id = await _invoice(harness)
    path = f"/api/v1/invoices/{invoice_id}/pay"
    cases: list[tuple[Any, str]] = [
        ({"payment_method": "pm_card_visa", "amount": 5}, "amount"),
        ({"paid_out_of_band": "yes"}, "paid_out_of_band"),
        ({"paid_out_of_band": True, "payment_method": "pm_card_visa"}, "paid_out_of_band"),
        ({"payment_method": ""}, "payment_method"),
        ({"return_url": 7}, "return_url"),
        ([1, 2], "body"),
    ]
    for body, field in cases:
        response = await harness.client.post(path, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field, (body, response.text)
    junk = await harness.client.post(
        path, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert junk.status_code == 400 and junk.json()["field"] == "body"
    fetched = (await harness.client.get(f"/api/v1/invoices/{invoice_id}")).json()
    assert (fetched["status"], fetched["attempt_count"], fetched["attempts"]) == ("open", 0, [])
    assert await _intents_of(harness, invoice_id) == []


@pytest.fixture
async def pg_harness(postgres_url: str) -> AsyncIterator[Harness]:
    async with Harness.started(postgres_url) as running:
        yield running


async def test_concurrent_pays_on_postgresql_charge_once(pg_harness: Harness) -> None:
    harness = pg_harness
    await _save_card(harness, "user_ivy", "pm_card_visa")
    invoice_id = await _invoice(harness)
    answers = await asyncio.gather(*(_pay(harness, invoice_id) for _ in range(8)))
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 409} and 200 in statuses, [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["field"] == "status"  # one was in progress
    [intent] = await _intents_of(harness, invoice_id)
    assert (intent["status"], intent["amount"]) == ("succeeded", TOTAL)
    invoice = (await harness.client.get(f"/api/v1/invoices/{invoice_id}")).json()
    assert invoice["status"] == "paid" and len(invoice["attempts"]) == 1
    assert len(await _entries(harness, invoice_id)) == 1
    assert (await _events_for(harness, invoice_id)).count("invoice.paid") == 1
    await _assert_ledger_adds_up(harness)


@pytest.fixture(params=STRIPE_STACKS)
def stripe_stack(request: pytest.FixtureRequest) -> Stack:
    return stack_named(request, request.param)


@pytest.fixture
async def stripe_harness(stripe_stack: Stack) -> AsyncIterator[Harness]:
    async with stripe_stack.started() as running:
        yield running


async def _stripe_customer(harness: Harness) -> str:
    """A customer at the provider (localstripe), made the way a shop's backend makes one."""
    settings = harness.runtime.settings
    assert settings.stripe_api_base and settings.stripe_secret_key
    key = settings.stripe_secret_key.get_secret_value()
    async with httpx.AsyncClient(
        base_url=settings.stripe_api_base, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        response = await client.post("/v1/customers", data={"email": "ivy@example.com"})
    response.raise_for_status()
    customer_id: str = response.json()["id"]
    return customer_id


async def test_on_stripe_the_saved_card_is_charged_to_its_customer(
    stripe_harness: Harness,
) -> None:
    harness = stripe_harness
    customer_id = await _stripe_customer(harness)
    await _save_card(harness, "user_ivy", "pm_card_visa", customer_id=customer_id)
    invoice_id = await _invoice(harness)
    invoice = await _paid(harness, invoice_id)
    assert (invoice["status"], invoice["amount_paid_minor"]) == ("paid", TOTAL)
    [intent] = await _intents_of(harness, invoice_id)
    assert (intent["status"], intent["amount"], intent["customer"]) == (
        "succeeded",
        TOTAL,
        customer_id,
    )
    assert intent["id"] == invoice["payment_intent_id"]

    declined_id = await _invoice(harness)
    declined = await _paid(harness, declined_id, {"payment_method": "pm_card_chargeCustomerFail"})
    assert declined["status"] == "open"
    assert declined["last_payment_error"]["code"] == "card_declined"

    out_of_band_id = await _invoice(harness)
    out_of_band = await _paid(harness, out_of_band_id, {"paid_out_of_band": True})
    assert (out_of_band["status"], out_of_band["paid_out_of_band"]) == ("paid", True)
    assert await _intents_of(harness, out_of_band_id) == []
    await harness.drain()  # localstripe's webhooks find every attempt settled already
    again = (await harness.client.get(f"/api/v1/invoices/{declined_id}")).json()
    assert again["status"] == "open" and len(again["attempts"]) == 1
    await _assert_ledger_adds_up(harness)
