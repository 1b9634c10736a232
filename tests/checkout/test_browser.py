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
from collections.abc import AsyncIterator, Callable, Iterator
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
    if not CHROMIUM.exists():
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


async def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def _shop_order(shop: Shop, token: str, order_id: str) -> dict[str, Any]:
    response = httpx.get(f"{shop.url}/orders/{order_id}", headers={"Authorization": token})
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()["order"]
    return order


def _place_order(shop: Shop, token: str, items: list[dict[str, Any]]) -> str:
    response = httpx.post(f"{shop.url}/orders", json={"items": items},
                          headers={"Authorization": token})  # fmt: skip
    assert response.status_code == 201, response.text
    order_id: str = response.json()["order"]["_id"]
    assert response.json()["order"]["status"] == "PENDING"
    return order_id


async def _pay_in_browser(browser: Any, checkout_url: str, card: str) -> Any:
    page = await browser.new_page()
    await page.goto(checkout_url)
    await page.fill("#number", card)
    await page.fill("#expiry", "12/34")
    await page.fill("#cvc", "123")
    await page.click("#pay")
    return page


async def test_seed_004_end_to_end(browser: Any, payport_url: str, shop: Shop) -> None:
    """Login → order → create session → pay in the browser → order CONFIRMED; then the
    failure path: declined card → inventory released, order CANCELLED."""
    shop.add_user("testuser@example.com", "password123")
    shop.stock_up(prod_tea=5, prod_cake=5)
    login = httpx.post(f"{shop.url}/auth/login",
                       json={"email": "testuser@example.com", "password": "password123"})  # fmt: skip
    assert login.status_code == 200
    token = f"Bearer {login.json()['token']}"

    order_id = _place_order(shop, token, [{"productId": "prod_tea", "quantity": 2}])
    created = httpx.post(f"{payport_url}/payments/create-session", json={"orderId": order_id},
                         headers={"Authorization": token})  # fmt: skip
    assert created.status_code == 200, created.text
    page = await _pay_in_browser(browser, created.json()["checkoutUrl"], "4242 4242 4242 4242")
    await page.wait_for_url("**/payments/checkout/success**")
    assert "Payment received" in await page.content()
    await page.close()
    await _eventually(
        lambda: _shop_order(shop, token, order_id)["status"] == "CONFIRMED", "CONFIRMED"
    )
    status = httpx.get(f"{payport_url}/payments/status/{order_id}",
                       headers={"Authorization": token}).json()  # fmt: skip
    assert status["status"] == "SUCCESS"
    assert status["amount"] == 199.98
    assert shop.state.stock == {"prod_tea": 3, "prod_cake": 5}  # sold: stays reserved

    failing = _place_order(shop, token, [{"productId": "prod_tea", "quantity": 1},
                                         {"productId": "prod_cake", "quantity": 2}])  # fmt: skip
    assert shop.state.stock == {"prod_tea": 2, "prod_cake": 3}
    created = httpx.post(f"{payport_url}/payments/create-session", json={"orderId": failing},
                         headers={"Authorization": token})  # fmt: skip
    page = await _pay_in_browser(browser, created.json()["checkoutUrl"], "4000 0000 0000 0002")
    await page.wait_for_selector("#outcome")
    assert "Your card was declined." in await page.inner_text("#outcome")
    await page.close()
    await _eventually(
        lambda: _shop_order(shop, token, failing)["status"] == "CANCELLED", "CANCELLED"
    )
    assert shop.state.stock == {"prod_tea": 3, "prod_cake": 5}
    assert sorted(r["productId"] for r in shop.state.releases) == ["prod_cake", "prod_tea"]
    failed = httpx.get(f"{payport_url}/payments/status/{failing}",
                       headers={"Authorization": token}).json()  # fmt: skip
    assert failed["status"] == "FAILED"


async def test_three_d_secure_card_in_the_browser(
    browser: Any, payport_url: str, shop: Shop
) -> None:
    shop.add_user("tds@example.com", "pw")
    token = "Bearer " + httpx.post(f"{shop.url}/auth/login",
                                   json={"email": "tds@example.com", "password": "pw"}
                                   ).json()["token"]  # fmt: skip
    order_id = _place_order(shop, token, [{"productId": "prod_cake", "quantity": 1}])
    created = httpx.post(f"{payport_url}/payments/create-session", json={"orderId": order_id},
                         headers={"Authorization": token})  # fmt: skip
    page = await _pay_in_browser(browser, created.json()["checkoutUrl"], "4000 0027 6000 3184")
    await page.wait_for_url("**/sandbox/authenticate/**")
    await page.click("button.approve")
    await page.wait_for_url("**/payments/checkout/success**")
    await page.close()
    await _eventually(
        lambda: _shop_order(shop, token, order_id)["status"] == "CONFIRMED", "CONFIRMED"
    )
