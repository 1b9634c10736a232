"""Stripe's test cards and test PaymentMethods, and how each one answers a charge.

Card numbers are only ever used here to pick an outcome; the sandbox stores brand and last4,
never the number.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decline:
    """The error a declined charge carries (Stripe's card_error fields)."""

    code: str
    decline_code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class CardOutcome:
    """What charging a card does: succeed, decline, or ask for 3-D Secure first."""

    name: str
    decline: Decline | None = None
    requires_authentication: bool = False


SUCCEEDS = CardOutcome("succeeds")
AUTHENTICATION_REQUIRED = CardOutcome("authentication_required", requires_authentication=True)

_DECLINES = {
    "generic_decline": Decline("card_declined", "generic_decline", "Your card was declined."),
    "insufficient_funds": Decline(
        "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "expired_card": Decline("expired_card", "expired_card", "Your card has expired."),
    "incorrect_cvc": Decline(
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."
    ),
    "processing_error": Decline(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "customer_fail": Decline("card_declined", "generic_decline", "Your card was declined."),
}

OUTCOMES: dict[str, CardOutcome] = {
    SUCCEEDS.name: SUCCEEDS,
    AUTHENTICATION_REQUIRED.name: AUTHENTICATION_REQUIRED,
    **{name: CardOutcome(name, decline=decline) for name, decline in _DECLINES.items()},
}

# Test card number -> outcome name; every other Luhn-valid number succeeds.
_NUMBER_OUTCOMES = {
    "4242424242424242": "succeeds",
    "5555555555554444": "succeeds",
    "4000000000000077": "succeeds",
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error",
    "4000000000000341": "customer_fail",
    "4000002760003184": "authentication_required",
    "4000000000003220": "authentication_required",
}

# Stripe's ready-made test PaymentMethods and the card each one stands for.
TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_threeDSecure2Required": "4000000000003220",
}

# A pm_ id the sandbox has never seen belongs to an upstream service; treat it as this card.
DEFAULT_CARD_NUMBER = TEST_PAYMENT_METHODS["pm_card_visa"]

AUTHENTICATION_FAILED_MESSAGE = (
    "The provided PaymentMethod has failed authentication. You can provide "
    "payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again."
)
AUTHENTICATION_REQUIRED_DECLINE = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)


def normalize_card_number(value: str) -> str | None:
    """The digits of `value` if it looks like a card number (spaces or dashes allowed)."""
    digits = value.replace(" ", "").replace("-", "")
    if digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19:
        return digits
    return None


def luhn_valid(digits: str) -> bool:
    """The mod-10 check every real card number passes."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def outcome_for_number(digits: str) -> CardOutcome:
    return OUTCOMES[_NUMBER_OUTCOMES.get(digits, SUCCEEDS.name)]


def brand_for_number(digits: str) -> str:
    """Stripe's `card.brand` from the number's prefix (IIN ranges)."""
    if digits.startswith("4"):
        return "visa"
    two, four = int(digits[:2]), int(digits[:4])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:
        return "discover"
    if two == 35:
        return "jcb"
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return "diners"
    if digits.startswith("62"):
        return "unionpay"
    return "unknown"
