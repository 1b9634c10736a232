"""Bad billing requests: a 400/404/409 problem naming the field, and nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.billing.helpers import Billing

PLAN = {"plan_id": "plan_x", "name": "X", "billing_cycle": "monthly"}


def check_problem(response: httpx.Response, status: int, code: str, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert (body["status"], body["code"], body["field"]) == (status, code, field), body
    assert isinstance(body["detail"], str) and body["detail"]


async def plan_count(billing: Billing) -> int:
    response = await billing.client.get("/api/v1/plans", params={"limit": 100})
    return len(response.json()["data"])


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"plan_id": "plan_x", "name": "X", "price": 29.999}', "price"),
        (b'{"plan_id": "plan_x", "name": "X", "price": 1e-3}', "price"),
        (b'{"plan_id": "plan_x", "name": "X", "price": -1.00}', "price"),
        (b'{"plan_id": "plan_x", "name": "X", "price": "abc"}', "price"),
        (b'{"plan_id": "plan_x", "name": "X", "price": true}', "price"),
        (b'{"plan_id": "plan_x", "name": "X", "price": 1000000.00}', "price"),
        (b'{"plan_id": "plan_x", "name": "X"}', "price"),
        (b'{"plan_id": "plan_x", "name": "X", "price": 1, "price_minor": 100}', "price"),
        (b'{"plan_id": "plan_x", "name": "X", "price_minor": 12.5}', "price_minor"),
        (b'{"plan_id": "plan_x", "name": "X", "price": 100.5, "currency": "jpy"}', "price"),
        (b'{"plan_id": "plan_x", "name": "X", "price": 1, "currency": "xyz"}', "currency"),
        (
            b'{"plan_id": "plan_x", "name": "X", "price": 1, "billing_cycle": "weekly"}',
            "billing_cycle",
        ),
        (b'{"plan_id": "plan_x", "price": 1}', "name"),
        (b'{"plan_id": "bad id!", "name": "X", "price": 1}', "plan_id"),
        (b'{"plan_id": "plan_x", "name": "X", "price": 1, "trial_days": -1}', "trial_days"),
        (b'{"plan_id": "plan_x", "name": "X", "price": 1, "surprise": 1}', "surprise"),
        (b'{"plan_id": "plan_x", "name": "X", "price": 1', "body"),
        (b"[1, 2]", "body"),
    ],
)
async def test_a_bad_plan_is_refused_naming_the_field(
    billing: Billing, raw: bytes, field: str
) -> None:
    response = await billing.client.post(
        "/api/v1/plans", content=raw, headers={"content-type": "application/json"}
    )
    check_problem(response, 400, "INVALID_PAYLOAD", field)
    assert await plan_count(billing) == 0


@pytest.mark.parametrize(
    ("raw", "currency", "minor"),
    [
        (b"29.99", "usd", 2999),
        (b"0.1", "usd", 10),
        (b"19.990", "usd", 1999),  # trailing zeros are not extra precision
        (b"1000", "jpy", 1000),
        (b"1.234", "kwd", 1234),
        (b'"4.20"', "eur", 420),
    ],
)
async def test_prices_are_parsed_exactly_from_the_json_text(
    billing: Billing, raw: bytes, currency: str, minor: int
) -> None:
    body = b'{"name": "X", "price": ' + raw + b', "currency": "' + currency.encode() + b'"}'
    response = await billing.client.post(
        "/api/v1/plans", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert (response.json()["price_minor"], response.json()["currency"]) == (minor, currency)


async def test_a_taken_plan_id_is_a_conflict_and_an_unknown_one_is_not_found(
    billing: Billing,
) -> None:
    await billing.plan(**PLAN)
    again = await billing.client.post("/api/v1/plans", json=PLAN | {"price_minor": 999})
    check_problem(again, 409, "INVALID_STATUS", "plan_id")
    assert (await billing.client.get("/api/v1/plans/plan_x")).json()["price_minor"] == 3000
    missing = await billing.client.get("/api/v1/plans/plan_nope")
    check_problem(missing, 404, "NOT_FOUND", "plan_id")


async def test_plans_filter_and_page_newest_first(billing: Billing) -> None:
    for n in range(5):
        await billing.plan(plan_id=f"p{n}", tier="pro" if n % 2 else "basic")
    first = (await billing.client.get("/api/v1/plans", params={"limit": 2})).json()
    assert ([p["plan_id"] for p in first["data"]], first["has_more"]) == (["p4", "p3"], True)
    rest = await billing.client.get("/api/v1/plans", params={"limit": 10, "starting_after": "p3"})
    assert [p["plan_id"] for p in rest.json()["data"]] == ["p2", "p1", "p0"]
    pro = await billing.client.get("/api/v1/plans", params={"tier": "pro"})
    assert [p["plan_id"] for p in pro.json()["data"]] == ["p3", "p1"]
    bad = await billing.client.get("/api/v1/plans", params={"starting_after": "nope"})
    check_problem(bad, 400, "INVALID_PAYLOAD", "starting_after")


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"plan_id": "plan_x"}, 400, "INVALID_PAYLOAD", "user_id"),
        ({"user_id": "u", "plan_id": "plan_nope"}, 404, "NOT_FOUND", "plan_id"),
        ({"user_id": "u", "plan_id": "plan_x", "quantity": 0}, 400, "INVALID_PAYLOAD", "quantity"),
        (
            {"user_id": "u", "plan_id": "plan_x", "quantity": "2"},
            400,
            "INVALID_PAYLOAD",
            "quantity",
        ),
        (
            {"user_id": "u", "plan_id": "plan_x", "test_clock": "clock_no"},
            404,
            "NOT_FOUND",
            "test_clock",
        ),
    ],
)
async def test_a_bad_subscription_is_refused_naming_the_field(
    billing: Billing, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    await billing.plan(**PLAN)
    response = await billing.client.post("/api/v1/subscriptions", json=body)
    check_problem(response, status, code, field)
    listed = await billing.client.get("/api/v1/subscriptions/user/u")
    assert listed.json()["data"] == []


async def test_bad_changes_to_a_subscription_leave_it_as_it_was(billing: Billing) -> None:
    await billing.plan(**PLAN)
    await billing.plan(plan_id="plan_eur", name="E", currency="eur")
    await billing.plan(plan_id="plan_year", name="Y", billing_cycle="yearly")
    sub = await billing.subscribe("plan_x")
    path = f"/api/v1/subscriptions/{sub['subscription_id']}"

    check_problem(await billing.client.put(path, json={}), 400, "INVALID_PAYLOAD", "body")
    check_problem(
        await billing.client.put(path, json={"plan_id": "plan_eur"}),
        400,
        "INVALID_PAYLOAD",
        "plan_id",
    )
    check_problem(
        await billing.client.put(path, json={"proration_behavior": "sometimes", "quantity": 2}),
        400,
        "INVALID_PAYLOAD",
        "proration_behavior",
    )
    check_problem(
        await billing.client.put("/api/v1/subscriptions/sub_nope", json={"quantity": 2}),
        404,
        "NOT_FOUND",
        "subscription_id",
    )
    assert await billing.subscription(sub["subscription_id"]) == sub

    waiting = await billing.subscribe("plan_x", payment_method_id="pm_card_chargeDeclined")
    check_problem(
        await billing.client.put(
            f"/api/v1/subscriptions/{waiting['subscription_id']}", json={"plan_id": "plan_year"}
        ),
        409,
        "INVALID_STATUS",
        "status",
    )  # an incomplete subscription has no paid period to switch from

    canceled = await billing.client.post(f"{path}/cancel")  # no body: cancel now
    assert canceled.json()["status"] == "canceled"
    check_problem(await billing.client.post(f"{path}/cancel"), 409, "INVALID_STATUS", "status")
    check_problem(
        await billing.client.put(path, json={"quantity": 3}), 409, "INVALID_STATUS", "status"
    )


async def test_a_test_clock_only_moves_forward(billing: Billing) -> None:
    clock = await billing.clock()
    path = f"/api/v1/test_clocks/{clock}/advance"
    back = await billing.client.post(path, json={"frozen_time": "2025-01-01T00:00:00Z"})
    check_problem(back, 400, "INVALID_PAYLOAD", "frozen_time")
    far = await billing.client.post(path, json={"frozen_time": "2030-01-01T00:00:00Z"})
    check_problem(far, 400, "INVALID_PAYLOAD", "frozen_time")
    junk = await billing.client.post(path, json={"frozen_time": "soon"})
    check_problem(junk, 400, "INVALID_PAYLOAD", "frozen_time")
    missing = await billing.client.get("/api/v1/test_clocks/clock_nope")
    check_problem(missing, 404, "NOT_FOUND", "test_clock")
    assert (await billing.client.get(f"/api/v1/test_clocks/{clock}")).json()["frozen_time"] == (
        "2026-01-15T12:00:00Z"
    )
