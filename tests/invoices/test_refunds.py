"""Refunds: partial and full, approval above the threshold, never more than captured,
each executed once through the provider and posted once to the ledger."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from payport.ledger.check import check
from payport.providers.sandbox import SandboxProvider
from payport.refunds import service
from tests.harness import Harness


async def captured_payment(harness: Harness, amount: int = 20000) -> dict[str, Any]:
    order = f"order-{uuid.uuid4().hex[:8]}"
    created = await harness.client.post(
        "/api/v1/payments",
        json={"order_id": order, "amount": amount, "currency": "usd",
              "payment_method": "pm_card_visa", "customer": "user_rhea"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    captured = await harness.client.post(f"/api/v1/payments/{payment_id}/capture")
    assert captured.status_code == 200, captured.text
    body: dict[str, Any] = captured.json()
    return body


async def refund(harness: Harness, payment_id: str, **fields: Any) -> Any:
    return await harness.client.post("/api/v1/refunds", json={"payment_id": payment_id} | fields)


async def process(harness: Harness, refund_id: str) -> dict[str, Any]:
    response = await harness.client.post(f"/api/v1/refunds/{refund_id}/process")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_partial_refund_below_threshold_is_processed_and_posted(harness: Harness) -> None:
    payment = await captured_payment(harness)
    created = await refund(harness, payment["id"], amount=25.5, reason="damaged item")
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["status"], body["amount_minor"], body["provider_reason"]) == (
        "approved", 2550, "requested_by_customer"
    )  # fmt: skip
    done = await process(harness, body["refund_id"])
    assert done["status"] == "succeeded" and done["provider_refund_id"]
    again = await process(harness, body["refund_id"])  # a repeat changes nothing
    assert again == done
    await harness.drain()  # the provider's refund webhooks too: they must not post again
    report = await check(harness.runtime.db)
    assert report.ok, [str(problem) for problem in report.problems]
    escrow = await harness.client.get(f"/api/v1/balances/escrow:{payment['id']}")
    assert escrow.json()["balances"][0]["amount"] == 20000 - 2550
    await harness.drain()
    types = [event["type"] for event in await harness.all_events()]
    assert types.count("refund.succeeded") == 1


async def test_refund_above_threshold_waits_for_approval(harness: Harness) -> None:
    payment = await captured_payment(harness)
    body = (await refund(harness, payment["id"], amount_minor=15000)).json()
    assert body["status"] == "pending_approval"
    refused = await harness.client.post(f"/api/v1/refunds/{body['refund_id']}/process")
    assert refused.status_code == 409 and refused.json()["field"] == "status"
    approved = await harness.client.post(
        f"/api/v1/refunds/{body['refund_id']}/approve", json={"approved_by": "ops_lee"}
    )
    assert approved.json()["status"] == "approved"
    assert approved.json()["approved_by"] == "ops_lee"
    assert (await process(harness, body["refund_id"]))["status"] == "succeeded"


async def test_rejected_refund_frees_its_reservation(harness: Harness) -> None:
    payment = await captured_payment(harness)
    body = (await refund(harness, payment["id"])).json()  # no amount: everything
    assert (body["amount_minor"], body["status"]) == (20000, "pending_approval")
    assert (await refund(harness, payment["id"], amount_minor=1)).status_code == 400
    assert (await refund(harness, payment["id"])).json()["code"] == "INVALID_STATUS"
    rejected = await harness.client.post(
        f"/api/v1/refunds/{body['refund_id']}/reject", json={"reason": "not eligible"}
    )
    assert rejected.json()["status"] == "rejected"
    assert (await refund(harness, payment["id"], amount_minor=5000)).status_code == 201


async def test_refunds_never_exceed_the_capture(harness: Harness) -> None:
    payment = await captured_payment(harness)
    first = (await refund(harness, payment["id"], amount_minor=8000)).json()
    too_much = await refund(harness, payment["id"], amount_minor=12001)
    assert too_much.status_code == 400 and too_much.json()["field"] == "amount"
    rest = (await refund(harness, payment["id"], amount_minor=12000)).json()
    for refund_id in (first["refund_id"], rest["refund_id"]):
        await harness.client.post(f"/api/v1/refunds/{refund_id}/approve")
        assert (await process(harness, refund_id))["status"] == "succeeded"
    listed = await harness.client.get("/api/v1/refunds", params={"payment_id": payment["id"]})
    assert [row["amount_minor"] for row in listed.json()["data"]] == [8000, 12000]
    await harness.drain()  # the provider's refund webhooks too: they must not post again
    report = await check(harness.runtime.db)
    assert report.ok, [str(problem) for problem in report.problems]


async def test_concurrent_refund_requests_never_over_refund(harness: Harness) -> None:
    payment = await captured_payment(harness)
    answers = await asyncio.gather(
        *(refund(harness, payment["id"], amount_minor=3000) for _ in range(12))
    )
    accepted = [answer.json() for answer in answers if answer.status_code == 201]
    assert len(accepted) == 6  # 6 x 30.00 of 200.00; a seventh would leave only 20.00
    assert {answer.status_code for answer in answers} == {201, 400}
    results = await asyncio.gather(*(process(harness, row["refund_id"]) for row in accepted))
    assert {row["status"] for row in results} == {"succeeded"}
    await harness.drain()  # the provider's refund webhooks too: they must not post again
    report = await check(harness.runtime.db)
    assert report.ok, [str(problem) for problem in report.problems]


async def test_a_revert_after_a_partial_refund_returns_only_the_rest(harness: Harness) -> None:
    payment = await captured_payment(harness)
    partial = (await refund(harness, payment["id"], amount_minor=5000)).json()
    await process(harness, partial["refund_id"])
    reverted = await harness.client.post(f"/api/v1/payments/{payment['id']}/revert")
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["status"] == "REVERTED"
    after = await refund(harness, payment["id"], amount_minor=100)
    assert after.status_code == 409 and after.json()["field"] == "payment_id"
    await harness.drain()  # the provider's refund webhooks too: they must not post again
    report = await check(harness.runtime.db)
    assert report.ok, [str(problem) for problem in report.problems]
    customer = await harness.client.get("/api/v1/balances/escrow:" + payment["id"])
    assert customer.json()["balances"] == [] or customer.json()["balances"][0]["amount"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payment_id": ""}, "payment_id"),
        ({"payment_id": "missing"}, "payment_id"),
        ({"amount": "1.001"}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount_minor": 0}, "amount_minor"),
        ({"amount": 1, "amount_minor": 100}, "amount"),
        ({"reason": "x" * 501}, "reason"),
    ],
)
async def test_bad_refund_input_names_the_field(
    harness: Harness, body: dict[str, Any], field: str
) -> None:
    payment = await captured_payment(harness)
    response = await harness.client.post(
        "/api/v1/refunds", json={"payment_id": payment["id"]} | body
    )
    assert response.status_code in (400, 404), response.text
    assert response.json()["field"] == field
    listed = await harness.client.get("/api/v1/refunds", params={"payment_id": payment["id"]})
    assert listed.json()["data"] == []


async def test_a_refund_the_provider_refuses_fails_and_gives_its_reservation_back(
    harness: Harness,
) -> None:
    payment = await captured_payment(harness)
    requested = (await refund(harness, payment["id"], amount_minor=6000)).json()
    # Someone refunds the whole charge at the provider directly (a dashboard refund).
    await harness.runtime.provider.create_refund(
        payment_intent=payment["payment_intent_id"],
        amount_minor=None,
        reason="requested_by_customer",
        idempotency_key="dashboard-refund",
    )
    response = await harness.client.post(f"/api/v1/refunds/{requested['refund_id']}/process")
    assert response.status_code == 402, response.text
    assert response.json()["status"] == "failed" and response.json()["failure_code"]
    await harness.drain()  # the provider's webhook reports the outside refund
    after = (await harness.client.get(f"/api/v1/payments/{payment['id']}")).json()
    assert after["amount_refunded"] == 20000  # the outside refund, not ours on top
    report = await check(harness.runtime.db)
    assert report.ok, [str(problem) for problem in report.problems]
    await harness.drain()
    types = [event["type"] for event in await harness.all_events()]
    assert types.count("refund.failed") == 1 and "refund.succeeded" not in types


# --- a refund in flight: counted on the payment, not yet posted ------------------------------


def failing_sandbox(harness: Harness) -> SandboxProvider:
    """The sandbox on the same database, failing every call as an outage would (its own
    failure injection): the refund's outcome stays unknown, so it stays `processing`."""
    settings = harness.runtime.settings
    return SandboxProvider(harness.runtime.db, base_url=settings.base_url, failure_rate=1.0)


