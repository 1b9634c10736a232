"""Subscription decisions inside the caller's transaction (services never commit).

Charging happens after the commit, in `renewals.BillingEngine`: these
functions only schedule a payment attempt (`invoice.next_payment_attempt`).

Usage is billed in arrears, so a subscription that ends (canceled now, or at
the end of its period) gets a final invoice for what its last period left
unbilled: the metered usage, pending prorations and, with `prorate`, the
credit for unused time. Nothing left: no invoice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing import events, repository
from payport.billing.clock import Clock, get_test_clock, new_id
from payport.billing.invoices import (
    FINAL_REASON,
    cycle_key,
    final_key,
    open_invoice,
    open_invoices_of,
    pending_lines,
    plan_line,
)
from payport.billing.models import Invoice, InvoiceLine, Plan, Subscription
from payport.billing.periods import period_bounds
from payport.billing.plan_changes import cancellation_credit, change_price
from payport.billing.plans import get_plan
from payport.billing.schemas import (
    CancelBody,
    InvalidRequest,
    SubscriptionBody,
    SubscriptionUpdateBody,
)
from payport.billing.states import (
    INCOMPLETE_EXPIRY_HOURS,
    InvoiceStatus,
    SubscriptionStatus,
    check_invoice_move,
    check_subscription_move,
)
from payport.errors import InvalidStatus, NotFound
from payport.money import MAX_AMOUNT_MINOR
from payport.usage.service import metered_lines

Sub = SubscriptionStatus
TRIAL_NOTICE = timedelta(days=3)  # Stripe's customer.subscription.trial_will_end lead time


def move(subscription: Subscription, target: SubscriptionStatus) -> SubscriptionStatus:
    """Apply a checked transition; returns the status it left."""
    previous = subscription.subscription_status
    subscription.status = check_subscription_move(previous, target).value
    return previous


async def get_subscription(
    session: AsyncSession, subscription_id: str, *, for_update: bool = False
) -> Subscription:
    subscription = await session.get(Subscription, subscription_id, with_for_update=for_update)
    if subscription is None:
        raise NotFound(f"subscription {subscription_id} not found", field="subscription_id")
    return subscription


async def subscriptions_of(session: AsyncSession, user_id: str) -> list[Subscription]:
    rows = await session.scalars(
        select(Subscription)
        .where(Subscription.user_id == user_id)
        .order_by(Subscription.started_at.desc(), Subscription.id.desc())
    )
    return list(rows)


def check_chargeable(plan: Plan, quantity: int) -> None:
    """A period's charge must fit in one PaymentIntent (Stripe: at most eight digits)."""
    if plan.amount_minor * quantity > MAX_AMOUNT_MINOR:
        raise InvalidRequest(
            f"{quantity} x {plan.amount_minor} exceeds the largest charge ({MAX_AMOUNT_MINOR})",
            field="quantity",
        )


async def create_subscription(
    session: AsyncSession, body: SubscriptionBody, *, clock: Clock
) -> Subscription:
    """Start a subscription: trialing (no charge yet), or incomplete with its first invoice
    due now; it turns active when that invoice is paid."""
    plan = await get_plan(session, body.plan_id)
    if not plan.active:
        raise InvalidRequest(f"plan {plan.id} is not active", field="plan_id")
    now = clock.now()
    if body.test_clock is not None:
        now = (await get_test_clock(session, body.test_clock)).frozen_time
    check_chargeable(plan, body.quantity)
    trial_days = plan.trial_days if body.trial_days is None else body.trial_days
    subscription = Subscription(
        id=new_id("sub_"),
        user_id=body.user_id,
        plan_id=plan.id,
        quantity=body.quantity,
        provider_customer_id=body.customer_id,
        payment_method_id=body.payment_method_id,
        test_clock_id=body.test_clock,
        started_at=now,
        cancel_at_period_end=False,
    )
    if trial_days:
        trial_end = now + timedelta(days=trial_days)
        subscription.status = Sub.TRIALING.value
        subscription.trial_end = trial_end
        subscription.billing_cycle_anchor = trial_end
        subscription.period_index = -1  # the trial; period 0 starts when it ends
        subscription.current_period_start, subscription.current_period_end = now, trial_end
        subscription.trial_notice_at = max(now, trial_end - TRIAL_NOTICE)
        session.add(subscription)
        await session.flush()
        events.subscription_event(session, events.SUBSCRIPTION_CREATED, subscription, plan)
        await open_invoice(
            session,
            subscription,
            reason="subscription_create",
            currency=plan.currency,
            issued_at=now,
            new_lines=[trial_line(plan, subscription.quantity, (now, trial_end))],
            period=(now, trial_end),
            cycle_key=cycle_key(subscription, -1),
            collect=False,
        )
    else:
        period = period_bounds(now, plan.cycle, 0)
        subscription.status = Sub.INCOMPLETE.value
        subscription.billing_cycle_anchor = now
        subscription.period_index = 0
        subscription.current_period_start, subscription.current_period_end = period
        session.add(subscription)
        await session.flush()
        events.subscription_event(session, events.SUBSCRIPTION_CREATED, subscription, plan)
        invoice = await open_invoice(
            session,
            subscription,
            reason="subscription_create",
            currency=plan.currency,
            issued_at=now,
            new_lines=[plan_line(plan, subscription.quantity, period)],
            period=period,
            cycle_key=cycle_key(subscription, 0),
            collect=subscription.payment_method_id is not None,
        )
        if invoice.status == "paid":
            move(subscription, Sub.ACTIVE)
            events.subscription_event(
                session,
                events.SUBSCRIPTION_UPDATED,
                subscription,
                plan,
                previous_attributes={"status": Sub.INCOMPLETE.value},
            )
    return subscription


