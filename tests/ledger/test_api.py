"""GET /api/v1/balances/{account} and /api/v1/ledger/entries: minor units, cursors, clear errors."""

from __future__ import annotations

from typing import Any

from tests.harness import Harness
from tests.ledger.helpers import authorized, released

ENTRIES = "/api/v1/ledger/entries"


async def test_balance_of_an_account_per_currency(harness: Harness) -> None:
    await released(harness, "order-api-1", 2500)
    await authorized(harness, "order-api-2", 1000)
    response = await harness.client.get("/api/v1/balances/customer:user_alice")
    assert response.status_code == 200
    assert response.json() == {
        "object": "balance",
        "account": "customer:user_alice",
        "balances": [{"currency": "usd", "amount": -3500, "payment_count": 2}],
    }


async def test_an_account_without_activity_has_no_balances(harness: Harness) -> None:
    response = await harness.client.get("/api/v1/balances/runner:nobody")
    assert response.status_code == 200
    assert response.json()["balances"] == []


async def test_a_malformed_account_is_a_problem_naming_the_field(harness: Harness) -> None:
    for path in ("/api/v1/balances/wallet:x", "/api/v1/balances/escrow"):
        response = await harness.client.get(path)
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "INVALID_PAYLOAD"
        assert response.json()["field"] == "account"
    listed = await harness.client.get(ENTRIES, params={"account": "platform_fees:x"})
    assert listed.status_code == 422
    assert listed.json()["field"] == "account"


async def test_bad_paging_parameters_name_the_field(harness: Harness) -> None:
    for params, field in (({"limit": 0}, "limit"), ({"starting_after": "abc"}, "starting_after")):
        response = await harness.client.get(ENTRIES, params=params)
        assert response.status_code == 422
        assert response.json()["field"] == field


async def test_entries_page_newest_first_with_a_cursor(harness: Harness) -> None:
    first = await released(harness, "order-api-3")
    second = await released(harness, "order-api-4")
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, int] = {"limit": 2}
        if cursor is not None:
            params["starting_after"] = cursor
        page = (await harness.client.get(ENTRIES, params=params)).json()
        assert page["object"] == "list" and page["url"] == ENTRIES
        seen += page["data"]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    ids = [entry["id"] for entry in seen]
    assert ids == sorted(ids, reverse=True) and len(ids) == 6
    assert [e["payment_id"] for e in seen[:3]] == [second] * 3
    assert [e["payment_id"] for e in seen[3:]] == [first] * 3
    transfer = seen[0]
    assert transfer["object"] == "ledger_entry"
    assert transfer["cause"] == f"transfer:{second}"
    assert transfer["kind"] == "transfer"
    assert transfer["created_at"].endswith("Z")
    assert {p["account"]: p["amount"] for p in transfer["postings"]} == {
        f"escrow:{second}": -2500,
        "runner:runner_bob": 2188,
        "platform_fees": 312,
    }


async def test_entries_filter_by_account_and_payment(harness: Harness) -> None:
    first = await released(harness, "order-api-5")
    await authorized(harness, "order-api-6")
    by_runner = (await harness.client.get(ENTRIES, params={"account": "runner:runner_bob"})).json()
    assert [e["cause"] for e in by_runner["data"]] == [f"transfer:{first}"]
    by_payment = (await harness.client.get(ENTRIES, params={"payment_id": first})).json()
    assert [e["kind"] for e in by_payment["data"]] == ["transfer", "capture", "authorize"]
    both = await harness.client.get(
        ENTRIES, params={"payment_id": first, "account": "customer:user_alice"}
    )
    assert [e["kind"] for e in both.json()["data"]] == ["authorize"]
    by_customer = await harness.client.get(
        ENTRIES, params={"account": "customer:user_alice", "limit": 1}
    )
    assert by_customer.json()["has_more"] is True


async def test_openapi_documents_the_ledger_routes(harness: Harness) -> None:
    paths = (await harness.client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/balances/{account}" in paths
    assert "/api/v1/ledger/entries" in paths
