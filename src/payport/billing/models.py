"""Billing tables: plans, subscriptions, invoices with their lines, payment attempts, clocks.

Amounts are integers in minor units. Times that belong to the billing story
(periods, attempts, invoice dates) are the subscription's clock time, which is
a test clock's frozen time in the sandbox; `created_at`/`updated_at` are wall
time, for operators.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from payport.billing.periods import BillingCycle
from payport.billing.states import InvoiceStatus, SubscriptionStatus
from payport.db import Base, BigIntPK, UTCDateTime, utcnow


class Plan(Base):
    __tablename__ = "billing_plans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    tier: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    billing_cycle: Mapped[str] = mapped_column(String(16))
    trial_days: Mapped[int] = mapped_column(Integer, default=0)
    features: Mapped[str] = mapped_column(Text, default="[]")  # JSON
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_billing_plans_created_at_id", "created_at", "id"),)

    @property
    def cycle(self) -> BillingCycle:
        return BillingCycle(self.billing_cycle)


class TestClock(Base):
    """A sandbox clock: subscriptions attached to it live at its frozen time."""

    __tablename__ = "billing_test_clocks"
    __test__ = False  # not a pytest class

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    frozen_time: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="ready")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Subscription(Base):
    __tablename__ = "billing_subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255))
    plan_id: Mapped[str] = mapped_column(String(64), ForeignKey("billing_plans.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(32))  # "incomplete_expired" needs 18
    provider_customer_id: Mapped[str | None] = mapped_column(String(255))
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    test_clock_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("billing_test_clocks.id")
    )
    billing_cycle_anchor: Mapped[datetime] = mapped_column(UTCDateTime())
    # Periods started since the anchor; the current period is number `period_index`.
    period_index: Mapped[int] = mapped_column(Integer, default=0)
    current_period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    current_period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When `subscription.trial_will_end` is due (3 days before trial_end); cleared once sent.
    trial_notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    latest_invoice_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_billing_subscriptions_user_id", "user_id"),
        Index("ix_billing_subscriptions_status_period_end", "status", "current_period_end"),
        Index("ix_billing_subscriptions_test_clock_id", "test_clock_id"),
        # Statistics: subscriptions new and churned in a window.
        Index("ix_billing_subscriptions_started_at", "started_at"),
        Index("ix_billing_subscriptions_ended_at", "ended_at"),
    )

    @property
    def subscription_status(self) -> SubscriptionStatus:
        return SubscriptionStatus(self.status)


class Invoice(Base):
    """A bill for a subscription; issue-8 features (PDFs, manual invoices) build on it."""

    __tablename__ = "billing_invoices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    subscription_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("billing_subscriptions.id")
    )
    user_id: Mapped[str] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=InvoiceStatus.DRAFT.value)
    # subscription_create | subscription_cycle | subscription_update | manual
    billing_reason: Mapped[str] = mapped_column(String(32))
    # One cycle invoice per subscription period: a renewal run twice creates one invoice.
    cycle_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    subtotal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    total_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # Customer credit balance before and after this invoice (positive: credit to the customer).
    starting_balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    ending_balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_due_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_payment_attempt: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    # Paid outside payport (cash, a bank transfer): marked paid, nothing charged.
    paid_out_of_band: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_billing_invoices_subscription_id", "subscription_id"),
        Index("ix_billing_invoices_user_id", "user_id"),
        Index("ix_billing_invoices_status_next_attempt", "status", "next_payment_attempt"),
        Index("ix_billing_invoices_status_paid_at", "status", "paid_at"),  # revenue statistics
    )

    @property
    def invoice_status(self) -> InvoiceStatus:
        return InvoiceStatus(self.status)


class InvoiceLine(Base):
    """A line on an invoice; with no invoice yet it is a pending item for the next one."""

    __tablename__ = "billing_invoice_lines"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("billing_invoices.id"))
    subscription_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("billing_subscriptions.id")
    )
    kind: Mapped[str] = mapped_column(String(16))  # plan | proration | usage | one_off | tax
    description: Mapped[str] = mapped_column(Text)
    plan_id: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # signed: credits are negative
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_billing_invoice_lines_invoice_id", "invoice_id"),
        Index("ix_billing_invoice_lines_pending", "subscription_id", "invoice_id"),
    )


class PaymentAttempt(Base):
    """One try at collecting an invoice; its key is the provider call's idempotency key."""

    __tablename__ = "billing_payment_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(String(64), ForeignKey("billing_invoices.id"))
    number: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    # pending (call unanswered) | requires_action | processing (a webhook settles it)
    # | succeeded | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    # The provider's customer the method belongs to, kept so a resumed call repeats the
    # same request (a one-off invoice has no subscription to read it from).
    provider_customer_id: Mapped[str | None] = mapped_column(String(255))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    # Set for a payment the customer made while present (3-D Secure possible): a resumed
    # call must repeat the same request.
    return_url: Mapped[str | None] = mapped_column(Text)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    decline_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_billing_payment_attempts_invoice_number", "invoice_id", "number"),
        Index("ix_billing_payment_attempts_payment_intent_id", "payment_intent_id"),
    )


class InvoiceSequence(Base):
    """The last number used per prefix; taken under a row lock, so numbers have no gaps."""

    __tablename__ = "billing_invoice_sequences"

    prefix: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)
