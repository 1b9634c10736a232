"""A checkout payment per order, and the calls to the shop's services it still owes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from payport.db import Base, BigIntPK, UTCDateTime, utcnow


class CheckoutStatus(StrEnum):
    """Seed 004's statuses. INITIATED is the only one that moves, and only once."""

    INITIATED = "INITIATED"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class CheckoutPayment(Base):
    """One per order: the session the customer pays on and what came of it."""

    __tablename__ = "checkout_payments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(255), unique=True)
    user_id: Mapped[str] = mapped_column(String(255))
    user_email: Mapped[str | None] = mapped_column(String(320))
    provider: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    checkout_url: Mapped[str | None] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # JSON list of {"productId", "name", "quantity", "unit_amount"} (minor units), as ordered.
    items: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=CheckoutStatus.INITIATED.value)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    customer_email: Mapped[str | None] = mapped_column(String(320))
    failure_reason: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    @property
    def checkout_status(self) -> CheckoutStatus:
        return CheckoutStatus(self.status)


class OrderCall(Base):
    """An outgoing call to the order or inventory service (or the provider), written with the
    outcome that causes it and sent by the worker until it is answered: exactly one row per
    outcome (`call_key` is unique), retried with capped, jittered backoff."""

    __tablename__ = "checkout_order_calls"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    call_key: Mapped[str] = mapped_column(String(255), unique=True)
    order_id: Mapped[str] = mapped_column(String(255))
    payment_id: Mapped[str] = mapped_column(String(36))
    target: Mapped[str] = mapped_column(String(16))  # order | inventory | provider
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # pending → done | rejected (a 4xx answer) | given_up (attempts ran out)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_checkout_order_calls_pending",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )
