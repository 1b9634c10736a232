"""Usage records and the metered prices plans charge for them (integer quantities)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, SmallInteger, String, UniqueConstraint
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


class UsageRollup(Base):
    """One subscription's records of one metric in one UTC hour, folded into a row.

    Written in the transaction that inserts the records, for the records that
    were really inserted, so a summary reads a row per metric and hour instead
    of every record. `first_at`/`last_at` bound the hour's records: a window
    that cuts through an hour without cutting through its records still reads
    the row; only a cut through the records reads those records themselves.
    `last_*` is the record with the greatest (recorded_at, id), the same order
    a scan of the records ranks by.
    """

    __tablename__ = "usage_rollups"

    subscription_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity_sum: Mapped[int] = mapped_column(BigInteger)
    quantity_max: Mapped[int] = mapped_column(BigInteger)
    record_count: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_quantity: Mapped[int] = mapped_column(BigInteger)


class UsageRecordCount(Base):
    """How many usage records exist, spread over a few rows so concurrent ingests rarely
    wait on one another; the total is the sum of the rows."""

    __tablename__ = "usage_record_counts"

    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger)


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