async def processing_refund(harness: Harness, amount_minor: int) -> tuple[str, str]:
    """(payment id, refund id) of a refund the provider never answered."""
    payment = await captured_payment(harness)
    requested = (await refund(harness, payment["id"], amount_minor=amount_minor)).json()
    view = await service.process_refund(
        harness.runtime.db, failing_sandbox(harness), requested["refund_id"]
    )
    assert view["status"] == "processing", view
    return payment["id"], requested["refund_id"]


async def test_the_ledger_check_passes_while_a_refund_is_processing(harness: Harness) -> None:
    payment_id, refund_id = await processing_refund(harness, 5000)
    stored = (await harness.client.get(f"/api/v1/payments/{payment_id}")).json()
    assert stored["amount_refunded"] == 5000  # counted when sent to the provider
    report = await check(harness.runtime.db, provider=harness.runtime.provider)
    assert report.ok, [str(problem) for problem in report.problems]
    again = await harness.client.post(f"/api/v1/refunds/{refund_id}/process")
    assert again.status_code == 200 and again.json()["status"] == "succeeded", again.text
    await harness.drain()
    report = await check(harness.runtime.db, provider=harness.runtime.provider)
    assert report.ok, [str(problem) for problem in report.problems]


async def test_an_unanswered_refund_answers_503_and_stays_processing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    payment = await captured_payment(harness)
    requested = (await refund(harness, payment["id"], amount_minor=5000)).json()
    monkeypatch.setattr(harness.runtime, "provider", failing_sandbox(harness))
    response = await harness.client.post(f"/api/v1/refunds/{requested['refund_id']}/process")
    assert response.status_code == 503, response.text
    assert response.json()["status"] == "processing"
    await harness.drain()
    types = [event["type"] for event in await harness.all_events()]
    assert "refund.failed" not in types and "refund.succeeded" not in types