def trial_line(plan: Plan, quantity: int, period: tuple[datetime, datetime]) -> InvoiceLine:
    """The trial's $0 line: a trial starts with a paid invoice for nothing, as on Stripe."""
    return InvoiceLine(
        kind="plan",
        description=f"Trial period for {plan.name}",
        plan_id=plan.id,
        quantity=quantity,
        amount_minor=0,
        currency=plan.currency,
        period_start=period[0],
        period_end=period[1],
    )


def expiry_of(subscription: Subscription) -> datetime | None:
    """When an incomplete subscription expires unless its first invoice is paid."""
    if subscription.subscription_status is not Sub.INCOMPLETE:
        return None
    return subscription.started_at + timedelta(hours=INCOMPLETE_EXPIRY_HOURS)


async def expire_incomplete(
    session: AsyncSession, subscription: Subscription, *, at: datetime
) -> None:
    """The first invoice went unpaid for 23 hours: the subscription is over before it
    began (incomplete_expired) and its open invoices are voided, as on Stripe."""
    plan = await get_plan(session, subscription.plan_id)
    previous = move(subscription, Sub.INCOMPLETE_EXPIRED)
    subscription.ended_at = at
    for invoice in await open_invoices_of(session, subscription.id):
        invoice.status = check_invoice_move(invoice.invoice_status, InvoiceStatus.VOID).value
        invoice.next_payment_attempt = None
        invoice.closed_at = at
        events.invoice_event(session, events.INVOICE_VOIDED, invoice)
    events.subscription_event(
        session,
        events.SUBSCRIPTION_UPDATED,
        subscription,
        plan,
        previous_attributes={"status": previous.value},
    )


async def send_trial_notice(session: AsyncSession, subscription: Subscription) -> None:
    """`subscription.trial_will_end`, once, three days before the trial ends."""
    subscription.trial_notice_at = None
    if subscription.subscription_status is not Sub.TRIALING:
        return
    plan = await get_plan(session, subscription.plan_id)
    events.subscription_event(session, events.SUBSCRIPTION_TRIAL_WILL_END, subscription, plan)


async def update_subscription(
    session: AsyncSession,
    subscription: Subscription,
    body: SubscriptionUpdateBody,
    *,
    now: datetime,
) -> Subscription:
    """Change plan or quantity (prorated to the second), the card, or cancel-at-period-end."""
    if subscription.subscription_status in (Sub.CANCELED, Sub.INCOMPLETE_EXPIRED):
        raise InvalidStatus(f"a {subscription.status} subscription cannot change", field="status")
    fields = body.model_fields_set - {"proration_behavior"}
    if not fields:
        raise InvalidRequest(
            "nothing to change: give plan_id, quantity, payment_method_id or cancel_at_period_end",
            field="body",
        )
    old_plan = await get_plan(session, subscription.plan_id)
    plan = old_plan
    if body.plan_id is not None and body.plan_id != old_plan.id:
        plan = await _replacement_plan(session, old_plan, body.plan_id)
    quantity = body.quantity if body.quantity is not None else subscription.quantity
    changed: dict[str, object] = {}
    check_chargeable(plan, quantity)
    if plan is not old_plan or quantity != subscription.quantity:
        changed |= {"plan_id": old_plan.id, "quantity": subscription.quantity}
        await change_price(session, subscription, old_plan, plan, quantity, body, now=now)
    if body.payment_method_id is not None:
        changed["payment_method_id"] = subscription.payment_method_id
        subscription.payment_method_id = body.payment_method_id
        await _retry_open_invoices(session, subscription, now=now)
    if body.cancel_at_period_end is not None:
        changed["cancel_at_period_end"] = subscription.cancel_at_period_end
        subscription.cancel_at_period_end = body.cancel_at_period_end
        if not body.cancel_at_period_end:
            subscription.cancellation_reason = None
    events.subscription_event(
        session, events.SUBSCRIPTION_UPDATED, subscription, plan, previous_attributes=changed
    )
    return subscription


