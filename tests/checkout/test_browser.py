"""Seed 004 end to end, in a real browser: Playwright drives Debian's Chromium through the
sandbox's hosted checkout page, against a real `payport serve` and the shop service.

Chromium comes from `apt-get install chromium` (`.ci/run` installs it when missing);
`playwright install` cannot download browsers on these machines. Under CI=true a missing
browser fails the run; elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.server import payport_server

from tests.checkout.conftest import checkout_settings
from tests.checkout.shop import Shop

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message + " (set CI=true to make this a failure)")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per test, before any I/O
        _unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("playwright is not installed: make install")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
def payport_url(database_url: str, shop: Shop, tmp_path: Path) -> Iterator[str]:
    """`payport serve` as deployed: worker loops, sandbox webhooks, migrations at start."""
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path}/browser.db"
    env = {key: str(value) for key, value in checkout_settings(shop).items()}
    with payport_server(env | {"DATABASE_URL": database_url}) as port:
        yield f"http://127.0.0.1:{port}"


class Customer:
    """Someone using the shop and payport over HTTP, with the token the shop's login gave."""

    def __init__(self, client: httpx.AsyncClient, shop: Shop, payport_url: str) -> None:
        self._client = client
        self._shop = shop.url
        self._payport = payport_url
        self.token = ""

    async def log_in(self, email: str, password: str) -> None:
        login = await self._client.post(
            f"{self._shop}/auth/login", json={"email": email, "password": password}
        )
        assert login.status_code == 200, login.text
        self.token = f"Bearer {login.json()['token']}"

    async def place_order(self, items: list[tuple[str, int]]) -> str:
        lines = [{"productId": product, "quantity": quantity} for product, quantity in items]
        response = await self._client.post(
            f"{self._shop}/orders", json={"items": lines}, headers=self._auth
        )
        assert response.status_code == 201, response.text
        assert response.json()["order"]["status"] == "PENDING"
        order_id: str = response.json()["order"]["_id"]
        return order_id

    async def checkout_url(self, order_id: str) -> str:
        response = await self._client.post(
            f"{self._payport}/payments/create-session", json={"orderId": order_id},
            headers=self._auth,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        url: str = response.json()["checkoutUrl"]
        return url

    async def order_status(self, order_id: str) -> str:
        response = await self._client.get(f"{self._shop}/orders/{order_id}", headers=self._auth)
        assert response.status_code == 200, response.text
        return str(response.json()["order"]["status"])

    async def payment(self, order_id: str) -> dict[str, Any]:
        response = await self._client.get(
            f"{self._payport}/payments/status/{order_id}", headers=self._auth
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for_order(self, order_id: str, status: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while await self.order_status(order_id) != status:
            assert time.monotonic() < deadline, f"order {order_id} never became {status}"
            await asyncio.sleep(0.1)

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": self.token}


@pytest.fixture
async def customer(shop: Shop, payport_url: str) -> AsyncIterator[Customer]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield Customer(client, shop, payport_url)


async def _pay_in_browser(browser: Any, checkout_url: str, card: str) -> Any:
    page = await browser.new_page()
    await page.goto(checkout_url)
    await page.fill("#number", card)
    await page.fill("#expiry", "12/34")
    await page.fill("#cvc", "123")
    await page.click("#pay")
    return page


async def test_seed_004_end_to_end(browser: Any, customer: Customer, shop: Shop) -> None:
    """Login → order → create session → pay in the browser → order CONFIRMED; then the
    failure path: declined card → inventory released, order CANCELLED."""
    shop.add_user("testuser@example.com", "password123")
    shop.stock_up(prod_tea=5, prod_cake=5)
    await customer.log_in("testuser@example.com", "password123")

    order_id = await customer.place_order([("prod_tea", 2)])
    page = await _pay_in_browser(browser, await customer.checkout_url(order_id), "4242424242424242")
    await page.wait_for_url("**/payments/checkout/success**")
    assert "Payment received" in await page.content()
    await page.close()
    await customer.wait_for_order(order_id, "CONFIRMED")
    payment = await customer.payment(order_id)
    assert payment["status"] == "SUCCESS"
    assert payment["amount"] == 199.98
    assert shop.state.stock == {"prod_tea": 3, "prod_cake": 5}  # sold: stays reserved

    failing = await customer.place_order([("prod_tea", 1), ("prod_cake", 2)])
    assert shop.state.stock == {"prod_tea": 2, "prod_cake": 3}
    page = await _pay_in_browser(browser, await customer.checkout_url(failing), "4000000000000002")
    await page.wait_for_selector("#outcome")
    assert "Your card was declined." in await page.inner_text("#outcome")
    await page.close()
    await customer.wait_for_order(failing, "CANCELLED")
    assert shop.state.stock == {"prod_tea": 3, "prod_cake": 5}
    assert sorted(r["productId"] for r in shop.state.releases) == ["prod_cake", "prod_tea"]
    assert (await customer.payment(failing))["status"] == "FAILED"


async def test_three_d_secure_card_in_the_browser(
    browser: Any, customer: Customer, shop: Shop
) -> None:
    shop.add_user("tds@example.com", "pw")
    await customer.log_in("tds@example.com", "pw")
    order_id = await customer.place_order([("prod_cake", 1)])
    page = await _pay_in_browser(browser, await customer.checkout_url(order_id), "4000002760003184")
    await page.wait_for_url("**/sandbox/authenticate/**")
    await page.click("button.approve")
    await page.wait_for_url("**/payments/checkout/success**")
    await page.close()
    await customer.wait_for_order(order_id, "CONFIRMED")
