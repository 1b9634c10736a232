"""Billing events, written to the outbox in the transaction of the change they report.

Keyed by subscription id, so one subscription's events keep their order on Kafka.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.models import Invoice, PaymentAttempt, Plan, Subscription
from payport.billing.views import attempt_view, invoice_summary, subscription_view
from payport.messaging.envelope import Event
from payport.messaging.outbox import emit

SUBSCRIPTION_CREATED = "subscription.created"
SUBSCRIPTION_UPDATED = "subscription.updated"
SUBSCRIPTION_RENEWED = "subscription.renewed"
SUBSCRIPTION_PAST_DUE = "subscription.past_due"
SUBSCRIPTION_CANCELED = "subscription.canceled"
SUBSCRIPTION_TRIAL_WILL_END = "subscription.trial_will_end"
INVOICE_CREATED = "invoice.created"
INVOICE_PAID = "invoice.paid"
INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
INVOICE_UNCOLLECTIBLE = "invoice.marked_uncollectible"
INVOICE_VOIDED = "invoice.voided"
INVOICE_PAYMENT_ACTION_REQUIRED = "invoice.payment_action_required"


def subscription_event(
    session: AsyncSession,
    event_type: str,
    subscription: Subscription,
    plan: Plan,
    **extra: Any,
) -> Event:
    payload = {"subscription": subscription_view(subscription, plan)} | extra
    return emit(session, event_type, payload, correlation_id=subscription.id, key=subscription.id)


def invoice_event(
    session: AsyncSession,
    event_type: str,
    invoice: Invoice,
    *,
    attempt: PaymentAttempt | None = None,
) -> Event:
    payload: dict[str, Any] = {"invoice": invoice_summary(invoice)}
    if attempt is not None:
        payload["attempt"] = attempt_view(attempt)
    key = invoice.subscription_id or invoice.id
    return emit(session, event_type, payload, correlation_id=invoice.id, key=key)
