"""Every money path posts balanced entries in the transaction of its state change.

Through the real app and worker, on the sandbox and on Stripe (localstripe), on SQLite
and PostgreSQL, with a 12.5 % platform fee: 2500 released = 2188 to the runner + 312 fee.
Each path ends with `ledger check --provider` clean, refunds compared too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from payport.webhooks.models import ProviderEvent
from payport.webhooks.signature import signature_header
from tests.conftest import STRIPE_STACKS, stack_named
from tests.harness import Harness, Stack, nested_authorize
from tests.ledger.conftest import FEE_BPS
from tests.ledger.helpers import (
    RUNNER,
    assert_ledger_clean,
    authorized,
    balance,
    entries,
    kinds,
    released,
    reverted,
    run,
)

PAYMENTS = "/api/v1/payments"


@pytest.fixture(params=["sqlite-local", "postgresql-local", *STRIPE_STACKS])
def stack(request: pytest.FixtureRequest) -> Stack:
    """Every money path on the sandbox and on Stripe-over-localstripe, on both databases."""
    return stack_named(request, request.param)


@pytest.fixture
async def harness(stack: Stack) -> AsyncIterator[Harness]:
    async with stack.started(PLATFORM_FEE_BPS=FEE_BPS) as running:
        yield running


async def history(harness: Harness, user_id: str) -> dict[str, Any]:
    response = await harness.client.get(f"/history/{user_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_authorize_then_release_holds_captures_and_splits(harness: Harness) -> None:
    payment_id = await authorized(harness, "order-l-release")
    assert await kinds(harness, payment_id) == ["authorize"]
    assert await balance(harness, "customer:user_alice") == (-2500, 1)
    assert await balance(harness, f"hold:{payment_id}") == (2500, 0)

    event = await run(harness, "release_payment", {"payment_id": payment_id, **RUNNER})
    assert event["type"] == "payment.released"
    assert await kinds(harness, payment_id) == ["authorize", "capture", "transfer"]
    assert await balance(harness, f"hold:{payment_id}") == (0, 0)
    assert await balance(harness, f"escrow:{payment_id}") == (0, 0)
    assert await balance(harness, "runner:runner_bob") == (2188, 1)
    assert await balance(harness, "platform_fees") == (312, 0)
    assert await balance(harness, "customer:user_alice") == (-2500, 1)
    assert event["payload"]["transfer_amount"] + event["payload"]["platform_fee"] == 2500
    assert (await history(harness, "user_alice"))["totalSpent"] == 25.0
    assert (await history(harness, "runner_bob"))["totalEarned"] == 21.88
    await assert_ledger_clean(harness)


async def test_revert_before_capture_releases_the_hold(harness: Harness) -> None:
    payment_id = await authorized(harness, "order-l-cancel", 1250)
    await reverted(harness, payment_id)
    assert await kinds(harness, payment_id) == ["authorize", "cancel"]
    assert await balance(harness, f"hold:{payment_id}") == (0, 0)
    assert await balance(harness, "customer:user_alice") == (0, 0)
    assert await history(harness, "user_alice") == {
        "userId": "user_alice",
        "totalSpent": 0,
        "totalEarned": 0,
        "spentCount": 0,
        "earnedCount": 0,
    }
    await assert_ledger_clean(harness)


async def test_partial_capture_then_revert_refunds_from_escrow(harness: Harness) -> None:
    created = await harness.client.post(
        PAYMENTS,
        json={
            "order_id": "order-l-capture",
            "amount": 2500,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "customer_user_id": "user_carol",
        },
    )
    payment_id = created.json()["id"]
    captured = await harness.client.post(
        f"{PAYMENTS}/{payment_id}/capture", json={"amount_to_capture": 1500}
    )
    assert captured.json()["status"] == "SUCCEEDED"
    assert await kinds(harness, payment_id) == ["authorize", "capture"]
    assert await balance(harness, f"escrow:{payment_id}") == (1500, 0)
    assert await balance(harness, "customer:user_carol") == (-1500, 1)
    await assert_ledger_clean(harness)

    assert (await harness.client.post(f"{PAYMENTS}/{payment_id}/revert", json={})).is_success
    assert await kinds(harness, payment_id) == ["authorize", "capture", "refund"]
    assert await balance(harness, f"escrow:{payment_id}") == (0, 0)
    assert await balance(harness, "customer:user_carol") == (0, 0)
    await assert_ledger_clean(harness)


async def test_release_then_revert_reverses_transfer_and_fee_then_refunds(
    harness: Harness,
) -> None:
    payment_id = await released(harness, "order-l-refund")
    event = await reverted(harness, payment_id)
    assert event["payload"]["refund_id"] and event["payload"]["transfer_reversal_id"]
    assert await kinds(harness, payment_id) == [
        "authorize",
        "capture",
        "transfer",
        "reverse_transfer",
        "fee_refund",
        "refund",
    ]
    assert await balance(harness, "runner:runner_bob") == (0, 0)
    assert await balance(harness, "customer:user_alice") == (0, 0)
    assert await balance(harness, f"escrow:{payment_id}") == (0, 0)
    assert await balance(harness, "platform_fees") == (312, 0)  # earned, never rewritten
    assert await balance(harness, "refunds") == (-312, 0)  # and given back
    assert (await history(harness, "runner_bob"))["earnedCount"] == 0
    await assert_ledger_clean(harness)


async def test_every_entry_balances_and_none_is_ever_rewritten(harness: Harness) -> None:
    payment_id = await released(harness, "order-l-append")
    before = await entries(harness, payment_id=payment_id)
    await reverted(harness, payment_id)
    after = await entries(harness, payment_id=payment_id)
    assert after[: len(before)] == before
    for entry in after:
        assert sum(p["amount"] for p in entry["postings"]) == 0, entry


async def test_redelivered_commands_and_webhooks_post_nothing_twice(harness: Harness) -> None:
    envelope = {
        "type": "authorize_payment",
        "correlation_id": "dup-authorize",
        "payload": nested_authorize("order-l-dup", 2500),
    }
    for _ in range(3):
        posted = await harness.client.post("/api/v1/commands", content=orjson.dumps(envelope))
        assert posted.status_code == 202
    await harness.drain()
    payment_id = (await harness.outcome("dup-authorize"))["payload"]["payment_id"]
    again = await run(harness, "authorize_payment", nested_authorize("order-l-dup", 2500))
    assert again["type"] == "payment.authorized"

    release = {"payment_id": payment_id, **RUNNER}
    cid = await harness.command("release_payment", release)
    await harness.command("release_payment", release, correlation_id=cid)
    await harness.drain()
    late = await run(harness, "release_payment", release)
    assert late["payload"]["error"] == "INVALID_STATUS"
    revert_cid = await harness.command("revert_payment", {"payment_id": payment_id})
    await harness.command("revert_payment", {"payment_id": payment_id}, correlation_id=revert_cid)
    await harness.drain()
    assert (await run(harness, "revert_payment", {"payment_id": payment_id}))["type"] == (
        "payment.failed"
    )
    await redeliver_every_webhook(harness)

    assert await kinds(harness, payment_id) == [
        "authorize",
        "capture",
        "transfer",
        "reverse_transfer",
        "fee_refund",
        "refund",
    ]
    assert await balance(harness, "customer:user_alice") == (0, 0)
    await assert_ledger_clean(harness)


async def redeliver_every_webhook(harness: Harness) -> None:
    async with harness.runtime.db.read() as session:
        bodies = (await session.execute(select(ProviderEvent.body))).scalars().all()
    secret = (await harness.runtime.webhook_secrets())[0]
    for body in bodies:
        response = await harness.client.post(
            "/stripe-webhook",
            content=body.encode(),
            headers={"Stripe-Signature": signature_header(secret, body.encode())},
        )
        assert response.status_code == 200
    await harness.drain()


async def test_declined_and_unauthenticated_payments_post_nothing(harness: Harness) -> None:
    declined = await run(
        harness,
        "authorize_payment",
        nested_authorize("order-l-declined", 900, "pm_card_chargeDeclined"),
    )
    assert declined["type"] == "payment.failed"
    pending = await harness.command(
        "authorize_payment",
        nested_authorize("order-l-3ds", 4000, "pm_card_authenticationRequired"),
    )
    await harness.drain()
    payment = await harness.payment_by_order("order-l-3ds")
    assert payment["status"] == "REQUIRES_ACTION"
    await reverted(harness, payment["paymentId"])
    assert (await harness.outcome(pending))["type"] == "payment.failed"
    assert await entries(harness) == []
    await assert_ledger_clean(harness)


async def test_3ds_approval_posts_the_hold_from_the_webhook(harness: Harness) -> None:
    await harness.command(
        "authorize_payment",
        nested_authorize("order-l-3ds-ok", 4000, "pm_card_authenticationRequired"),
    )
    await harness.drain()
    payment = await harness.payment_by_order("order-l-3ds-ok")
    await harness.answer_3ds(payment["paymentIntentId"], approve=True)
    await harness.drain()
    assert (await harness.payment_by_order("order-l-3ds-ok"))["status"] == "AUTHORIZED"
    assert await kinds(harness, payment["paymentId"]) == ["authorize"]
    assert await balance(harness, "customer:user_alice") == (-4000, 1)
    await assert_ledger_clean(harness)


async def test_a_refused_transfer_leaves_the_capture_in_escrow_until_refunded(
    database_url: str,
) -> None:
    # A 100 % fee leaves a zero transfer, which the provider refuses after the capture.
    async with Harness.started(database_url, PLATFORM_FEE_BPS=10_000) as harness:
        payment_id = await authorized(harness, "order-l-no-transfer")
        for _ in range(2):  # the retry replays the capture: it is posted once
            event = await run(harness, "release_payment", {"payment_id": payment_id, **RUNNER})
            assert event["type"] == "payment.failed"
        assert (await harness.payment_by_order("order-l-no-transfer"))["status"] == "AUTHORIZED"
        assert await kinds(harness, payment_id) == ["authorize", "capture"]
        assert await balance(harness, f"escrow:{payment_id}") == (2500, 0)
        assert (await history(harness, "user_alice"))["spentCount"] == 1
        await assert_ledger_clean(harness)
        await reverted(harness, payment_id)
        assert await kinds(harness, payment_id) == ["authorize", "capture", "refund"]
        assert await balance(harness, f"escrow:{payment_id}") == (0, 0)
        await assert_ledger_clean(harness)
