"""What the billing API returns and its events carry: minor units, ISO 8601 UTC times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from payport.billing.models import Invoice, InvoiceLine, PaymentAttempt, Plan, Subscription
from payport.billing.models import TestClock as TestClockRow
from payport.money import major_json_number


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_view(plan: Plan) -> dict[str, Any]:
    return {
        "object": "plan",
        "plan_id": plan.id,
        "name": plan.name,
        "tier": plan.tier,
        "description": plan.description,
        "price": major_json_number(plan.amount_minor, plan.currency),
        "price_minor": plan.amount_minor,
        "currency": plan.currency,
        "billing_cycle": plan.billing_cycle,
        "trial_days": plan.trial_days,
        "features": orjson.loads(plan.features),
        "active": plan.active,
        "created_at": iso(plan.created_at),
    }


def subscription_view(
    subscription: Subscription, plan: Plan, latest_invoice: Invoice | None = None
) -> dict[str, Any]:
    return {
        "object": "subscription",
        "subscription_id": subscription.id,
        "user_id": subscription.user_id,
        "plan_id": subscription.plan_id,
        "tier": plan.tier,
        "billing_cycle": plan.billing_cycle,
        "status": subscription.status,
        "quantity": subscription.quantity,
        "currency": plan.currency,
        "amount_minor": plan.amount_minor * subscription.quantity,
        "customer_id": subscription.provider_customer_id,
        "payment_method_id": subscription.payment_method_id,
        "test_clock": subscription.test_clock_id,
        "started_at": iso(subscription.started_at),
        "current_period_start": iso(subscription.current_period_start),
        "current_period_end": iso(subscription.current_period_end),
        "trial_end": iso(subscription.trial_end),
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "canceled_at": iso(subscription.canceled_at),
        "ended_at": iso(subscription.ended_at),
        "cancellation_reason": subscription.cancellation_reason,
        "latest_invoice": invoice_summary(latest_invoice) if latest_invoice else None,
    }


def invoice_summary(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice_id": invoice.id,
        "number": invoice.number,
        "status": invoice.status,
        "billing_reason": invoice.billing_reason,
        "subscription_id": invoice.subscription_id,
        "user_id": invoice.user_id,
        "currency": invoice.currency,
        "period_start": iso(invoice.period_start),
        "period_end": iso(invoice.period_end),
        "subtotal_minor": invoice.subtotal_minor,
        "total_minor": invoice.total_minor,
        "starting_balance_minor": invoice.starting_balance_minor,
        "ending_balance_minor": invoice.ending_balance_minor,
        "amount_due_minor": invoice.amount_due_minor,
        "amount_paid_minor": invoice.amount_paid_minor,
        "amount_remaining_minor": (
            0 if invoice.status == "paid" else invoice.amount_due_minor - invoice.amount_paid_minor
        ),
        "attempt_count": invoice.attempt_count,
        "next_payment_attempt": iso(invoice.next_payment_attempt),
        "payment_intent_id": invoice.payment_intent_id,
        "paid_out_of_band": bool(invoice.paid_out_of_band),
        "issued_at": iso(invoice.issued_at),
        "paid_at": iso(invoice.paid_at),
    }


def invoice_view(
    invoice: Invoice, lines: Sequence[InvoiceLine], attempts: Sequence[PaymentAttempt]
) -> dict[str, Any]:
    return invoice_summary(invoice) | {
        "object": "invoice",
        "lines": [line_view(line) for line in lines],
        "attempts": [attempt_view(attempt) for attempt in attempts],
    }


def line_view(line: InvoiceLine) -> dict[str, Any]:
    return {
        "kind": line.kind,
        "description": line.description,
        "plan_id": line.plan_id,
        "quantity": line.quantity,
        "amount_minor": line.amount_minor,
        "currency": line.currency,
        "proration": line.kind == "proration",
        "period_start": iso(line.period_start),
        "period_end": iso(line.period_end),
    }


def attempt_view(attempt: PaymentAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "status": attempt.status,
        "amount_minor": attempt.amount_minor,
        "payment_method_id": attempt.payment_method_id,
        "payment_intent_id": attempt.payment_intent_id,
        "failure_code": attempt.failure_code,
        "decline_code": attempt.decline_code,
        "failure_message": attempt.failure_message,
        "attempted_at": iso(attempt.attempted_at),
    }


def payment_error(attempt: PaymentAttempt) -> dict[str, Any] | None:
    """Why an attempt failed, in Stripe's `last_payment_error` terms; None unless it failed."""
    if attempt.status != "failed":
        return None
    return {
        "code": attempt.failure_code,
        "decline_code": attempt.decline_code,
        "message": attempt.failure_message,
    }


def clock_view(clock: TestClockRow) -> dict[str, Any]:
    return {
        "object": "test_helpers.test_clock",
        "id": clock.id,
        "name": clock.name,
        "frozen_time": iso(clock.frozen_time),
        "frozen_time_unix": int(clock.frozen_time.timestamp()),
        "status": clock.status,
    }
