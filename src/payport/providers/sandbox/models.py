"""The sandbox provider's own tables: its Stripe-shaped objects, idempotency keys and outgoing
webhooks live in the database so they survive restarts and are shared by every process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from payport.db import Base, BigIntPK, UTCDateTime, utcnow


class SandboxObject(Base):
    """One Stripe-shaped object (`pi_…`, `ch_…`, `re_…`, `tr_…`, `trr_…`, `pm_…`) as JSON."""

    __tablename__ = "sandbox_objects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SandboxIdempotencyRecord(Base):
    """The saved answer to an idempotent request; the primary key stops duplicate execution."""

    __tablename__ = "sandbox_idempotency"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    http_status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SandboxWebhookDelivery(Base):
    """An event waiting to be (or already) POSTed to payport's webhook endpoint."""

    __tablename__ = "sandbox_webhook_deliveries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)

    # Claims read the undelivered ones in id order; delivered rows pile up behind them.
    __table_args__ = (
        Index(
            "ix_sandbox_webhook_deliveries_undelivered",
            "id",
            postgresql_where=text("delivered_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL"),
        ),
    )


class SandboxState(Base):
    """Small named values the sandbox keeps across restarts (its webhook secret, …)."""

    __tablename__ = "sandbox_state"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
