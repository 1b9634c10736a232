"""Command payloads (both authorize shapes) and API bodies, validated into plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from payport.errors import InvalidAmount, InvalidPayload
from payport.money import MAX_AMOUNT_MINOR, Money, minimum_charge_minor, normalize_currency


@dataclass(frozen=True, slots=True)
class AuthorizeCommand:
    order_id: str
    amount: Money
    payment_method_id: str
    customer_user_id: str | None
    provider_customer_id: str | None
    description: str | None
    return_url: str | None


@dataclass(frozen=True, slots=True)
class ReleaseCommand:
    payment_id: str
    runner_id: str
    runner_account_id: str


@dataclass(frozen=True, slots=True)
class RevertCommand:
    payment_id: str
    reason: str | None


def _text(value: object, field: str, *, required: bool = True, max_len: int = 255) -> str | None:
    """A non-empty string (integers are accepted and turned into text, as ids often are)."""
    if value is None or value == "":
        if required:
            raise InvalidPayload(f"`{field}` is required", field=field)
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidPayload(f"`{field}` must be a string", field=field)
    if len(value) > max_len:
        raise InvalidPayload(f"`{field}` is longer than {max_len} characters", field=field)
    return value


def _required(value: object, field: str, *, max_len: int = 255) -> str:
    text = _text(value, field, max_len=max_len)
    assert text is not None
    return text


def parse_amount(value: object, currency: str, *, field: str = "amount") -> Money:
    """An integer number of minor units within Stripe's bounds for the currency."""
    if value is None:
        raise InvalidAmount(f"`{field}` is required (integer, minor units)", field=field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(
            f"`{field}` must be an integer number of minor units (cents), got {value!r}",
            field=field,
        )
    if value <= 0:
        raise InvalidAmount(f"`{field}` must be positive", field=field)
    if value > MAX_AMOUNT_MINOR:
        raise InvalidAmount(f"`{field}` must be at most {MAX_AMOUNT_MINOR}", field=field)
    minimum = minimum_charge_minor(currency)
    if value < minimum:
        raise InvalidAmount(
            f"`{field}` must be at least {minimum} {currency} minor units", field=field
        )
    return Money(value, currency)


def parse_currency(value: object, default: str, *, field: str = "currency") -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise InvalidPayload(f"`{field}` must be an ISO 4217 code", field=field)
    try:
        return normalize_currency(value)
    except ValueError:
        raise InvalidPayload(f"unknown currency {value!r}", field=field) from None


def _as_dict(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidPayload(f"`{field}` must be an object", field=field)
    return value


def parse_authorize(payload: dict[str, Any], default_currency: str) -> AuthorizeCommand:
    """Accept seed 002's flat shape and the nested shape orchestrators send."""
    if "customer" in payload or "order" in payload:
        return _parse_nested_authorize(payload, default_currency)
    return _parse_flat_authorize(payload, default_currency)


def _parse_flat_authorize(payload: dict[str, Any], default_currency: str) -> AuthorizeCommand:
    order_id = _required(payload.get("order_id"), "order_id")
    currency = parse_currency(payload.get("currency"), default_currency)
    amount = parse_amount(payload.get("amount"), currency)
    customer_id = _text(payload.get("customer_id"), "customer_id", required=False)
    is_provider_customer = bool(customer_id and customer_id.startswith("cus_"))
    return AuthorizeCommand(
        order_id=order_id,
        amount=amount,
        payment_method_id=_required(payload.get("payment_method_id"), "payment_method_id"),
        customer_user_id=customer_id,
        provider_customer_id=customer_id if is_provider_customer else None,
        description=_text(payload.get("description"), "description", required=False, max_len=1000),
        return_url=_text(payload.get("return_url"), "return_url", required=False, max_len=2000),
    )


def _parse_nested_authorize(payload: dict[str, Any], default_currency: str) -> AuthorizeCommand:
    order_id = _required(payload.get("order_id"), "order_id")
    customer = _as_dict(payload.get("customer"), "customer")
    order = _as_dict(payload.get("order"), "order")
    card = _as_dict(customer.get("userStripeCard"), "customer.userStripeCard")
    currency = parse_currency(
        order.get("currency", payload.get("currency")), default_currency, field="order.currency"
    )
    return AuthorizeCommand(
        order_id=order_id,
        amount=parse_amount(
            order.get("amount", payload.get("amount")), currency, field="order.amount"
        ),
        payment_method_id=_required(
            card.get("payment_method_id", payload.get("payment_method_id")),
            "customer.userStripeCard.payment_method_id",
        ),
        customer_user_id=_text(customer.get("clerkUserId"), "customer.clerkUserId", required=False),
        provider_customer_id=_text(
            customer.get("stripeCustomerId"), "customer.stripeCustomerId", required=False
        ),
        description=_text(
            order.get("description"), "order.description", required=False, max_len=1000
        ),
        return_url=_text(payload.get("return_url"), "return_url", required=False, max_len=2000),
    )


def parse_release(payload: dict[str, Any]) -> ReleaseCommand:
    account = _required(payload.get("runner_connect_account_id"), "runner_connect_account_id")
    if not account.startswith("acct_"):
        raise InvalidPayload(
            "`runner_connect_account_id` must be a connected account id (acct_…)",
            field="runner_connect_account_id",
        )
    return ReleaseCommand(
        payment_id=_required(payload.get("payment_id"), "payment_id"),
        runner_id=_required(payload.get("runner_id"), "runner_id"),
        runner_account_id=account,
    )


def parse_revert(payload: dict[str, Any]) -> RevertCommand:
    return RevertCommand(
        payment_id=_required(payload.get("payment_id"), "payment_id"),
        reason=_text(payload.get("reason"), "reason", required=False, max_len=500),
    )


@dataclass(frozen=True, slots=True)
class CaptureCommand:
    payment_id: str
    amount_minor: int | None


def parse_capture(payload: dict[str, Any]) -> CaptureCommand:
    amount = payload.get("amount_to_capture")
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0
    ):
        raise InvalidAmount(
            "`amount_to_capture` must be a positive integer (minor units)",
            field="amount_to_capture",
        )
    return CaptureCommand(
        payment_id=_required(payload.get("payment_id"), "payment_id"), amount_minor=amount
    )


class CaptureBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_to_capture: int | None = Field(
        default=None, description="Minor units; default the whole authorized amount.", strict=True
    )


class CreatePaymentBody(BaseModel):
    """`POST /api/v1/payments`: authorize (hold) a payment directly, without a command."""

    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=255)
    amount: int = Field(description="Integer minor units (cents).", strict=True)
    currency: str | None = Field(default=None, description="ISO 4217; default DEFAULT_CURRENCY.")
    payment_method: str = Field(min_length=1, max_length=255)
    customer: str | None = Field(default=None, description="Provider customer id (cus_…).")
    customer_user_id: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    return_url: str | None = Field(default=None, max_length=2000)


class ReleaseBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    runner_id: str | None = None
    runner_connect_account_id: str | None = None


class RevertBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: str | None = None
