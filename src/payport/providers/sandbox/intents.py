"""PaymentIntents and PaymentMethods: create-and-confirm, 3-D Secure, capture and cancel.

Every function here runs inside one request transaction (a RequestContext) and records the
webhook events of the change it makes. Parameter checks (`check_…`) run before any transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payport.money import MAX_AMOUNT_MINOR, minimum_charge_minor, normalize_currency
from payport.providers.base import (
    CANCELLATION_REASONS,
    PI_CANCELED,
    PI_REQUIRES_ACTION,
    PI_REQUIRES_CAPTURE,
    PI_REQUIRES_CONFIRMATION,
    PI_REQUIRES_PAYMENT_METHOD,
    PI_SUCCEEDED,
    AuthorizeRequest,
    ProviderCardError,
    ProviderInvalidRequest,
)
from payport.providers.sandbox.cards import (
    AUTHENTICATION_FAILED_MESSAGE,
    AUTHENTICATION_REQUIRED_DECLINE,
    DEFAULT_CARD_NUMBER,
    OUTCOMES,
    TEST_PAYMENT_METHODS,
    CardOutcome,
    Decline,
    brand_for_number,
    luhn_valid,
    normalize_card_number,
    outcome_for_number,
)
from payport.providers.sandbox.objects import (
    JSON,
    format_amount,
    new_id,
    resource_missing,
    unexpected_state,
    unix,
)
from payport.providers.sandbox.store import RequestContext
from payport.providers.views import intent_view

CANCELABLE_STATUSES = frozenset(
    {PI_REQUIRES_PAYMENT_METHOD, PI_REQUIRES_CAPTURE, PI_REQUIRES_CONFIRMATION, PI_REQUIRES_ACTION}
)
# Card-not-present authorizations expire after 7 days (Stripe's default window).
_AUTHORIZATION_WINDOW_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Card:
    """A card as the sandbox remembers it: what charging it does and what a charge shows."""

    outcome: CardOutcome
    brand: str
    last4: str
    exp_month: int
    exp_year: int

    def details(self) -> JSON:
        return {
            "brand": self.brand, "last4": self.last4, "exp_month": self.exp_month,
            "exp_year": self.exp_year, "funding": "credit", "country": "US",
        }  # fmt: skip


def card_from_number(digits: str, *, exp_month: int, exp_year: int) -> Card:
    return Card(
        outcome_for_number(digits), brand_for_number(digits), digits[-4:], exp_month, exp_year
    )


def check_card_number(value: str) -> str:
    """The digits of a card number, or Stripe's 402 `incorrect_number`."""
    digits = normalize_card_number(value)
    if digits is None or not luhn_valid(digits):
        raise ProviderCardError(
            "Your card number is incorrect.", code="incorrect_number", param="number"
        )
    return digits


def check_expiry(exp_month: int, exp_year: int, *, now: datetime) -> None:
    if not 1 <= exp_month <= 12:
        raise ProviderCardError(
            "Your card's expiration month is invalid.",
            code="invalid_expiry_month", param="exp_month",
        )  # fmt: skip
    if (exp_year, exp_month) < (now.year, now.month) or exp_year > now.year + 50:
        raise ProviderCardError(
            "Your card's expiration year is invalid.",
            code="invalid_expiry_year", param="exp_year",
        )  # fmt: skip


def check_cvc(cvc: str) -> None:
    if not (cvc.isascii() and cvc.isdigit() and len(cvc) in (3, 4)):
        raise ProviderCardError(
            "Your card's security code is invalid.", code="invalid_cvc", param="cvc"
        )


def check_amount(amount_minor: int, currency: str) -> str:
    """The normalized currency, after Stripe's minimum and eight-digit maximum checks."""
    try:
        currency = normalize_currency(currency)
    except ValueError:
        raise ProviderInvalidRequest(f"Invalid currency: {currency}.", param="currency") from None
    minimum = minimum_charge_minor(currency)
    if amount_minor < minimum:
        raise ProviderInvalidRequest(
            f"Amount must be at least {format_amount(minimum, currency)} {currency}",
            code="amount_too_small", param="amount",
        )  # fmt: skip
    if amount_minor > MAX_AMOUNT_MINOR:
        raise ProviderInvalidRequest(
            f"Amount must be no more than {format_amount(MAX_AMOUNT_MINOR, currency)} {currency}",
            code="amount_too_large", param="amount",
        )  # fmt: skip
    return currency


def check_payment_method(value: str, *, now: datetime) -> str | Card:
    """A `pm_…` id as given, or the Card behind a raw test card number (a convenience)."""
    if value.startswith("pm_"):
        return value
    if normalize_card_number(value) is None:
        raise ProviderInvalidRequest(
            "No such PaymentMethod; pass a pm_… id or a test card number.",
            code="resource_missing", param="payment_method",
        )  # fmt: skip
    digits = check_card_number(value)
    return card_from_number(digits, exp_month=12, exp_year=now.year + 3)


