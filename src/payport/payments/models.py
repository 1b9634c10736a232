"""The payment record: one per order, holding what the provider said and where the money is."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from payport.db import Base, UTCDateTime, utcnow
from payport.money import Money
from payport.payments.states import PaymentStatus


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_user_id: Mapped[str | None] = mapped_column(String(255))
    provider_customer_id: Mapped[str | None] = mapped_column(String(255))
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=PaymentStatus.INITIATING.value)
    correlation_id: Mapped[str | None] = mapped_column(String(255))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    charge_id: Mapped[str | None] = mapped_column(String(255))
    next_action_url: Mapped[str | None] = mapped_column(Text)
    return_url: Mapped[str | None] = mapped_column(Text)
    amount_captured_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    runner_id: Mapped[str | None] = mapped_column(String(255))
    runner_account_id: Mapped[str | None] = mapped_column(String(255))
    fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    transfer_id: Mapped[str | None] = mapped_column(String(255))
    transfer_amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_id: Mapped[str | None] = mapped_column(String(255))
    amount_refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    transfer_reversal_id: Mapped[str | None] = mapped_column(String(255))
    revert_reason: Mapped[str | None] = mapped_column(String(64))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    disputed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The dispute that flagged the payment: one `payment.disputed` per dispute id.
    dispute_id: Mapped[str | None] = mapped_column(String(255))
    # Reversed from the runner's transfer before any revert: by refunds (counted when sent,
    # like `amount_refunded_minor`) and by someone other than payport (the dashboard).
    transfer_reversed_minor: Mapped[int | None] = mapped_column(BigInteger)
    # The platform fee's share of refunds after the release, given back by the platform.
    fee_refunded_minor: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_payments_customer_user_id", "customer_user_id"),
        Index("ix_payments_runner_id", "runner_id"),
        Index("ix_payments_status_updated_at", "status", "updated_at"),
        Index("ix_payments_created_at_id", "created_at", "id"),
    )

    @property
    def payment_status(self) -> PaymentStatus:
        return PaymentStatus(self.status)

    @property
    def money(self) -> Money:
        return Money(self.amount_minor, self.currency)

    @property
    def captured(self) -> bool:
        return self.amount_captured_minor > 0
