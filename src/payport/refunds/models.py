"""The refunds table: one row per requested refund; amounts in minor units."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from payport.db import Base, UTCDateTime, utcnow
from payport.refunds.states import RefundStatus


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(36), ForeignKey("payments.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)  # the caller's words
    provider_reason: Mapped[str] = mapped_column(String(32))  # one of Stripe's reasons
    provider_refund_id: Mapped[str | None] = mapped_column(String(255))
    # A refund of a released payment: the runner's share taken back first (its transfer
    # reversal), and the platform fee's share; both zero before a release.
    transfer_reversal_id: Mapped[str | None] = mapped_column(String(255))
    transfer_reversal_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    fee_refund_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    requested_by: Mapped[str | None] = mapped_column(String(255))
    approved_by: Mapped[str | None] = mapped_column(String(255))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_refunds_payment_id_status", "payment_id", "status"),
        Index("ix_refunds_status_created_at", "status", "created_at"),
    )

    @property
    def refund_status(self) -> RefundStatus:
        return RefundStatus(self.status)

    @property
    def idempotency_key(self) -> str:
        """Distinct from a revert's `refund:{payment_id}`: payment ids are UUIDs, ours `rf_…`."""
        return f"refund:{self.id}"

    @property
    def reversal_idempotency_key(self) -> str:
        """Distinct from a revert's `reverse_transfer:{payment_id}` in the same way."""
        return f"reverse_transfer:{self.id}"
