"""Stripe-shaped JSON objects: ids, builders, the views payport reads, and stored error bodies."""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from payport.ids import random_bytes
from payport.money import Money
from payport.providers.base import (
    STRIPE_API_VERSION,
    ProviderCardError,
    ProviderError,
    ProviderIdempotencyError,
    ProviderInvalidRequest,
)
from payport.providers.views import intent_view

JSON = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits
_ERROR_TYPES: dict[str, type[ProviderError]] = {
    ProviderCardError.error_type: ProviderCardError,
    ProviderInvalidRequest.error_type: ProviderInvalidRequest,
    ProviderIdempotencyError.error_type: ProviderIdempotencyError,
}
_CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}


# Random bytes to id characters in one C call (`secrets.choice` per character took 6 % of
# the worker's CPU under load). The slight bias towards the first letters leaves ~5.9 bits
# per character, ample for ids that only need to be unique.
_ID_TABLE = bytes(ord(_ID_ALPHABET[b % len(_ID_ALPHABET)]) for b in range(256))


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-like id (`pi_3Nx…`); from the OS's random source, so processes never
    collide (pooled: see payport.ids)."""
    return prefix + random_bytes(length).translate(_ID_TABLE).decode()


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def format_amount(amount_minor: int, currency: str) -> str:
    """`$12.34` as Stripe writes amounts in error messages (exact, no float)."""
    major = Money(amount_minor, currency).to_major()
    symbol = _CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{major}" if symbol else f"{major} {currency.upper()}"


def list_object(url: str, data: list[JSON] | None = None) -> JSON:
    items = data or []
    return {
        "object": "list",
        "data": items,
        "has_more": False,
        "total_count": len(items),
        "url": url,
    }


def event_object(
    event_type: str, obj: Mapping[str, Any], *, now: datetime, request_id: str, key: str | None
) -> JSON:
    """A webhook event; `data.object` is a snapshot of the object right after the change."""
    return {
        "id": new_id("evt_"),
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": unix(now),
        "data": {"object": dict(obj)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": request_id, "idempotency_key": key},
        "type": event_type,
    }


def return_url(pi: Mapping[str, Any]) -> str | None:
    """Where the customer goes back to after 3-D Secure, if the caller gave one."""
    action = pi.get("next_action") or {}
    if action.get("type") != "redirect_to_url":
        return None
    url: str | None = action["redirect_to_url"].get("return_url")
    return url


def resource_missing(kind: str, object_id: str, *, param: str = "id") -> ProviderInvalidRequest:
    """Stripe's 404 for an id it does not know."""
    error = ProviderInvalidRequest(
        f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )
    error.http_status = 404
    return error


def unexpected_state(pi: Mapping[str, Any], action: str) -> ProviderInvalidRequest:
    """Stripe's answer to an action the intent's status does not allow."""
    return ProviderInvalidRequest(
        f"This PaymentIntent could not be {action} because it has a status of {pi['status']}.",
        code="payment_intent_unexpected_state",
        payment_intent=intent_view(pi),
    )


def error_body(error: ProviderError) -> JSON:
    """Stripe's `{"error": {…}}` body, kept so an idempotent replay raises the same error."""
    intent = error.payment_intent
    return {
        "error": {
            "type": error.error_type,
            "code": error.code,
            "decline_code": error.decline_code,
            "message": error.message,
            "param": error.param,
            "payment_intent": dict(intent.raw) if intent is not None else None,
        }
    }


def error_from_body(http_status: int, body: Mapping[str, Any]) -> ProviderError:
    """Rebuild the error an earlier request raised, from its stored body."""
    fields = body["error"]
    error_class = _ERROR_TYPES.get(fields["type"], ProviderError)
    intent = fields.get("payment_intent")
    error = error_class(
        fields["message"],
        code=fields.get("code"),
        decline_code=fields.get("decline_code"),
        param=fields.get("param"),
        payment_intent=intent_view(intent) if intent else None,
    )
    error.http_status = http_status
    return error
