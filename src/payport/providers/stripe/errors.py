"""The SDK's exceptions mapped onto the port's ProviderError family, once.

Stripe's own message is kept (payport shows it in `payment.failed`), the secret
key is scrubbed from anything that could carry it, and the SDK exception is not
chained: its attributes hold raw HTTP bodies and headers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import stripe
from pydantic import SecretStr

from payport.providers.base import (
    ProviderAuthenticationError,
    ProviderCardError,
    ProviderError,
    ProviderIdempotencyError,
    ProviderInvalidRequest,
    ProviderTransientError,
)
from payport.providers.views import intent_view

log = logging.getLogger(__name__)

_REDACTED = "[redacted]"


def provider_error(exc: stripe.StripeError, *, operation: str, secret: SecretStr) -> ProviderError:
    """The port's error for an SDK exception, logged once without the key."""
    error = _map(exc, _redact(exc.user_message or "Stripe request failed", secret))
    error.http_status = exc.http_status or error.http_status
    expected = isinstance(error, ProviderCardError | ProviderInvalidRequest)
    level = logging.INFO if expected else logging.WARNING
    log.log(
        level,
        "stripe call failed operation=%s http_status=%s error=%s code=%s request_id=%s",
        operation, exc.http_status, type(exc).__name__, error.code, exc.request_id,
    )  # fmt: skip
    return error


def _map(exc: stripe.StripeError, message: str) -> ProviderError:
    fields = _error_fields(exc)
    details: dict[str, Any] = {
        "code": fields.get("code") or exc.code,
        "decline_code": fields.get("decline_code"),
        "param": fields.get("param"),
    }
    intent = fields.get("payment_intent")
    if isinstance(intent, Mapping):
        details["payment_intent"] = intent_view(dict(intent))
    if isinstance(exc, stripe.CardError):
        return ProviderCardError(message, **details)
    if isinstance(exc, stripe.IdempotencyError):
        return ProviderIdempotencyError(message, **details)
    if isinstance(exc, stripe.InvalidRequestError):
        return ProviderInvalidRequest(message, **details)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return ProviderAuthenticationError(
            f"Stripe refused the configured API key (HTTP {exc.http_status}); "
            "check STRIPE_SECRET_KEY and its permissions",
            code=details["code"],
        )
    if _is_transient(exc):
        return ProviderTransientError(message, **details)
    return ProviderError(message, **details)


def _is_transient(exc: stripe.StripeError) -> bool:
    """Rate limits, network failures, conflicts and 5xx: the outcome is unknown, retry."""
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError):
        return True
    if isinstance(exc, stripe.APIError):
        status = exc.http_status
        return status is None or status == 409 or status >= 500
    return False


def _error_fields(exc: stripe.StripeError) -> Mapping[str, Any]:
    """Stripe's `error` object from the response body, or nothing."""
    body = exc.json_body
    if not isinstance(body, Mapping):
        return {}
    fields = body.get("error")
    return fields if isinstance(fields, Mapping) else {}


def _redact(message: str, secret: SecretStr) -> str:
    key = secret.get_secret_value()
    return message.replace(key, _REDACTED) if key else message
