from tests.harness import Harness


async def test_authorize_release_flow(harness: Harness) -> None:
    event = await harness.authorize("order-1")
    assert event["type"] == "payment.authorized", event
    payment_id = event["payload"]["payment_id"]
    response = await harness.client.post(
        f"/payment/{payment_id}/release",
        json={"runner_id": "runner_bob", "runner_connect_account_id": "acct_bob"},
    )
    assert response.status_code == 202
    await harness.drain()
    outcome = await harness.outcome(response.json()["correlation_id"])
    assert outcome["type"] == "payment.released", outcome
    payment = await harness.payment_by_order("order-1")
    assert payment["status"] == "SUCCEEDED"
    assert payment["amount"] == 25.0