def check_positive(amount_minor: int | None, param: str) -> None:
    if amount_minor is not None and amount_minor < 1:
        raise ProviderInvalidRequest(
            "Invalid positive integer", code="parameter_invalid_integer", param=param
        )


def check_cancellation_reason(reason: str) -> None:
    if reason not in CANCELLATION_REASONS:
        raise ProviderInvalidRequest(
            "Invalid cancellation_reason: must be one of "
            + ", ".join(sorted(CANCELLATION_REASONS)),
            param="cancellation_reason",
        )  # fmt: skip


async def create_payment_method(ctx: RequestContext, card: Card) -> JSON:
    pm: JSON = {
        "id": new_id("pm_"), "object": "payment_method", "type": "card", "card": card.details(),
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "created": unix(ctx.now), "customer": None, "livemode": False, "metadata": {},
        # Sandbox-only: how charges on this card end (the number itself is never stored).
        "sandbox_outcome": card.outcome.name,
    }  # fmt: skip
    await ctx.store.add(pm, now=ctx.now)
    return pm


async def load_card(ctx: RequestContext, pm_id: str) -> Card:
    """The card behind a pm_ id: a Stripe test PM, one created here, or (unknown) a visa."""
    if pm_id in TEST_PAYMENT_METHODS:  # fixed behaviour: no lookup needed
        return card_from_number(
            TEST_PAYMENT_METHODS[pm_id], exp_month=12, exp_year=ctx.now.year + 3
        )
    pm = await ctx.store.get(pm_id, "payment_method")
    if pm is not None:
        card = pm["card"]
        return Card(
            OUTCOMES[pm["sandbox_outcome"]], card["brand"], card["last4"], card["exp_month"],
            card["exp_year"],
        )  # fmt: skip
    digits = TEST_PAYMENT_METHODS.get(pm_id, DEFAULT_CARD_NUMBER)
    return card_from_number(digits, exp_month=12, exp_year=ctx.now.year + 3)


async def create_payment_intent(
    ctx: RequestContext, request: AuthorizeRequest, currency: str, method: str | Card
) -> JSON:
    """Create and confirm; a decline is stored on the intent, then raised as a card error."""
    if isinstance(method, Card):
        pm_id, card = (await create_payment_method(ctx, method))["id"], method
    else:
        pm_id, card = method, await load_card(ctx, method)
    pi = _new_intent(ctx, request, currency, pm_id)
    await _confirm(ctx, pi, card, off_session=request.off_session, return_url=request.return_url)
    await ctx.store.add(pi, now=ctx.now)
    error = pi["last_payment_error"]
    if error is not None:
        raise ProviderCardError(
            error["message"], code=error["code"], decline_code=error["decline_code"],
            payment_intent=intent_view(pi),
        )  # fmt: skip
    return pi


def _new_intent(ctx: RequestContext, request: AuthorizeRequest, currency: str, pm_id: str) -> JSON:
    pi_id = new_id("pi_")
    return {
        "id": pi_id, "object": "payment_intent", "amount": request.amount.amount_minor,
        "amount_capturable": 0, "amount_received": 0, "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "manual" if request.capture_manually else "automatic",
        "client_secret": f"{pi_id}_secret_{new_id('')}", "confirmation_method": "automatic",
        "created": unix(ctx.now), "currency": currency, "customer": request.customer,
        "description": request.description, "last_payment_error": None, "latest_charge": None,
        "livemode": False, "metadata": dict(request.metadata), "next_action": None,
        "payment_method": pm_id, "payment_method_types": ["card"],
        "status": PI_REQUIRES_CONFIRMATION,
    }  # fmt: skip


async def _confirm(
    ctx: RequestContext, pi: JSON, card: Card, *, off_session: bool, return_url: str | None
) -> None:
    if card.outcome.requires_authentication and off_session:
        await _fail(ctx, pi, _card_error(AUTHENTICATION_REQUIRED_DECLINE))
    elif card.outcome.requires_authentication:
        url = f"{ctx.base_url}/sandbox/authenticate/{pi['id']}"
        pi["status"] = PI_REQUIRES_ACTION
        pi["next_action"] = {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": url, "return_url": return_url},
        }
        await ctx.emit("payment_intent.requires_action", pi)
    elif card.outcome.decline is not None:
        await _fail(ctx, pi, _card_error(card.outcome.decline))
    else:
        await _charge(ctx, pi, card)


def _card_error(decline: Decline) -> JSON:
    return {
        "type": "card_error", "code": decline.code, "decline_code": decline.decline_code,
        "message": decline.message, "param": None,
    }  # fmt: skip


async def _fail(ctx: RequestContext, pi: JSON, error: JSON) -> None:
    """Back to requires_payment_method; like Stripe, the failed PM moves into the error."""
    error["payment_method"] = {"id": pi["payment_method"], "object": "payment_method"}
    pi.update(
        status=PI_REQUIRES_PAYMENT_METHOD, last_payment_error=error, next_action=None,
        payment_method=None,
    )  # fmt: skip
    await ctx.emit("payment_intent.payment_failed", pi)


