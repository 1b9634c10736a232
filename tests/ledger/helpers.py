"""Shared steps for the ledger tests: drive payments through the harness, read the ledger back."""

from __future__ import annotations

from typing import Any

from payport.ledger.check import Report, check
from tests.harness import Harness, nested_authorize

RUNNER = {"runner_id": "runner_bob", "runner_connect_account_id": "acct_bob"}


async def run(harness: Harness, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send one command, let payport settle, return its outcome event."""
    cid = await harness.command(kind, payload)
    await harness.drain()
    return await harness.outcome(cid)


async def authorized(harness: Harness, order_id: str, amount: int = 2500) -> str:
    event = await run(harness, "authorize_payment", nested_authorize(order_id, amount))
    assert event["type"] == "payment.authorized", event
    payment_id: str = event["payload"]["payment_id"]
    return payment_id


async def released(harness: Harness, order_id: str, amount: int = 2500) -> str:
    payment_id = await authorized(harness, order_id, amount)
    event = await run(harness, "release_payment", {"payment_id": payment_id, **RUNNER})
    assert event["type"] == "payment.released", event
    return payment_id


async def reverted(harness: Harness, payment_id: str) -> dict[str, Any]:
    event = await run(harness, "revert_payment", {"payment_id": payment_id})
    assert event["type"] == "payment.reverted", event
    return event


async def entries(harness: Harness, **filters: Any) -> list[dict[str, Any]]:
    """Every entry matching the filters, oldest first, through the public API."""
    response = await harness.client.get("/api/v1/ledger/entries", params={"limit": 100, **filters})
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()["data"]
    return body[::-1]


async def kinds(harness: Harness, payment_id: str) -> list[str]:
    return [entry["kind"] for entry in await entries(harness, payment_id=payment_id)]


async def balance(harness: Harness, account: str, currency: str = "usd") -> tuple[int, int]:
    """(amount, payment count) of an account in one currency, through the public API."""
    response = await harness.client.get(f"/api/v1/balances/{account}")
    assert response.status_code == 200, response.text
    for row in response.json()["balances"]:
        if row["currency"] == currency:
            return row["amount"], row["payment_count"]
    return 0, 0


async def assert_ledger_clean(harness: Harness, *, provider: bool = True) -> Report:
    report = await check(
        harness.runtime.db, provider=harness.runtime.provider if provider else None
    )
    assert report.ok, [str(p) for p in report.problems]
    return report