async def _replacement_plan(session: AsyncSession, old: Plan, plan_id: str) -> Plan:
    plan = await get_plan(session, plan_id)
    if not plan.active:
        raise InvalidRequest(f"plan {plan.id} is not active", field="plan_id")
    if plan.currency != old.currency:
        raise InvalidRequest(
            f"plan {plan.id} is in {plan.currency}; the subscription pays in {old.currency}",
            field="plan_id",
        )
    return plan


async def _retry_open_invoices(
    session: AsyncSession, subscription: Subscription, *, now: datetime
) -> None:
    """A new card: unpaid invoices of a subscription still alive are tried again now
    (not one whose payment is still awaiting 3-D Secure or a delayed method)."""
    if subscription.subscription_status is Sub.CANCELED:
        return
    for invoice in await open_invoices_of(session, subscription.id):
        if await repository.unsettled_attempt(session, invoice.id) is None:
            invoice.next_payment_attempt = now


async def cancel_subscription(
    session: AsyncSession, subscription: Subscription, body: CancelBody, *, now: datetime
) -> Subscription:
    """Cancel at the end of the paid period, or now: then no more attempts on its open
    invoices, and a final invoice (`invoice_now`) for the period so far, crediting the
    unused time to the customer's balance with `prorate`."""
    if subscription.subscription_status in (Sub.CANCELED, Sub.INCOMPLETE_EXPIRED):
        raise InvalidStatus(f"the subscription is already {subscription.status}", field="status")
    plan = await get_plan(session, subscription.plan_id)
    subscription.cancellation_reason = body.reason
    if body.at_period_end:
        subscription.cancel_at_period_end = True
        events.subscription_event(
            session,
            events.SUBSCRIPTION_UPDATED,
            subscription,
            plan,
            previous_attributes={"cancel_at_period_end": False},
        )
        return subscription
    credit = cancellation_credit(subscription, plan, now=now) if body.prorate else None
    await close_subscription(
        session, subscription, plan, at=now, credit=credit, invoice_now=body.invoice_now
    )
    return subscription


async def close_subscription(
    session: AsyncSession,
    subscription: Subscription,
    plan: Plan,
    *,
    at: datetime,
    credit: InvoiceLine | None = None,
    invoice_now: bool = True,
) -> Invoice | None:
    """End the subscription at `at` (its period's end, or a cancel now) and bill what its
    last period left unbilled; `invoice_now` false waives the usage and pending items."""
    final_period = (subscription.current_period_start, at)
    await end_subscription(session, subscription, plan, at=at)
    usage: list[InvoiceLine] = []
    pending: list[InvoiceLine] = []
    if invoice_now:
        usage = await metered_lines(session, subscription, final_period, final=True)
        pending = [
            line
            for line in await pending_lines(session, subscription.id)
            if line.currency == plan.currency
        ]
    if credit is None and not pending and not any(line.quantity for line in usage):
        return None
    return await open_invoice(
        session,
        subscription,
        reason=FINAL_REASON,
        currency=plan.currency,
        issued_at=at,
        new_lines=[*pending, *([credit] if credit is not None else []), *usage],
        period=final_period,
        cycle_key=final_key(subscription),
        collect=subscription.payment_method_id is not None,
        with_pending=False,  # read above: they decide whether there is anything to bill
    )


async def end_subscription(
    session: AsyncSession, subscription: Subscription, plan: Plan, *, at: datetime
) -> None:
    """Canceled for good: open invoices get no more attempts (a final invoice opened after
    this is charged as usual; see `close_subscription`)."""
    previous = move(subscription, Sub.CANCELED)
    subscription.canceled_at = subscription.canceled_at or at
    subscription.ended_at = at
    for invoice in await open_invoices_of(session, subscription.id):
        invoice.next_payment_attempt = None
    events.subscription_event(
        session,
        events.SUBSCRIPTION_CANCELED,
        subscription,
        plan,
        previous_attributes={"status": previous.value},
    )
