"""Driving the billing API the way a client would, plus reads of the ledger and events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from payport.ledger.check import check
from tests.harness import Harness

START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Billing:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.client = harness.client

    async def plan(self, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"name": "Pro", "tier": "pro", "billing_cycle": "monthly"}
        if "price" not in fields:
            body["price_minor"] = 3000
        response = await self.client.post("/api/v1/plans", json=body | fields)
        assert response.status_code == 201, response.text
        plan: dict[str, Any] = response.json()
        return plan

    async def clock(self, at: datetime = START) -> str:
        response = await self.client.post("/api/v1/test_clocks", json={"frozen_time": iso(at)})
        assert response.status_code == 201, response.text
        clock_id: str = response.json()["id"]
        return clock_id

    async def advance(self, clock_id: str, to: datetime) -> dict[str, Any]:
        response = await self.client.post(
            f"/api/v1/test_clocks/{clock_id}/advance", json={"frozen_time": iso(to)}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def subscribe(self, plan_id: str, **fields: Any) -> dict[str, Any]:
        body = {"user_id": "user_ada", "plan_id": plan_id, "payment_method_id": "pm_card_visa"}
        response = await self.client.post("/api/v1/subscriptions", json=body | fields)
        assert response.status_code == 201, response.text
        subscription: dict[str, Any] = response.json()
        return subscription

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/subscriptions/{subscription_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def update(self, subscription_id: str, **fields: Any) -> dict[str, Any]:
        response = await self.client.put(f"/api/v1/subscriptions/{subscription_id}", json=fields)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def invoices(self, subscription_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/api/v1/subscriptions/{subscription_id}/invoices")
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    async def balance(self, account: str, currency: str = "usd") -> int:
        response = await self.client.get(f"/api/v1/balances/{account}")
        assert response.status_code == 200, response.text
        for row in response.json()["balances"]:
            if row["currency"] == currency:
                amount: int = row["amount"]
                return amount
        return 0

    async def event_types(self) -> list[str]:
        await self.harness.drain()
        return [event["type"] for event in await self.harness.all_events()]

    async def assert_ledger_adds_up(self) -> None:
        report = await check(self.harness.runtime.db)
        assert report.ok, [str(problem) for problem in report.problems]