async def test_a_real_mismatch_is_still_named_while_a_refund_is_processing(
    harness: Harness,
) -> None:
    payment_id, _ = await processing_refund(harness, 5000)
    async with harness.runtime.db.transaction() as session:
        await session.execute(
            text("UPDATE payments SET amount_refunded_minor = amount_refunded_minor + 1 "
                 "WHERE id = :id"),
            {"id": payment_id},
        )  # fmt: skip
    report = await check(harness.runtime.db)
    assert report.payment_ids == [payment_id]
    assert "escrow has 20000 (expected 19999)" in str(report.problems[0])


async def test_reconcile_finishes_a_refund_left_processing_once_it_is_old_enough(
    harness: Harness,
) -> None:
    payment_id, refund_id = await processing_refund(harness, 5000)
    young = await harness.runtime.heal(older_than=timedelta(minutes=10))
    assert young.counts["refund_succeeded"] == 0  # may still be in flight: left alone
    assert (await harness.client.get(f"/api/v1/refunds/{refund_id}")).json()["status"] == (
        "processing"
    )
    healed = await harness.runtime.heal(older_than=timedelta(0))
    assert healed.counts["refund_succeeded"] == 1 and healed.healed >= 1
    assert (await harness.client.get(f"/api/v1/refunds/{refund_id}")).json()["status"] == (
        "succeeded"
    )
    again = await harness.runtime.heal(older_than=timedelta(0))
    assert again.counts["refund_succeeded"] == 0  # finished: nothing to resume
    await harness.drain()
    report = await check(harness.runtime.db, provider=harness.runtime.provider)
    assert report.ok, [str(problem) for problem in report.problems]
    stored = (await harness.client.get(f"/api/v1/payments/{payment_id}")).json()
    assert stored["amount_refunded"] == 5000
    types = [event["type"] for event in await harness.all_events()]
    assert types.count("refund.succeeded") == 1
