"""Usage records and the metered prices plans charge for them (integer quantities)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from payport.db import Base, BigIntPK, UTCDateTime, utcnow


class Aggregation(StrEnum):
    """How a period's records become the billed quantity (Stripe's meter aggregations)."""

    SUM = "sum"
    MAX = "max"
    COUNT = "count"
    LAST = "last"


class UsageRecord(Base):
    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)  # the caller's id
    subscription_id: Mapped[str] = mapped_column(String(64), ForeignKey("billing_subscriptions.id"))
    metric: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(BigInteger)
    # The subscription's clock time (a test clock's in the sandbox): decides the period.
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index(
            "ix_usage_records_subscription_metric_time", "subscription_id", "metric", "recorded_at"
        ),
    )


class MeteredPrice(Base):
    """A plan's price per unit of one metric, charged in arrears on the next cycle invoice."""

    __tablename__ = "billing_metered_prices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64), ForeignKey("billing_plans.id"))
    metric: Mapped[str] = mapped_column(String(64))
    aggregation: Mapped[str] = mapped_column(String(8))
    unit_amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("plan_id", "metric"),)
