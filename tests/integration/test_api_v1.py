"""payport's own payments API: synchronous, minor units, Stripe-style idempotency."""

from __future__ import annotations

from typing import Any

from tests.harness import Harness, Stack

PAYMENTS = "/api/v1/payments"


def body(order_id: str, **overrides: Any) -> dict[str, Any]:
    defaults = {
        "order_id": order_id,
        "amount": 1999,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "customer_user_id": "user_api",
    }
    return defaults | overrides


async def test_create_authorizes_and_answers_in_minor_units(harness: Harness) -> None:
    response = await harness.client.post(PAYMENTS, json=body("api-1"))
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["status"] == "AUTHORIZED"
    assert payment["amount"] == 1999
    assert payment["payment_intent_id"].startswith("pi_")
    fetched = await harness.client.get(f"{PAYMENTS}/{payment['id']}")
    assert fetched.json() == payment


async def test_idempotency_key_replays_the_first_answer(harness: Harness) -> None:
    headers = {"Idempotency-Key": "key-api-2"}
    first = await harness.client.post(PAYMENTS, json=body("api-2"), headers=headers)
    again = await harness.client.post(PAYMENTS, json=body("api-2"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    reused = await harness.client.post(PAYMENTS, json=body("api-2", amount=2999), headers=headers)
    assert reused.status_code == 400
    assert reused.headers["content-type"].startswith("application/problem+json")
    assert reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert reused.json()["field"] == "Idempotency-Key"


async def test_decline_is_a_402_problem_with_the_decline_code(harness: Harness) -> None:
    response = await harness.client.post(
        PAYMENTS, json=body("api-3", payment_method="pm_card_chargeDeclinedInsufficientFunds")
    )
    assert response.status_code == 402
    problem = response.json()
    assert problem["code"] == "STRIPE_CARD_ERROR"
    assert problem["decline_code"] == "insufficient_funds"
    assert problem["payment"]["status"] == "FAILED"


async def test_validation_names_the_field(harness: Harness) -> None:
    response = await harness.client.post(PAYMENTS, json=body("api-4", amount="12.50"))
    assert response.status_code == 422
    assert response.json()["field"] == "amount"
    too_small = await harness.client.post(PAYMENTS, json=body("api-4", amount=10))
    assert too_small.status_code == 422
    assert too_small.json()["code"] == "INVALID_AMOUNT"
    missing = await harness.client.get(f"{PAYMENTS}/no-such-payment")
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"


async def test_partial_capture_then_refund(harness: Harness) -> None:
    payment = (await harness.client.post(PAYMENTS, json=body("api-5"))).json()
    captured = await harness.client.post(
        f"{PAYMENTS}/{payment['id']}/capture", json={"amount_to_capture": 1500}
    )
    assert captured.status_code == 200, captured.text
    assert captured.json()["status"] == "SUCCEEDED"
    assert captured.json()["amount_captured"] == 1500
    again = await harness.client.post(f"{PAYMENTS}/{payment['id']}/capture")
    assert again.status_code == 409
    assert again.json()["code"] == "INVALID_STATUS"
    reverted = await harness.client.post(f"{PAYMENTS}/{payment['id']}/revert", json={})
    assert reverted.status_code == 200
    assert reverted.json()["status"] == "REVERTED"
    assert reverted.json()["amount_refunded"] == 1500


async def test_release_with_platform_fee_splits_exactly(stack: Stack) -> None:
    async with stack.started(PLATFORM_FEE_BPS=1250) as harness:
        payment = (await harness.client.post(PAYMENTS, json=body("api-6", amount=1999))).json()
        released = await harness.client.post(
            f"{PAYMENTS}/{payment['id']}/release",
            json={"runner_id": "runner_1", "runner_connect_account_id": "acct_runner_1"},
        )
        assert released.status_code == 200, released.text
        result = released.json()
    assert result["status"] == "SUCCEEDED"
    assert result["platform_fee"] == 249  # 1999 * 12.5 %, rounded down
    assert result["transfer_amount"] == 1750
    assert result["platform_fee"] + result["transfer_amount"] == result["amount_captured"] == 1999


async def test_list_pages_newest_first_with_a_cursor(harness: Harness) -> None:
    ids = []
    for i in range(5):
        created = await harness.client.post(PAYMENTS, json=body(f"api-list-{i}"))
        ids.append(created.json()["id"])
    first = (await harness.client.get(PAYMENTS, params={"limit": 3})).json()
    assert first["has_more"] is True
    second = (
        await harness.client.get(
            PAYMENTS, params={"limit": 3, "starting_after": first["data"][-1]["id"]}
        )
    ).json()
    assert second["has_more"] is False
    seen = [p["id"] for p in first["data"] + second["data"]]
    assert sorted(seen) == sorted(ids)
    assert len(set(seen)) == 5
    only = (await harness.client.get(PAYMENTS, params={"order_id": "api-list-2"})).json()
    assert [p["order_id"] for p in only["data"]] == ["api-list-2"]
