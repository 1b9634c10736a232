"""Mapping provider errors onto payport's stable codes, and retrying the transient ones."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from payport.errors import (
    CardError,
    InvalidAmount,
    InvalidPayload,
    InvalidStatus,
    PayportError,
    ProviderUnavailable,
)
from payport.providers.base import (
    ProviderCardError,
    ProviderError,
    ProviderIdempotencyError,
    ProviderInvalidRequest,
    ProviderTransientError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_AMOUNT_CODES = frozenset({"amount_too_small", "amount_too_large"})
_STATE_CODES = frozenset(
    {
        "payment_intent_unexpected_state",
        "charge_already_captured",
        "charge_already_refunded",
        "charge_expired_for_capture",
    }
)


def to_payport_error(exc: ProviderError) -> PayportError:
    """One place that decides which stable code a provider failure becomes."""
    extra = {"stripe_code": exc.code}
    if isinstance(exc, ProviderCardError):
        return CardError(exc.message, decline_code=exc.decline_code, **extra)
    if isinstance(exc, ProviderTransientError):
        return ProviderUnavailable("payment provider unavailable; retries exhausted", **extra)
    if isinstance(exc, ProviderIdempotencyError):
        return PayportError(exc.message, **extra)
    if isinstance(exc, ProviderInvalidRequest):
        if exc.code in _AMOUNT_CODES:
            return InvalidAmount(exc.message, field="amount", **extra)
        if exc.code in _STATE_CODES:
            return InvalidStatus(exc.message, field="status", **extra)
        return InvalidPayload(exc.message, field=exc.param, **extra)
    return ProviderUnavailable(exc.message, **extra)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 4,
    base_delay_s: float = 0.2,
    cap_s: float = 3.0,
) -> T:
    """Retry transient failures with capped exponential backoff and full jitter.

    Safe because every mutating call carries the same idempotency key each time.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except ProviderTransientError:
            if attempt == attempts:
                raise
            delay = random.uniform(0, min(cap_s, base_delay_s * 2 ** (attempt - 1)))
            log.warning("provider call failed transiently; retrying attempt=%d", attempt)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
