"""payport assembled for tests: the real app, runtime, sandbox and database, driven step by step."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from sqlalchemy import delete

import payport.models
from payport.app import create_app
from payport.config import load_settings
from payport.runtime import Runtime

BASE = "http://payport.test"


class Harness:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.client = client
        self._cursor = 0

    @classmethod
    @asynccontextmanager
    async def started(cls, database_url: str, **settings: Any) -> AsyncIterator[Harness]:
        config = load_settings(
            DATABASE_URL=database_url,
            PAYPORT_PUBLIC_URL=BASE,
            PAYPORT_SANDBOX_WEBHOOK_URL=f"{BASE}/stripe-webhook",
            **settings,
        )
        runtime = Runtime(config)
        await wipe(runtime)
        app = create_app(config, runtime=runtime)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        runtime.use_webhook_client(client)
        try:
            yield cls(runtime, client)
        finally:
            await runtime.stop()
            await client.aclose()

    async def command(
        self, kind: str, payload: dict[str, Any], *, correlation_id: str | None = None
    ) -> str:
        correlation_id = correlation_id or str(uuid.uuid4())
        envelope = {
            "type": kind,
            "correlation_id": correlation_id,
            "timestamp": "2025-03-31T10:15:30.123456",
            "payload": payload,
        }
        response = await self.client.post("/api/v1/commands", content=orjson.dumps(envelope))
        assert response.status_code == 202, response.text
        return correlation_id

    async def drain(self) -> None:
        await self.runtime.drain()

    async def new_events(self) -> list[dict[str, Any]]:
        """Events published since the last call."""
        response = await self.client.get(
            "/api/v1/events", params={"after": self._cursor, "limit": 1000}
        )
        assert response.status_code == 200
        body = response.json()
        self._cursor = body["next_cursor"]
        events: list[dict[str, Any]] = body["data"]
        return events

    async def all_events(self) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/events", params={"after": 0, "limit": 1000})
        result: list[dict[str, Any]] = response.json()["data"]
        return result

    async def authorize(
        self, order_id: str, *, amount: int = 2500, payment_method: str = "pm_card_visa"
    ) -> dict[str, Any]:
        """Authorize through the command path and return the outcome event."""
        cid = await self.command(
            "authorize_payment", nested_authorize(order_id, amount, payment_method)
        )
        await self.drain()
        return await self.outcome(cid)

    async def outcome(self, correlation_id: str) -> dict[str, Any]:
        matches = [e for e in await self.all_events() if e["correlation_id"] == correlation_id]
        assert len({e["event_id"] for e in matches}) == 1, matches
        return matches[0]

    async def payment_by_order(self, order_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/payment/{order_id}/status")
        assert response.status_code == 200, response.text
        payment: dict[str, Any] = response.json()["payment"]
        return payment


def nested_authorize(
    order_id: str, amount: int = 2500, payment_method: str = "pm_card_visa"
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer": {
            "clerkUserId": "user_alice",
            "stripeCustomerId": "cus_alice",
            "userStripeCard": {"payment_method_id": payment_method},
        },
        "order": {"amount": amount, "description": "Campus delivery"},
    }


async def wipe(runtime: Runtime) -> None:
    """Empty every table so each test starts from nothing (schema stays migrated)."""
    async with runtime.db.transaction() as session:
        for table in reversed(payport.models.Base.metadata.sorted_tables):
            await session.execute(delete(table))
