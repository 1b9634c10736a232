"""Checkout fixtures: a real shop (order + inventory service) on a free port, and payport
wired to it, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.checkout.shop import INTERNAL_SECRET, USER_SECRET, Shop, running_shop
from tests.harness import Harness


@pytest.fixture
def shop() -> Iterator[Shop]:
    with running_shop() as running:
        yield running


def checkout_settings(shop: Shop, **extra: Any) -> dict[str, Any]:
    return {
        "ORDER_SERVICE_URL": shop.url,
        "INVENTORY_SERVICE_URL": shop.url,
        "JWT_SECRET": USER_SECRET,
        "INTERNAL_SERVICE_SECRET": INTERNAL_SECRET,
        "PAYPORT_ORDER_CALL_BACKOFF_S": 0.05,
        "PAYPORT_ORDER_CALL_MAX_BACKOFF_S": 0.2,
    } | extra


@pytest.fixture
async def payport(database_url: str, shop: Shop) -> AsyncIterator[Harness]:
    async with Harness.started(database_url, **checkout_settings(shop)) as harness:
        yield harness


async def create_session(harness: Harness, token: str, order_id: str) -> httpx.Response:
    return await harness.client.post(
        "/payments/create-session",
        json={"orderId": order_id},
        headers={"Authorization": f"Bearer {token}"},
    )


async def pay(harness: Harness, session_id: str, number: str) -> httpx.Response:
    """Submit the sandbox's hosted page form, as the browser does."""
    return await harness.client.post(
        f"/sandbox/checkout/{session_id}",
        content=httpx.QueryParams({"number": number, "expiry": "12/34", "cvc": "123"}).__str__(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
