"""A small shop for the checkout tests: auth, order and inventory services in one real HTTP
app, speaking exactly the endpoints payport calls (README: the order port).

It checks payport's internal authentication the way seed 004's order service does (the
`X-Internal-Service` header) and more: the Bearer token must be signed with the internal
secret, name payment-service and be short-lived. `stop()` and `start()` take it down and
bring it back on the same port, so a test can watch payport retry.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jwt
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from tests.checkout.servers import ThreadedApp

USER_SECRET = "shop-user-token-secret-for-tests-only"
INTERNAL_SECRET = "shop-internal-secret-for-tests-only"
PRODUCTS = {
    "prod_tea": ("Bubble tea", Decimal("99.99")),
    "prod_cake": ("Cheesecake", Decimal("12.50")),
    "prod_gum": ("Chewing gum", Decimal("0.10")),
}


@dataclass
class ShopState:
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # email -> (password, id)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)
    status_updates: list[dict[str, Any]] = field(default_factory=list)
    releases: list[dict[str, Any]] = field(default_factory=list)
    internal_calls: list[dict[str, str]] = field(default_factory=list)
    refused_calls: int = 0
    seen_keys: set[str] = field(default_factory=set)


def user_token(user_id: str, *, secret: str = USER_SECRET, ttl_s: int = 3600, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": user_id, "iat": now, "exp": now + ttl_s} | claims
    return jwt.encode(body, secret, algorithm="HS256")


def build_shop(state: ShopState) -> FastAPI:
    app = FastAPI()

    def internal_caller_ok(service: str | None, authorization: str | None) -> bool:
        if service != "payment-service" or not authorization or " " not in authorization:
            return False
        try:
            claims = jwt.decode(
                authorization.split(" ", 1)[1],
                INTERNAL_SECRET,
                algorithms=["HS256"],
                audience="internal-services",
                issuer="payment-service",
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.InvalidTokenError:
            return False
        return bool(claims["exp"] - claims["iat"] <= 300)

    def refuse() -> JSONResponse:
        state.refused_calls += 1
        return JSONResponse({"error": "Forbidden"}, status_code=403)

    def user_of(authorization: str | None) -> str | None:
        try:
            token = (authorization or "").split(" ", 1)[1]
            return str(jwt.decode(token, USER_SECRET, algorithms=["HS256"])["sub"])
        except (IndexError, jwt.InvalidTokenError):
            return None

    @app.post("/auth/login")
    async def login(request: Request) -> JSONResponse:
        body = await request.json()
        known = state.users.get(body.get("email", ""))
        if known is None or known[0] != body.get("password"):
            return JSONResponse({"error": "Invalid credentials"}, status_code=401)
        return JSONResponse({"token": user_token(known[1], email=body["email"])})

    @app.post("/orders")
    async def create_order(
        request: Request, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        user_id = user_of(authorization)
        if user_id is None:
            return JSONResponse({"error": "User not authenticated"}, status_code=401)
        body = await request.json()
        items = []
        for line in body["items"]:
            name, price = PRODUCTS[line["productId"]]
            state.stock[line["productId"]] = (
                state.stock.get(line["productId"], 100) - line["quantity"]
            )
            items.append({"productId": line["productId"], "name": name,
                          "quantity": line["quantity"], "unitPrice": price})  # fmt: skip
        order_id = uuid.uuid4().hex[:24]
        state.orders[order_id] = {
            "_id": order_id, "userId": user_id, "status": "PENDING", "currency": "usd",
            "items": items, "totalAmount": sum(i["unitPrice"] * i["quantity"] for i in items),
        }  # fmt: skip
        return JSONResponse({"order": _public(state.orders[order_id])}, status_code=201)

    @app.get("/orders/{order_id}")
    async def read_order(order_id: str, authorization: str | None = Header(default=None)) -> Any:
        order = state.orders.get(order_id)
        if order is None or order["userId"] != user_of(authorization):
            return JSONResponse({"error": "Order not found"}, status_code=404)
        return {"order": _public(order)}

    @app.get("/internal/orders/{order_id}")
    async def internal_order(
        order_id: str,
        x_internal_service: str | None = Header(default=None),
        authorization: str | None = Header(default=None),
    ) -> Any:
        if not internal_caller_ok(x_internal_service, authorization):
            return refuse()
        order = state.orders.get(order_id)
        if order is None:
            return JSONResponse({"error": "Order not found"}, status_code=404)
        public = _public(order)
        return {"orderId": order_id, **{k: v for k, v in public.items() if k != "_id"}}

    @app.patch("/internal/orders/{order_id}/status")
    async def update_status(
        order_id: str,
        request: Request,
        x_internal_service: str | None = Header(default=None),
        authorization: str | None = Header(default=None),
        idempotency_key: str | None = Header(default=None),
    ) -> Any:
        if not internal_caller_ok(x_internal_service, authorization):
            return refuse()
        order = state.orders.get(order_id)
        if order is None:
            return JSONResponse({"error": "Order not found"}, status_code=404)
        body = await request.json()
        state.internal_calls.append({"path": request.url.path, "key": idempotency_key or ""})
        if idempotency_key not in state.seen_keys:
            state.seen_keys.add(idempotency_key or "")
            state.status_updates.append({"orderId": order_id, **body})
            order["status"] = body["status"]
        return {"order": _public(order)}

    @app.post("/internal/inventory/release")
    async def release(
        request: Request,
        x_internal_service: str | None = Header(default=None),
        authorization: str | None = Header(default=None),
        idempotency_key: str | None = Header(default=None),
    ) -> Any:
        if not internal_caller_ok(x_internal_service, authorization):
            return refuse()
        body = await request.json()
        state.internal_calls.append({"path": request.url.path, "key": idempotency_key or ""})
        if idempotency_key not in state.seen_keys:
            state.seen_keys.add(idempotency_key or "")
            state.releases.append(body)
            state.stock[body["productId"]] += body["quantity"]
        return {"released": True}

    return app


def _public(order: dict[str, Any]) -> dict[str, Any]:
    """Prices as JSON numbers (what the shop stores), e.g. 99.99; Decimal keeps the text exact."""
    return order | {
        "items": [item | {"unitPrice": float(item["unitPrice"])} for item in order["items"]],
        "totalAmount": float(order["totalAmount"]),
    }


class Shop(ThreadedApp):
    """The shop app, served for real on a port of its own."""

    def __init__(self) -> None:
        self.state = ShopState()
        super().__init__(build_shop(self.state))

    def add_user(self, email: str, password: str) -> str:
        user_id = "user_" + uuid.uuid4().hex[:12]
        self.state.users[email] = (password, user_id)
        return user_id

    def stock_up(self, **counts: int) -> None:
        self.state.stock.update(counts)

    def add_order(
        self, user_id: str, items: list[tuple[str, int]], *, status: str = "PENDING"
    ) -> str:
        """An order placed directly (the tests that are not about the shop's own API)."""
        lines = []
        for product_id, quantity in items:
            name, price = PRODUCTS[product_id]
            self.state.stock[product_id] = self.state.stock.get(product_id, 100) - quantity
            lines.append({"productId": product_id, "name": name, "quantity": quantity,
                          "unitPrice": price})  # fmt: skip
        order_id = uuid.uuid4().hex[:24]
        self.state.orders[order_id] = {
            "_id": order_id, "userId": user_id, "status": status, "currency": "usd",
            "items": lines, "totalAmount": sum(i["unitPrice"] * i["quantity"] for i in lines),
        }  # fmt: skip
        return order_id

    def order_status(self, order_id: str) -> str:
        return str(self.state.orders[order_id]["status"])


@contextmanager
def running_shop() -> Iterator[Shop]:
    shop = Shop()
    shop.start()
    try:
        yield shop
    finally:
        shop.stop()


def main() -> None:
    """A demo shop for the README's checkout walkthrough: orders and inventory on one port
    (SHOP_PORT, default 7000)."""
    import os

    import uvicorn

    state = ShopState()
    state.users["testuser@example.com"] = ("password123", "user_test")
    port = int(os.environ.get("SHOP_PORT", "7000"))
    uvicorn.run(build_shop(state), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
