"""Seed 004's error table, row by row, plus the JWT cases and who may see what."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payport.webhooks.signature import signature_header
from tests.checkout.conftest import checkout_settings, create_session, pay
from tests.checkout.shop import Shop, user_token
from tests.harness import Harness

pytestmark = pytest.mark.usefixtures("shop")


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["error"] == body["detail"]
    return body


async def _post(harness: Harness, token: str | None, content: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await harness.client.post("/payments/create-session", content=content, headers=headers)


@pytest.mark.parametrize(
    "content", [b"", b"{}", b'{"orderId": ""}', b'{"orderId": null}', b"not json", b"[1]"]
)
async def test_missing_order_id_is_400(payport: Harness, content: bytes) -> None:
    response = await _post(payport, user_token("user_x"), content)
    assert response.status_code == 400
    body = _error(response)
    assert body["error"] == "orderId is required"
    assert body["field"] == "orderId"


async def test_order_id_that_is_not_a_string_is_400(payport: Harness) -> None:
    response = await _post(payport, user_token("user_x"), b'{"orderId": 42}')
    assert response.status_code == 400
    assert _error(response)["field"] == "orderId"


def _expired() -> str:
    return user_token("user_x", ttl_s=-60)


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "User not authenticated"),
        ("Basic dXNlcjpwdw==", "User not authenticated"),
        ("Bearer", "User not authenticated"),
        ("Bearer not-a-jwt", "Invalid token"),
        (
            f"Bearer {user_token('user_x', secret='another-secret-that-is-long-enough-for-hs256')}",
            "Invalid token",
        ),
        (f"Bearer {_expired()}", "Token expired"),
        (
            "Bearer " + jwt.encode({"exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256"),
            "Invalid token",
        ),
        ("Bearer " + jwt.encode({"sub": "user_x"}, "x" * 40, algorithm="HS256"), "Invalid token"),
    ],
    ids=["missing", "basic", "empty", "malformed", "wrong-key", "expired", "no-sub", "no-exp"],
)
async def test_bad_tokens_are_401(
    payport: Harness, authorization: str | None, message: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for response in (
        await payport.client.post(
            "/payments/create-session", json={"orderId": "o1"}, headers=headers
        ),
        await payport.client.get("/payments/status/o1", headers=headers),
    ):
        assert response.status_code == 401
        assert _error(response)["error"] == message


async def test_unknown_order_is_404(payport: Harness) -> None:
    response = await create_session(payport, user_token("user_x"), "no-such-order")
    assert response.status_code == 404
    assert _error(response)["error"] == "Order not found"


async def test_order_that_is_not_pending_is_400(payport: Harness, shop: Shop) -> None:
    user = shop.add_user("a@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 1)], status="CONFIRMED")
    response = await create_session(payport, user_token(user), order_id)
    assert response.status_code == 400
    assert _error(response)["error"] == "Cannot create payment for order with status: CONFIRMED"


async def test_paid_order_is_refused_as_already_completed(payport: Harness, shop: Shop) -> None:
    user = shop.add_user("b@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 1)])
    token = user_token(user)
    session_id = (await create_session(payport, token, order_id)).json()["sessionId"]
    await pay(payport, session_id, "4242424242424242")
    await payport.drain()
    assert shop.order_status(order_id) == "CONFIRMED"

    response = await create_session(payport, token, order_id)
    assert response.status_code == 400
    assert _error(response)["error"] == "Payment already completed"


async def test_provider_error_is_500_without_its_message(payport: Harness, shop: Shop) -> None:
    user = shop.add_user("c@example.com", "pw")
    order_id = shop.add_order(user, [("prod_gum", 1)])  # 0.10 usd: under Stripe's minimum
    response = await create_session(payport, user_token(user), order_id)
    assert response.status_code == 500
    assert _error(response)["error"] == "Failed to create payment session"
    assert "Amount must be at least" not in response.text
    assert "amount_too_small" not in response.text


@pytest.mark.parametrize(
    "signature",
    [None, "t=1,v1=00", "garbage", "t={now},v1=" + "0" * 64, "t={stale},v1={valid_stale}"],
    ids=["missing", "ancient", "garbage", "wrong", "stale"],
)
async def test_bad_webhook_signature_is_400(payport: Harness, signature: str | None) -> None:
    body = b'{"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {}}}'
    headers = {}
    if signature is not None:
        secret = (await payport.runtime.webhook_secrets())[0]
        stale = int(time.time()) - 3600
        valid_stale = signature_header(secret, body, timestamp=stale).split("v1=")[1]
        headers["Stripe-Signature"] = signature.format(
            now=int(time.time()), stale=stale, valid_stale=valid_stale
        )
    response = await payport.client.post("/payments/webhook", content=body, headers=headers)
    assert response.status_code == 400
    assert _error(response)["error"] == "Invalid signature"


async def test_other_users_order_and_payment_are_403(payport: Harness, shop: Shop) -> None:
    owner = shop.add_user("d@example.com", "pw")
    order_id = shop.add_order(owner, [("prod_tea", 1)])
    assert (await create_session(payport, user_token(owner), order_id)).status_code == 200
    intruder = user_token("user_intruder")

    created = await create_session(payport, intruder, order_id)
    status = await payport.client.get(
        f"/payments/status/{order_id}", headers={"Authorization": f"Bearer {intruder}"}
    )
    assert created.status_code == status.status_code == 403
    mine = await payport.client.get(
        f"/payments/status/{order_id}", headers={"Authorization": f"Bearer {user_token(owner)}"}
    )
    assert mine.status_code == 200
    assert mine.json()["status"] == "INITIATED"
    assert set(mine.json()) == {"orderId", "status", "amount", "currency", "createdAt"}
    assert mine.json()["createdAt"].endswith("Z")


async def test_status_of_an_order_without_payment_is_404(payport: Harness) -> None:
    response = await payport.client.get(
        "/payments/status/none", headers={"Authorization": f"Bearer {user_token('user_x')}"}
    )
    assert response.status_code == 404
    assert _error(response)["error"] == "Payment not found"


async def test_rs256_tokens_with_the_public_key(database_url: str, shop: Shop) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    user = shop.add_user("e@example.com", "pw")
    order_id = shop.add_order(user, [("prod_tea", 1)])
    claims = {"sub": user, "exp": int(time.time()) + 300}
    good = jwt.encode(claims, private, algorithm="RS256")
    # An HS256 token "signed" with the public key must not pass (algorithm confusion).
    forged = _hs256_with_key(claims, public_pem.encode())
    settings = checkout_settings(shop, JWT_PUBLIC_KEY=public_pem)
    async with Harness.started(database_url, **settings) as harness:
        assert (await create_session(harness, good, order_id)).status_code == 200
        refused = await create_session(harness, forged, order_id)
        assert refused.status_code == 401
        assert (await create_session(harness, user_token(user), order_id)).status_code == 401


def _hs256_with_key(claims: dict[str, Any], key: bytes) -> str:
    """HS256 by hand: PyJWT itself refuses to use a PEM key as an HMAC secret."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)
