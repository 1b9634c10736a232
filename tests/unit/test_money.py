"""Money stays integer minor units; major units only at the legacy edge."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payport.money import (
    Money,
    currency_exponent,
    major_json_number,
    minimum_charge_minor,
    normalize_currency,
)


def test_exponents_follow_iso_4217() -> None:
    assert currency_exponent("usd") == 2
    assert currency_exponent("jpy") == 0
    assert currency_exponent("kwd") == 3


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown currency"):
        normalize_currency("zzz")
    assert normalize_currency(" USD ") == "usd"


def test_minimum_charge_matches_stripe() -> None:
    assert minimum_charge_minor("usd") == 50
    assert minimum_charge_minor("gbp") == 30


def test_money_refuses_floats_and_bools() -> None:
    with pytest.raises(TypeError):
        Money(12.5, "usd")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "usd")


def test_fee_rounds_down_and_never_exceeds_amount() -> None:
    assert Money(999, "usd").fee(250).amount_minor == 24
    assert Money(100, "usd").fee(10_000).amount_minor == 100


@given(st.integers(min_value=1, max_value=99_999_999), st.sampled_from(["usd", "jpy", "kwd"]))
def test_major_units_are_exact(amount: int, currency: str) -> None:
    major = Money(amount, currency).to_major()
    assert major * (Decimal(10) ** currency_exponent(currency)) == amount
    assert Decimal(str(major_json_number(amount, currency))) == major


@given(st.integers(min_value=0, max_value=99_999_999), st.integers(min_value=0, max_value=10_000))
def test_fee_plus_share_is_the_whole(amount: int, bps: int) -> None:
    money = Money(amount, "usd")
    fee = money.fee(bps)
    assert 0 <= fee.amount_minor <= amount
    assert fee.amount_minor + (money - fee).amount_minor == amount
