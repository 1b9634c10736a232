"""Plan and quantity changes, prorated to the second, and the credit for a cancellation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.invoices import cycle_key, open_invoice, plan_line
from payport.billing.models import InvoiceLine, Plan, Subscription
from payport.billing.periods import period_bounds
from payport.billing.proration import prorate
from payport.billing.schemas import ProrationBehavior, SubscriptionUpdateBody
from payport.billing.states import SubscriptionStatus
from payport.errors import InvalidStatus

Sub = SubscriptionStatus
# Prorations credit time that was paid for; nothing was paid in these states.
_PRORATING = frozenset({Sub.ACTIVE, Sub.PAST_DUE})


async def change_price(
    session: AsyncSession,
    subscription: Subscription,
    old_plan: Plan,
    plan: Plan,
    quantity: int,
    body: SubscriptionUpdateBody,
    *,
    now: datetime,
) -> None:
    """Switch to `plan` x `quantity` now; credit and charge the rest of the period."""
    if plan.billing_cycle != old_plan.billing_cycle:
        status = subscription.subscription_status
        if status in _PRORATING:
            await _switch_cycle(session, subscription, old_plan, plan, quantity, body, now=now)
            return
        if status is not Sub.TRIALING:  # a trial's first period starts from its end anyway
            raise InvalidStatus(
                f"the billing cycle cannot change while the subscription is {status.value}",
                field="status",
            )
    behavior = body.proration_behavior
    prorating = (
        behavior is not ProrationBehavior.NONE
        and subscription.subscription_status in _PRORATING
        and subscription.current_period_start <= now < subscription.current_period_end
    )
    if prorating:
        period = (subscription.current_period_start, subscription.current_period_end)
        lines = prorate(
            old_amount_minor=old_plan.amount_minor * subscription.quantity,
            new_amount_minor=plan.amount_minor * quantity,
            period_start=period[0],
            period_end=period[1],
            changed_at=now,
        )
        for amount, description, line_plan, line_quantity in (
            (lines.credit_minor, "Unused time on", old_plan, subscription.quantity),
            (lines.charge_minor, "Remaining time on", plan, quantity),
        ):
            if amount:
                session.add(
                    InvoiceLine(
                        subscription_id=subscription.id,
                        kind="proration",
                        description=f"{description} {line_quantity} x {line_plan.name}",
                        plan_id=line_plan.id,
                        quantity=line_quantity,
                        amount_minor=amount,
                        currency=plan.currency,
                        period_start=now,
                        period_end=period[1],
                    )
                )
        await session.flush()
    subscription.plan_id = plan.id
    subscription.quantity = quantity
    if prorating and behavior is ProrationBehavior.ALWAYS_INVOICE:
        await open_invoice(
            session,
            subscription,
            reason="subscription_update",
            currency=plan.currency,
            issued_at=now,
            new_lines=[],
            collect=subscription.payment_method_id is not None,
        )


async def _switch_cycle(
    session: AsyncSession,
    subscription: Subscription,
    old_plan: Plan,
    plan: Plan,
    quantity: int,
    body: SubscriptionUpdateBody,
    *,
    now: datetime,
) -> None:
    """A new billing cycle starts now, as on Stripe: the unused time of the old one is
    credited and the first new period invoiced and charged at once."""
    lines: list[InvoiceLine] = []
    start, end = subscription.current_period_start, subscription.current_period_end
    if body.proration_behavior is not ProrationBehavior.NONE and start <= now < end:
        credit = unused_time_line(subscription, old_plan, now=now)
        if credit is not None:
            lines.append(credit)
    subscription.plan_id, subscription.quantity = plan.id, quantity
    subscription.billing_cycle_anchor, subscription.period_index = now, 0
    period = period_bounds(now, plan.cycle, 0)
    subscription.current_period_start, subscription.current_period_end = period
    await open_invoice(
        session,
        subscription,
        reason="subscription_update",
        currency=plan.currency,
        issued_at=now,
        new_lines=[*lines, plan_line(plan, quantity, period)],
        period=period,
        cycle_key=cycle_key(subscription, 0),
        collect=subscription.payment_method_id is not None,
    )


def unused_time_line(
    subscription: Subscription, plan: Plan, *, now: datetime
) -> InvoiceLine | None:
    """The credit for the rest of the current period at `plan`'s price (None: nothing left)."""
    start, end = subscription.current_period_start, subscription.current_period_end
    lines = prorate(
        old_amount_minor=plan.amount_minor * subscription.quantity,
        new_amount_minor=0,
        period_start=start,
        period_end=end,
        changed_at=now,
    )
    if not lines.credit_minor:
        return None
    return InvoiceLine(
        kind="proration",
        description=f"Unused time on {subscription.quantity} x {plan.name}",
        plan_id=plan.id,
        quantity=subscription.quantity,
        amount_minor=lines.credit_minor,
        currency=plan.currency,
        period_start=now,
        period_end=end,
    )


def cancellation_credit(
    subscription: Subscription, plan: Plan, *, now: datetime
) -> InvoiceLine | None:
    """The credit for the rest of a paid period when it is canceled now (the final invoice
    carries it; negative, so it adds to the customer's balance)."""
    start, end = subscription.current_period_start, subscription.current_period_end
    # Only a paid period is credited (past_due: its invoice is open and gets no more attempts).
    if subscription.subscription_status is not Sub.ACTIVE or not start <= now < end:
        return None
    return unused_time_line(subscription, plan, now=now)
