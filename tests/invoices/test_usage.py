"""Usage: idempotent by event id (single and batch), aggregated per period, invoiced in
arrears on the next cycle invoice through the metered prices of the plan."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.billing.helpers import START, Billing, iso
from tests.harness import Harness


async def _metered_subscription(harness: Harness) -> tuple[Billing, dict[str, Any], str]:
    billing = Billing(harness)
    plan = await billing.plan(plan_id="plan_api", price_minor=1000)
    for metric, aggregation, unit in [
        ("api_calls", "sum", 2),
        ("seats", "max", 500),
        ("logins", "count", 1),
        ("storage_gb", "last", 30),
    ]:
        response = await harness.client.post(
            "/api/v1/plans/plan_api/metered_prices",
            json={"metric": metric, "aggregation": aggregation, "unit_amount_minor": unit},
        )
        assert response.status_code == 201, response.text
    clock = await billing.clock()
    subscription = await billing.subscribe(plan["plan_id"], test_clock=clock)
    return billing, subscription, clock  # fmt: skip


def _event(
    subscription_id: str, n: int, metric: str, quantity: int, minutes: int
) -> dict[str, Any]:
    return {"event_id": f"evt-{metric}-{n}", "subscription_id": subscription_id, "metric": metric,
            "quantity": quantity, "timestamp": iso(START + timedelta(minutes=minutes))}  # fmt: skip


FIXTURE = [  # (metric, quantity, minutes after the period start)
    ("api_calls", 120, 1), ("api_calls", 80, 2), ("api_calls", 300, 3),
    ("seats", 3, 1), ("seats", 7, 5), ("seats", 5, 9),
    ("logins", 1, 1), ("logins", 1, 2), ("logins", 1, 3), ("logins", 1, 4),
    ("storage_gb", 10, 1), ("storage_gb", 4, 8), ("storage_gb", 6, 3),
]  # fmt: skip


async def test_batch_is_idempotent_by_event_id(harness: Harness) -> None:
    _, subscription, _ = await _metered_subscription(harness)
    events = [_event(subscription["subscription_id"], n, *row) for n, row in enumerate(FIXTURE)]
    first = await harness.client.post("/api/v1/usage", json={"events": events})
    assert first.status_code == 201, first.text
    assert (first.json()["accepted"], first.json()["duplicates"]) == (13, 0)
    again = await harness.client.post("/api/v1/usage", json={"events": events[::-1]})
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 13)
    single = await harness.client.post("/api/v1/usage", json=events[0])
    assert (single.json()["accepted"], single.json()["duplicates"]) == (0, 1)
    summary = await harness.client.get(
        f"/api/v1/usage/subscriptions/{subscription['subscription_id']}"
    )
    assert summary.json()["metrics"] == {  # computed by hand from FIXTURE
        "api_calls": {"sum": 500, "max": 300, "count": 3, "last": 300},
        "logins": {"sum": 4, "max": 1, "count": 4, "last": 1},
        "seats": {"sum": 15, "max": 7, "count": 3, "last": 5},
        "storage_gb": {"sum": 20, "max": 10, "count": 3, "last": 4},
    }


async def test_metered_usage_is_charged_on_the_next_cycle_invoice(harness: Harness) -> None:
    billing, subscription, clock = await _metered_subscription(harness)
    subscription_id = subscription["subscription_id"]
    events = [_event(subscription_id, n, *row) for n, row in enumerate(FIXTURE)]
    await harness.client.post("/api/v1/usage", json={"events": events})
    # Recorded at the clock's time when no timestamp is given: also in the first period.
    await harness.client.post(
        "/api/v1/usage",
        json={"event_id": "evt-late", "subscription_id": subscription_id,
              "metric_name": "api_calls", "quantity": 100},
    )  # fmt: skip
    await billing.advance(clock, START + timedelta(days=32))
    invoices = await billing.invoices(subscription_id)
    cycle = next(i for i in invoices if i["billing_reason"] == "subscription_cycle")
    usage = {line["description"]: line["amount_minor"] for line in cycle["lines"]
             if line["kind"] == "usage"}  # fmt: skip
    assert usage == {
        "600 x api_calls (sum)": 1200,
        "7 x seats (max)": 3500,
        "4 x logins (count)": 4,
        "4 x storage_gb (last)": 120,
    }
    assert cycle["total_minor"] == 1000 + 1200 + 3500 + 4 + 120
    assert cycle["status"] == "paid"


async def test_bad_usage_names_the_field(harness: Harness) -> None:
    _, subscription, _ = await _metered_subscription(harness)
    good = _event(subscription["subscription_id"], 0, "api_calls", 1, 1)
    cases = [
        ({**good, "quantity": -1}, "quantity"),
        ({**good, "quantity": 1.5}, "quantity"),
        ({k: v for k, v in good.items() if k != "event_id"}, "event_id"),
        ({**good, "subscription_id": "sub_missing"}, "events.0.subscription_id"),
        ({"events": []}, "events"),
        ({"events": [good, {**good, "metric": "bad metric"}]}, "events.1.metric"),
    ]
    for body, field in cases:
        response = await harness.client.post("/api/v1/usage", json=body)
        assert response.status_code in (400, 404), (body, response.text)
        assert response.json()["field"] == field, (body, response.text)
    summary = await harness.client.get(
        f"/api/v1/usage/subscriptions/{subscription['subscription_id']}"
    )
    assert summary.json()["metrics"] == {}