async def _charge(ctx: RequestContext, pi: JSON, card: Card) -> None:
    """The card was authorized: hold the money (manual capture) or take it now."""
    manual = pi["capture_method"] == "manual"
    charge = _new_charge(ctx, pi, card, captured=not manual)
    pi.update(latest_charge=charge["id"], last_payment_error=None, next_action=None)
    if manual:
        pi.update(status=PI_REQUIRES_CAPTURE, amount_capturable=pi["amount"])
    else:
        pi.update(status=PI_SUCCEEDED, amount_received=pi["amount"])
    await ctx.store.add(charge, now=ctx.now)
    event = "payment_intent.amount_capturable_updated" if manual else "payment_intent.succeeded"
    await ctx.emit(event, pi)


def _new_charge(ctx: RequestContext, pi: JSON, card: Card, *, captured: bool) -> JSON:
    details: dict[str, Any] = card.details()
    if not captured:
        details["capture_before"] = unix(ctx.now) + _AUTHORIZATION_WINDOW_S
    return {
        "id": new_id("ch_"), "object": "charge", "amount": pi["amount"],
        "amount_captured": pi["amount"] if captured else 0, "amount_refunded": 0,
        "balance_transaction": new_id("txn_") if captured else None, "captured": captured,
        "created": unix(ctx.now), "currency": pi["currency"], "customer": pi["customer"],
        "description": pi["description"], "livemode": False, "metadata": dict(pi["metadata"]),
        "paid": True, "payment_intent": pi["id"], "payment_method": pi["payment_method"],
        "payment_method_details": {"type": "card", "card": details}, "refunded": False,
        "status": "succeeded", "transfer_group": None,
    }  # fmt: skip


async def intent_for_update(ctx: RequestContext, intent_id: str) -> JSON:
    pi = await ctx.store.get(intent_id, "payment_intent", for_update=True)
    if pi is None:
        raise resource_missing("payment_intent", intent_id)
    return pi


async def charge_for_update(ctx: RequestContext, charge_id: str) -> JSON:
    charge = await ctx.store.get(charge_id, "charge", for_update=True)
    if charge is None:
        raise resource_missing("charge", charge_id, param="charge")
    return charge


async def authenticate(ctx: RequestContext, intent_id: str, *, approve: bool) -> JSON:
    """The customer's 3-D Secure answer: approve authorizes the card, fail declines it."""
    pi = await intent_for_update(ctx, intent_id)
    if pi["status"] != PI_REQUIRES_ACTION:
        raise unexpected_state(pi, "authenticated")
    if approve:
        await _charge(ctx, pi, await load_card(ctx, pi["payment_method"]))
    else:
        error = {
            "type": "invalid_request_error", "code": "payment_intent_authentication_failure",
            "decline_code": None, "message": AUTHENTICATION_FAILED_MESSAGE, "param": None,
        }  # fmt: skip
        await _fail(ctx, pi, error)
    await ctx.store.save(pi, now=ctx.now)
    return pi


async def capture(ctx: RequestContext, intent_id: str, amount_minor: int | None) -> JSON:
    """Take all or part of the held amount; the rest is released."""
    pi = await intent_for_update(ctx, intent_id)
    if pi["status"] != PI_REQUIRES_CAPTURE:
        raise unexpected_state(pi, "captured")
    capturable = pi["amount_capturable"]
    amount = capturable if amount_minor is None else amount_minor
    if amount > capturable:
        raise ProviderInvalidRequest(
            f"The amount to capture ({format_amount(amount, pi['currency'])}) must be less than "
            f"or equal to the amount capturable ({format_amount(capturable, pi['currency'])}).",
            code="amount_too_large", param="amount_to_capture", payment_intent=intent_view(pi),
        )  # fmt: skip
    charge = await charge_for_update(ctx, pi["latest_charge"])
    charge.update(captured=True, amount_captured=amount, balance_transaction=new_id("txn_"))
    pi.update(status=PI_SUCCEEDED, amount_received=amount, amount_capturable=0)
    await ctx.store.save(charge, now=ctx.now)
    await ctx.store.save(pi, now=ctx.now)
    await ctx.emit("payment_intent.succeeded", pi)
    return pi


async def cancel(ctx: RequestContext, intent_id: str, reason: str) -> JSON:
    """Release a hold or abandon an unpaid intent; an uncaptured charge shows as refunded."""
    pi = await intent_for_update(ctx, intent_id)
    if pi["status"] not in CANCELABLE_STATUSES:
        raise unexpected_state(pi, "canceled")
    if pi["latest_charge"] is not None:
        charge = await charge_for_update(ctx, pi["latest_charge"])
        if not charge["captured"]:
            charge.update(refunded=True, amount_refunded=charge["amount"])
            await ctx.store.save(charge, now=ctx.now)
    pi.update(
        status=PI_CANCELED, cancellation_reason=reason, canceled_at=unix(ctx.now),
        amount_capturable=0, next_action=None,
    )  # fmt: skip
    await ctx.store.save(pi, now=ctx.now)
    await ctx.emit("payment_intent.canceled", pi)
    return pi
