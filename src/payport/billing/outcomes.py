"""Applying a payment attempt's outcome exactly once, whoever learns it first.

An off-session charge may answer at once (succeeded, declined), answer "not
yet" (3-D Secure needed: `requires_action`; a delayed method: `processing`),
or not answer at all (a timeout: outcome unknown). The engine's reply, the
provider's webhook and a reconcile that asks the provider all end here; the
attempt row, locked after its subscription and invoice (the order every
billing transaction takes), is settled by whichever comes first, and the
others find it settled and do nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing import events
from payport.billing.dunning import record_failure, record_payment
from payport.billing.models import Invoice, PaymentAttempt, Subscription
from payport.billing.repository import AWAITING_STATUSES
from payport.billing.subscriptions import get_subscription
from payport.config import Settings
from payport.providers import base
from payport.providers.views import intent_view

log = logging.getLogger(__name__)

# Attempt statuses that still wait for an answer.
PENDING = "pending"  # the call went out, its answer was lost (or not recorded yet)
AWAITING = frozenset(AWAITING_STATUSES)  # requires_action, processing: a webhook settles it
UNSETTLED = frozenset({PENDING, *AWAITING})
# PaymentIntent webhooks billing acts on (the processor fetches the intent before calling).
INTENT_EVENT_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.requires_action",
    }
)


def _failure_of(intent: base.IntentView) -> base.ProviderError:
    return base.ProviderError(
        intent.last_error_message or f"the payment intent is {intent.status}",
        code=intent.last_error_code or f"payment_intent_{intent.status}",
        decline_code=intent.last_decline_code,
        payment_intent=intent,
    )


def outcome_of(intent: base.IntentView) -> tuple[str, base.ProviderError | None] | None:
    """(attempt status, the error if it failed) an intent's state means; None: no verdict
    (an off-session intent awaiting confirmation or capture is not ours to finish)."""
    if intent.status == base.PI_SUCCEEDED:
        return "succeeded", None
    if intent.status in AWAITING:
        return intent.status, None
    if intent.status in (base.PI_REQUIRES_PAYMENT_METHOD, base.PI_CANCELED):
        return "failed", _failure_of(intent)
    return None


async def lock_attempt(
    session: AsyncSession, attempt_id: int
) -> tuple[PaymentAttempt, Invoice, Subscription | None] | None:
    """The attempt with its invoice and subscription (none for a one-off invoice without
    one), locked subscription first."""
    attempt = await session.get(PaymentAttempt, attempt_id)
    if attempt is None:
        return None
    invoice = await session.get(Invoice, attempt.invoice_id)
    assert invoice is not None
    subscription = None
    if invoice.subscription_id is not None:
        subscription = await get_subscription(session, invoice.subscription_id, for_update=True)
    await session.refresh(invoice, with_for_update=True)
    await session.refresh(attempt, with_for_update=True)
    return attempt, invoice, subscription


async def settle_attempt(
    session: AsyncSession,
    attempt_id: int,
    *,
    intent: base.IntentView | None,
    error: base.ProviderError | None,
    settings: Settings,
) -> bool:
    """Apply an answer to an unsettled attempt; False when it was settled already (or the
    answer says nothing new). `error` without `intent`: declined before an intent existed."""
    locked = await lock_attempt(session, attempt_id)
    if locked is None:
        return False
    attempt, invoice, subscription = locked
    if attempt.status not in UNSETTLED:
        return False
    if intent is not None:
        attempt.payment_intent_id = intent.id
    if error is not None:
        status: str = "failed"
    else:
        assert intent is not None
        verdict = outcome_of(intent)
        if verdict is None:
            return False
        status, error = verdict
    if status == attempt.status:
        return False
    attempt.status = status
    if status == "succeeded":
        await record_payment(session, subscription, invoice, attempt)
    elif status in AWAITING:
        if status == base.PI_REQUIRES_ACTION:
            events.invoice_event(
                session, events.INVOICE_PAYMENT_ACTION_REQUIRED, invoice, attempt=attempt
            )
    else:
        assert error is not None
        attempt.failure_code = error.code or error.error_type
        attempt.decline_code = error.decline_code
        attempt.failure_message = error.message
        await record_failure(session, subscription, invoice, attempt, settings=settings)
    return True


async def attempt_for_intent(session: AsyncSession, intent: base.IntentView) -> int | None:
    """The attempt an intent belongs to: by its id, else (an attempt whose call timed out
    never learned the id) by the invoice and attempt number the charge carried."""
    found = await session.scalar(
        select(PaymentAttempt.id).where(PaymentAttempt.payment_intent_id == intent.id).limit(1)
    )
    if found is not None:
        return found
    invoice_id, number = intent.metadata.get("invoice_id"), intent.metadata.get("attempt")
    if not invoice_id or not number or not number.isdigit():
        return None
    return await session.scalar(
        select(PaymentAttempt.id).where(
            PaymentAttempt.invoice_id == invoice_id, PaymentAttempt.number == int(number)
        )
    )


EventHandler = Callable[[AsyncSession, str, dict[str, Any]], Awaitable[bool]]


def webhook_handlers(settings: Settings) -> Mapping[str, EventHandler]:
    """What the webhook processor calls for PaymentIntent events no payment claimed; the
    object it passes is the intent as fetched from the provider, not the event's copy."""

    async def handle(session: AsyncSession, event_type: str, obj: dict[str, Any]) -> bool:
        intent = intent_view(obj)
        attempt_id = await attempt_for_intent(session, intent)
        if attempt_id is None:
            return False
        applied = await settle_attempt(
            session, attempt_id, intent=intent, error=None, settings=settings
        )
        log.info("billing: %s for attempt %s applied=%s", event_type, attempt_id, applied)
        return True

    return dict.fromkeys(INTENT_EVENT_TYPES, handle)
