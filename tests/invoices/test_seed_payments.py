"""Seed 003's payment routes over the core domain: intent holds, confirm captures, history."""

from __future__ import annotations

from tests.harness import Harness


async def test_intent_then_confirm_captures_and_history_lists_it(harness: Harness) -> None:
    raw = b'{"user_id": "user_sam", "amount": 29.99, "currency": "USD", "payment_method_id": "pm_card_visa", "description": "Pro plan"}'  # noqa: E501
    created = await harness.client.post(
        "/api/v1/payments/intent", content=raw, headers={"Content-Type": "application/json"}
    )
    assert created.status_code == 201, created.text
    intent = created.json()
    assert (intent["status"], intent["amount"], intent["currency"]) == ("AUTHORIZED", 2999, "usd")
    payment_id = intent["payment_id"]
    confirmed = await harness.client.post(f"/api/v1/payments/{payment_id}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["status"], confirmed.json()["amount_captured"]) == ("SUCCEEDED", 2999)
    again = await harness.client.post(f"/api/v1/payments/{payment_id}/confirm")
    assert again.status_code == 200 and again.json()["amount_captured"] == 2999
    history = await harness.client.get("/api/v1/payments/user/user_sam")
    assert [row["payment_id"] for row in history.json()["data"]] == [payment_id]
    assert (await harness.client.get("/api/v1/payments/user/nobody")).json()["data"] == []
    await harness.drain()
    types = [event["type"] for event in await harness.all_events()]
    assert types.count("payment.authorized") == 1 and types.count("payment.captured") == 1


async def test_declined_intent_is_402_and_bad_amount_names_the_field(harness: Harness) -> None:
    declined = await harness.client.post(
        "/api/v1/payments/intent",
        json={"user_id": "u", "amount_minor": 900, "payment_method_id": "pm_card_chargeDeclined"},
    )
    assert declined.status_code == 402, declined.text
    for body, field in [
        ({"user_id": "u", "amount": "1.999", "payment_method_id": "pm_card_visa"}, "amount"),
        ({"user_id": "u", "payment_method_id": "pm_card_visa"}, "amount"),
        ({"amount_minor": 900, "payment_method_id": "pm_card_visa"}, "user_id"),
        ({"user_id": "u", "amount_minor": 900}, "payment_method_id"),
    ]:
        response = await harness.client.post("/api/v1/payments/intent", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["field"] == field
    missing = await harness.client.post("/api/v1/payments/nope/confirm")
    assert missing.status_code == 404 and missing.json()["field"] == "payment_id"
