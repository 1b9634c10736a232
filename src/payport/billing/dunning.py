"""What a payment attempt's outcome does: paid and active again, or past_due and retried,
and at the end of the schedule canceled or unpaid (BILLING_DUNNING_FINAL_ACTION)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TypeGuard

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing import events
from payport.billing.invoices import (
    ONE_OFF_REASON,
    is_final,
    is_one_off,
    lines_of,
    mark_paid,
    mark_uncollectible,
)
from payport.billing.models import Invoice, PaymentAttempt, Subscription
from payport.billing.plans import get_plan
from payport.billing.states import InvoiceStatus, SubscriptionStatus
from payport.billing.subscriptions import end_subscription, move
from payport.config import Settings

log = logging.getLogger(__name__)
Sub = SubscriptionStatus
Inv = InvoiceStatus


def drives_subscription(
    subscription: Subscription | None, invoice: Invoice
) -> TypeGuard[Subscription]:
    """A subscription's own invoices move its status; a one-off invoice, even one that names
    a subscription, is paid or not on its own (no dunning, no past_due)."""
    return subscription is not None and not is_one_off(invoice)


async def record_payment(
    session: AsyncSession,
    subscription: Subscription | None,
    invoice: Invoice,
    attempt: PaymentAttempt,
) -> None:
    """Collected: the invoice is paid (even if the subscription was canceled meanwhile);
    a subscription waiting on it becomes active."""
    if invoice.invoice_status not in (Inv.OPEN, Inv.UNCOLLECTIBLE):
        log.warning("billing: charge succeeded on a %s invoice %s", invoice.status, invoice.id)
        return
    await mark_paid(
        session,
        invoice,
        await lines_of(session, invoice.id),
        at=attempt.attempted_at,
        payment_intent_id=attempt.payment_intent_id,
        attempt=attempt,
    )
    await _activate_when_settled(session, subscription, invoice)


async def record_paid_out_of_band(
    session: AsyncSession, subscription: Subscription | None, invoice: Invoice, *, at: datetime
) -> None:
    """The customer paid outside payport: paid with no charge, its ledger entry saying so."""
    lines = await lines_of(session, invoice.id)
    await mark_paid(session, invoice, lines, at=at, payment_intent_id=None, out_of_band=True)
    await _activate_when_settled(session, subscription, invoice)


async def _activate_when_settled(
    session: AsyncSession, subscription: Subscription | None, invoice: Invoice
) -> None:
    """A subscription waiting on its invoices becomes active once none is left open."""
    if not drives_subscription(subscription, invoice):
        return
    status = subscription.subscription_status
    if status in (Sub.INCOMPLETE, Sub.PAST_DUE, Sub.UNPAID, Sub.TRIALING):
        still_open = await session.scalar(
            select(func.count(Invoice.id)).where(
                Invoice.subscription_id == subscription.id,
                Invoice.status == Inv.OPEN.value,
                Invoice.billing_reason != ONE_OFF_REASON,
                Invoice.id != invoice.id,
            )
        )
        if not still_open:
            plan = await get_plan(session, subscription.plan_id)
            move(subscription, Sub.ACTIVE)
            events.subscription_event(
                session,
                events.SUBSCRIPTION_UPDATED,
                subscription,
                plan,
                previous_attributes={"status": status.value},
            )


async def record_failure(
    session: AsyncSession,
    subscription: Subscription | None,
    invoice: Invoice,
    attempt: PaymentAttempt,
    *,
    settings: Settings,
) -> None:
    """A declined attempt: past_due and the next retry, or the final action. A one-off
    invoice stays open for the customer to pay again; nothing retries it on a schedule."""
    if not drives_subscription(subscription, invoice):
        events.invoice_event(session, events.INVOICE_PAYMENT_FAILED, invoice, attempt=attempt)
        return
    status = subscription.subscription_status
    retry_at = await retry_time(session, invoice, attempt, settings.billing_retry_days)
    if is_final(invoice) and invoice.invoice_status is Inv.OPEN:
        _dun_final_invoice(session, invoice, attempt, retry_at, settings=settings)
        return
    plan = await get_plan(session, subscription.plan_id)
    live = invoice.invoice_status is Inv.OPEN and status is not Sub.CANCELED
    if live and status is not Sub.INCOMPLETE:
        invoice.next_payment_attempt = retry_at
    events.invoice_event(session, events.INVOICE_PAYMENT_FAILED, invoice, attempt=attempt)
    if not live or status is Sub.INCOMPLETE:
        return  # a first payment waits for the customer (a new card), as on Stripe
    if status in (Sub.ACTIVE, Sub.TRIALING):
        move(subscription, Sub.PAST_DUE)
        events.subscription_event(
            session,
            events.SUBSCRIPTION_PAST_DUE,
            subscription,
            plan,
            previous_attributes={"status": status.value},
        )
    if retry_at is not None:
        return
    if settings.billing_final_action == "unpaid":
        if subscription.subscription_status is Sub.PAST_DUE:
            move(subscription, Sub.UNPAID)
            events.subscription_event(
                session,
                events.SUBSCRIPTION_UPDATED,
                subscription,
                plan,
                previous_attributes={"status": Sub.PAST_DUE.value},
            )
        return
    mark_uncollectible(session, invoice, at=attempt.attempted_at)
    subscription.cancellation_reason = "payment_failed"
    await end_subscription(session, subscription, plan, at=attempt.attempted_at)


def _dun_final_invoice(
    session: AsyncSession,
    invoice: Invoice,
    attempt: PaymentAttempt,
    retry_at: datetime | None,
    *,
    settings: Settings,
) -> None:
    """A final invoice is retried on the same schedule although its subscription is over
    (there is no status left to move); after the last retry it is written off
    (BILLING_DUNNING_FINAL_ACTION=cancel) or left open for the customer to pay (unpaid)."""
    invoice.next_payment_attempt = retry_at
    events.invoice_event(session, events.INVOICE_PAYMENT_FAILED, invoice, attempt=attempt)
    if retry_at is None and settings.billing_final_action == "cancel":
        mark_uncollectible(session, invoice, at=attempt.attempted_at)


async def retry_time(
    session: AsyncSession, invoice: Invoice, attempt: PaymentAttempt, retry_days: list[int]
) -> datetime | None:
    """Retries fall on the configured days after the invoice's first failed attempt.

    Attempts the customer triggered (a new card) do not use up the schedule.
    """
    first = await session.scalar(
        select(func.min(PaymentAttempt.attempted_at)).where(
            PaymentAttempt.invoice_id == invoice.id, PaymentAttempt.status == "failed"
        )
    )
    first = first or attempt.attempted_at
    for days in retry_days:
        moment = first + timedelta(days=days)
        if moment > attempt.attempted_at:
            return moment
    return None
