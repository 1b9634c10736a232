"""The order port: reading an order from the shop's order service over HTTP.

Prices arrive in major units (as seed 004's shops store them) and are read exactly: the
JSON is parsed with Decimal, never through a float.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from payport.checkout.auth import internal_headers
from payport.checkout.errors import InvalidOrder, OrderNotFound, OrderServiceUnavailable
from payport.config import Settings
from payport.money import Money, money_from_major, normalize_currency

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OrderItem:
    product_id: str
    name: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    user_id: str
    status: str
    total: Money
    items: tuple[OrderItem, ...]


def order_url(settings: Settings, path: str, order_id: str) -> str:
    """A configured path (with `{orderId}`) under ORDER_SERVICE_URL; the id is URL-quoted."""
    return settings.order_service_url.rstrip("/") + path.replace(
        "{orderId}", quote(order_id, safe="")
    )


class OrderServiceClient:
    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client

    async def fetch(self, order_id: str) -> Order:
        url = order_url(self._settings, self._settings.order_path, order_id)
        try:
            response = await self._client.get(url, headers=internal_headers(self._settings))
        except httpx.HTTPError as exc:
            log.warning("order service unreachable order_id=%s error=%s", order_id, type(exc))
            raise OrderServiceUnavailable() from None
        if response.status_code == 404:
            raise OrderNotFound()
        if not response.is_success:
            log.warning(
                "order service answered order_id=%s status=%d", order_id, response.status_code
            )
            raise OrderServiceUnavailable()
        return parse_order(response.content, order_id, self._settings.default_currency)


def parse_order(body: bytes, order_id: str, default_currency: str) -> Order:
    """The order document, bare or wrapped as `{"order": {...}}`."""
    try:
        document = json.loads(body, parse_float=Decimal)
    except ValueError:
        raise InvalidOrder("order service answered with invalid JSON") from None
    if isinstance(document, dict) and isinstance(document.get("order"), dict):
        document = document["order"]
    if not isinstance(document, dict):
        raise InvalidOrder("order service answered with something that is not an order")
    try:
        currency = normalize_currency(str(document.get("currency") or default_currency))
        items = tuple(_item(raw, currency) for raw in _list(document.get("items")))
        total_raw = document.get("totalAmount")
        total = (
            _money(total_raw, currency, "totalAmount")
            if total_raw is not None
            else Money(sum(i.unit_price.amount_minor * i.quantity for i in items), currency)
        )
        return Order(
            order_id=order_id,  # what payport asked for, whatever id field the shop uses
            user_id=_text(document.get("userId"), "userId"),
            status=_text(document.get("status"), "status").upper(),
            total=total,
            items=items,
        )
    except ValueError as exc:
        raise InvalidOrder(f"order service sent an invalid order: {exc}") from None


def _item(raw: Any, currency: str) -> OrderItem:
    if not isinstance(raw, dict):
        raise ValueError("items[] must be objects")
    quantity = raw.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValueError("items[].quantity must be a positive integer")
    product_id = _text(raw.get("productId"), "items[].productId")
    name = raw.get("name")
    return OrderItem(
        product_id=product_id,
        name=name if isinstance(name, str) and name else product_id,
        quantity=quantity,
        unit_price=_money(raw.get("unitPrice"), currency, "items[].unitPrice"),
    )


def _money(value: Any, currency: str, name: str) -> Money:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError(f"{name} must be a number")
    money = money_from_major(Decimal(value), currency)
    if money.amount_minor < 0:
        raise ValueError(f"{name} must not be negative")
    return money


def _text(value: Any, name: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError("items must be a non-empty list")
    return value
