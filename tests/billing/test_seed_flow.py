"""Seed 003's plan and subscription steps (tests 3-9 and 20), as its clients send them."""

from __future__ import annotations

from tests.billing.helpers import Billing


async def test_seed_plan_steps_create_get_and_list(billing: Billing) -> None:
    """Tests 3-5: the seed's client sends the price in dollars as a JSON number."""
    created = await billing.client.post(
        "/api/v1/plans",
        content=b'{"plan_id": "plan_pro_monthly", "name": "Pro Plan", "tier": "pro",'
        b' "price": 29.99, "billing_cycle": "monthly"}',
        headers={"content-type": "application/json"},
    )
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["plan_id"] == "plan_pro_monthly"
    assert (plan["price_minor"], plan["price"], plan["currency"]) == (2999, 29.99, "usd")
    assert (plan["tier"], plan["billing_cycle"]) == ("pro", "monthly")

    fetched = await billing.client.get("/api/v1/plans/plan_pro_monthly")
    assert fetched.status_code == 200
    assert fetched.json() == plan

    listed = await billing.client.get("/api/v1/plans")
    assert listed.status_code == 200
    assert [p["plan_id"] for p in listed.json()["data"]] == ["plan_pro_monthly"]


async def test_seed_subscription_steps_create_get_update_cancel(billing: Billing) -> None:
    """Tests 6-9 and 20: subscribe, read the user's subscriptions, update, cancel."""
    await billing.plan(plan_id="plan_pro_monthly", price="29.99")
    await billing.plan(plan_id="plan_team_monthly", name="Team", tier="team", price_minor=4999)

    created = await billing.client.post(
        "/api/v1/subscriptions",
        json={
            "user_id": "user_123",
            "plan_id": "plan_pro_monthly",
            "payment_method_id": "pm_card_visa",
        },
    )
    assert created.status_code == 201, created.text
    subscription = created.json()
    sub_id = subscription["subscription_id"]
    assert subscription["status"] == "active"
    assert subscription["latest_invoice"]["status"] == "paid"
    assert subscription["latest_invoice"]["amount_paid_minor"] == 2999

    mine = await billing.client.get("/api/v1/subscriptions/user/user_123")
    assert mine.status_code == 200
    assert [s["subscription_id"] for s in mine.json()["data"]] == [sub_id]

    updated = await billing.client.put(
        f"/api/v1/subscriptions/{sub_id}", json={"plan_id": "plan_team_monthly", "quantity": 2}
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["plan_id"], updated.json()["quantity"]) == ("plan_team_monthly", 2)

    canceled = await billing.client.post(
        f"/api/v1/subscriptions/{sub_id}/cancel", json={"reason": "switching vendors"}
    )
    assert canceled.status_code == 200, canceled.text
    body = canceled.json()
    assert body["status"] == "canceled"
    assert body["cancellation_reason"] == "switching vendors"
    assert body["ended_at"] is not None
    # The upgrade's prorations were pending for the next invoice: the final one bills them.
    final = body["latest_invoice"]
    assert (final["billing_reason"], final["status"]) == ("subscription_cancel", "paid")

    types = await billing.event_types()
    assert types.count("subscription.created") == 1
    assert "invoice.paid" in types
    assert [t for t in types if t.startswith("subscription.")][-1] == "subscription.canceled"
    assert types[-2:] == ["invoice.created", "invoice.paid"]
    await billing.assert_ledger_adds_up()
