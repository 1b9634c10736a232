"""Tables that make delivery exactly-once in effect: inbox, outbox, local command queue, leases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from payport.db import Base, BigIntPK, UTCDateTime, utcnow


class InboxEntry(Base):
    """One row per distinct command (type + target + correlation id) and its recorded outcome."""

    __tablename__ = "command_inbox"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    command_key: Mapped[str] = mapped_column(String(600), unique=True)
    command_type: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    correlation_id: Mapped[str] = mapped_column(String(255))
    payment_id: Mapped[str | None] = mapped_column(String(36))
    # Where the first copy came from (e.g. local:12, kafka:topic:0:42): a re-delivery of the
    # same message needs no second copy of the outcome, a re-sent command does.
    source_ref: Mapped[str | None] = mapped_column(String(300))
    # processing: effects under way; waiting: answered when the provider settles; done.
    status: Mapped[str] = mapped_column(String(16), default="processing")
    outcome_event_id: Mapped[str | None] = mapped_column(String(36))
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_command_inbox_payment_status", "payment_id", "status"),)


class OutboxEvent(Base):
    """An event written with the state change it reports; the relay publishes it in seq order."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    key: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    publish_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("publish_seq IS NULL"),
            sqlite_where=text("publish_seq IS NULL"),
        ),
    )


class LocalCommand(Base):
    """The local transport's command queue: what Kafka's command topic is in production."""

    __tablename__ = "local_commands"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_local_commands_pending",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )


class WorkerLease(Base):
    """Who may run a singleton loop (local consumer, relay) until `expires_at`."""

    __tablename__ = "worker_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fencing: Mapped[int] = mapped_column(Integer, default=0)
