"""The order port's pieces: exact price parsing, the service token, and the retry schedule."""

from __future__ import annotations

import random
from decimal import Decimal

import jwt
import pytest

from payport.checkout.auth import internal_service_token
from payport.checkout.calls import retry_delay
from payport.checkout.errors import InvalidOrder
from payport.checkout.orders import parse_order
from payport.money import Money, money_from_major


def test_prices_in_major_units_become_exact_minor_units() -> None:
    body = (
        b'{"order": {"_id": "o1", "userId": "u1", "status": "pending", "currency": "USD",'
        b' "items": [{"productId": "p1", "quantity": 3, "unitPrice": 0.1},'
        b'           {"productId": "p2", "quantity": 1, "unitPrice": 19.99}],'
        b' "totalAmount": 20.29}}'
    )
    order = parse_order(body, "o1", "usd")
    assert order.total == Money(2029, "usd")  # 3 x 0.1 is 0.30000000000000004 as floats
    assert [item.unit_price.amount_minor for item in order.items] == [10, 1999]
    assert order.status == "PENDING"
    assert order.user_id == "u1"


def test_bare_order_document_and_zero_decimal_currency() -> None:
    body = (
        b'{"orderId": "o2", "userId": 7, "status": "PENDING", "currency": "jpy",'
        b' "items": [{"productId": "p", "quantity": 2, "unitPrice": 500}]}'
    )
    order = parse_order(body, "o2", "usd")
    assert order.total == Money(1000, "jpy")
    assert order.user_id == "7"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"userId": "u", "status": "PENDING", "items": []}',
        b'{"userId": "u", "status": "PENDING", "items": [{"productId": "p", "quantity": 1,'
        b' "unitPrice": 1.005}]}',
        b'{"userId": "u", "status": "PENDING", "items": [{"productId": "p", "quantity": 0,'
        b' "unitPrice": 1}]}',
        b'{"userId": "u", "status": "PENDING", "items": [{"productId": "p", "quantity": 1,'
        b' "unitPrice": "1.00"}]}',
        b'{"status": "PENDING", "items": [{"productId": "p", "quantity": 1, "unitPrice": 1}]}',
        b'{"userId": "u", "status": "PENDING", "totalAmount": -1,'
        b' "items": [{"productId": "p", "quantity": 1, "unitPrice": 1}]}',
    ],
    ids=["json", "list", "no-items", "sub-cent", "zero-qty", "string-price", "no-user", "neg"],
)
def test_orders_payport_cannot_charge_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidOrder):
        parse_order(body, "o", "usd")


def test_money_from_major_refuses_fractions_of_a_minor_unit() -> None:
    assert money_from_major(Decimal("199.98"), "usd") == Money(19998, "usd")
    assert money_from_major(Decimal("1.234"), "kwd") == Money(1234, "kwd")
    with pytest.raises(ValueError, match="decimals"):
        money_from_major(Decimal("0.001"), "usd")
    with pytest.raises(ValueError, match="finite"):
        money_from_major(Decimal("NaN"), "usd")


def test_retry_delay_doubles_then_caps_with_jitter() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, base_s=1.0, cap_s=60.0, rng=rng) for n in range(1, 12)]
    ceilings = [min(60.0, 2.0 ** (n - 1)) for n in range(1, 12)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 60.0
    assert len({round(d, 6) for d in delays[-5:]}) == 5  # capped, yet not in lockstep


def test_service_token_is_short_lived_and_names_payport() -> None:
    token = internal_service_token("s" * 32, now_s=1_000_000)
    claims = jwt.decode(
        token,
        "s" * 32,
        algorithms=["HS256"],
        audience="internal-services",
        options={"verify_exp": False},
    )
    assert claims["iss"] == claims["sub"] == "payment-service"
    assert claims["exp"] - claims["iat"] == 60
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, "s" * 32, algorithms=["HS256"], audience="internal-services")
