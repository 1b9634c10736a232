"""Queries the billing engine decides by: what is due, for whom, and what was cut short."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.models import Invoice, PaymentAttempt, Subscription
from payport.billing.states import (
    INCOMPLETE_EXPIRY_HOURS,
    RENEWING,
    InvoiceStatus,
    SubscriptionStatus,
)
from payport.providers.base import PI_PROCESSING, PI_REQUIRES_ACTION

Sub = SubscriptionStatus
Inv = InvoiceStatus
# Attempts waiting on the customer (3-D Secure) or a delayed method; see billing.outcomes.
AWAITING_STATUSES = (PI_REQUIRES_ACTION, PI_PROCESSING)


def renews() -> ColumnElement[bool]:
    return or_(
        Subscription.status.in_([s.value for s in RENEWING]),
        and_(
            Subscription.cancel_at_period_end.is_(True),
            Subscription.status != Sub.CANCELED.value,
        ),
    )


def due_subscriptions(
    now: datetime, *, clock_id: str | None, limit: int | None = None
) -> Select[str, str]:
    """(subscription id, user id) of subscriptions with a renewal, attempt or resume due."""
    on_clock = (
        Subscription.test_clock_id.is_(None)
        if clock_id is None
        else Subscription.test_clock_id == clock_id
    )
    invoice_due = exists().where(
        Invoice.subscription_id == Subscription.id,
        Invoice.status == Inv.OPEN.value,
        Invoice.next_payment_attempt <= now,
    )
    attempt_pending = exists().where(
        PaymentAttempt.invoice_id == Invoice.id,
        Invoice.subscription_id == Subscription.id,
        PaymentAttempt.status == "pending",
    )
    expired = and_(
        Subscription.status == Sub.INCOMPLETE.value,
        Subscription.started_at <= now - timedelta(hours=INCOMPLETE_EXPIRY_HOURS),
        ~subscription_awaiting(),
    )
    query = (
        select(Subscription.id, Subscription.user_id)
        .where(
            on_clock,
            or_(
                and_(renews(), Subscription.current_period_end <= now),
                invoice_due,
                attempt_pending,
                expired,
                Subscription.trial_notice_at <= now,
            ),
        )
        .order_by(Subscription.current_period_end, Subscription.id)
    )
    return query.limit(limit) if limit is not None else query


def renewal_due(subscription: Subscription, until: datetime) -> datetime | None:
    status = subscription.subscription_status
    ending = subscription.cancel_at_period_end and status is not Sub.CANCELED
    renews = status in RENEWING or ending
    if renews and subscription.current_period_end <= until:
        return subscription.current_period_end
    return None


def awaiting_attempt() -> ColumnElement[bool]:
    """The invoice has an attempt waiting on the customer or the provider (3-D Secure, a
    delayed method): no second charge is started until it is answered."""
    return exists().where(
        PaymentAttempt.invoice_id == Invoice.id,
        PaymentAttempt.status.in_(AWAITING_STATUSES),
    )


def subscription_awaiting() -> ColumnElement[bool]:
    """One of the subscription's invoices has an attempt waiting on the customer or the
    provider: its outcome is unknown, so the subscription is not expired meanwhile."""
    return exists().where(
        Invoice.subscription_id == Subscription.id,
        PaymentAttempt.invoice_id == Invoice.id,
        PaymentAttempt.status.in_(AWAITING_STATUSES),
    )


async def is_awaiting(session: AsyncSession, subscription_id: str) -> bool:
    found = await session.scalar(
        select(PaymentAttempt.id)
        .join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
        .where(
            Invoice.subscription_id == subscription_id,
            PaymentAttempt.status.in_(AWAITING_STATUSES),
        )
        .limit(1)
    )
    return found is not None


async def unsettled_attempt(session: AsyncSession, invoice_id: str) -> PaymentAttempt | None:
    return await session.scalar(
        select(PaymentAttempt)
        .where(
            PaymentAttempt.invoice_id == invoice_id,
            PaymentAttempt.status.in_(["pending", "requires_action", "processing"]),
        )
        .limit(1)
    )


async def newest_saved_card(session: AsyncSession, user_id: str) -> Subscription | None:
    """The customer's newest subscription with a card saved: the card renewals charge."""
    return await session.scalar(
        select(Subscription)
        .where(Subscription.user_id == user_id, Subscription.payment_method_id.is_not(None))
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
        .limit(1)
    )


def interrupted_one_off_attempts(since: datetime, *, limit: int) -> Select[int]:
    """Attempts of invoices without a subscription whose call went out at `since` or earlier
    and was never answered; oldest first."""
    return (
        select(PaymentAttempt.id)
        .join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
        .where(
            Invoice.subscription_id.is_(None),
            PaymentAttempt.status == "pending",
            PaymentAttempt.attempted_at <= since,
        )
        .order_by(PaymentAttempt.attempted_at, PaymentAttempt.id)
        .limit(limit)
    )


async def pending_attempt(session: AsyncSession, subscription_id: str) -> PaymentAttempt | None:
    return await session.scalar(
        select(PaymentAttempt)
        .join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
        .where(Invoice.subscription_id == subscription_id, PaymentAttempt.status == "pending")
        .order_by(PaymentAttempt.id)
        .limit(1)
    )


async def invoice_due(
    session: AsyncSession, subscription_id: str, until: datetime
) -> Invoice | None:
    return await session.scalar(
        select(Invoice)
        .where(
            Invoice.subscription_id == subscription_id,
            Invoice.status == Inv.OPEN.value,
            Invoice.next_payment_attempt <= until,
            ~awaiting_attempt(),
        )
        .order_by(Invoice.next_payment_attempt, Invoice.id)
        .limit(1)
        .with_for_update()
    )


def waiting_attempts(since: datetime, *, clock_id: str | None) -> Select[int, datetime, str]:
    """Attempts waiting on a webhook, made at `since` or earlier, of subscriptions on one
    test clock (None: on the engine's clock, with one-off invoices' that have no
    subscription); oldest first."""
    on_clock = (
        Subscription.test_clock_id.is_(None)
        if clock_id is None
        else Subscription.test_clock_id == clock_id
    )
    return (
        select(PaymentAttempt.id, PaymentAttempt.attempted_at, PaymentAttempt.status)
        .join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
        .outerjoin(Subscription, Subscription.id == Invoice.subscription_id)
        .where(
            PaymentAttempt.status.in_(AWAITING_STATUSES),
            PaymentAttempt.attempted_at <= since,
            on_clock,
        )
        .order_by(PaymentAttempt.attempted_at, PaymentAttempt.id)
    )
