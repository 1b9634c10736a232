"""usage: hourly rollups and a record count, kept with the records, backfilled from existing records; indexes for the window reads of statistics

Revision ID: 0013_usage_rollups
Revises: 0009_billing_more
Create Date: 2026-12-01 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

import payport.db
from payport.usage.rollups import rebuild

revision: str = "0013_usage_rollups"
down_revision: str | None = "0011_invoice_payments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_rollups",
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("hour_start", payport.db.UTCDateTime(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("quantity_sum", sa.BigInteger(), nullable=False),
        sa.Column("quantity_max", sa.BigInteger(), nullable=False),
        sa.Column("record_count", sa.BigInteger(), nullable=False),
        sa.Column("first_at", payport.db.UTCDateTime(), nullable=False),
        sa.Column("last_at", payport.db.UTCDateTime(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_quantity", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "subscription_id", "hour_start", "metric", name=op.f("pk_usage_rollups")
        ),
    )
    op.create_table(
        "usage_record_counts",
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_usage_record_counts")),
    )
    op.create_index("ix_billing_subscriptions_started_at", "billing_subscriptions", ["started_at"])
    op.create_index("ix_billing_subscriptions_ended_at", "billing_subscriptions", ["ended_at"])
    op.create_index("ix_billing_invoices_status_paid_at", "billing_invoices", ["status", "paid_at"])
    if not context.is_offline_mode():
        # Records from before the rollups: summaries and the overall count read only rollups.
        rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_billing_invoices_status_paid_at", table_name="billing_invoices")
    op.drop_index("ix_billing_subscriptions_ended_at", table_name="billing_subscriptions")
    op.drop_index("ix_billing_subscriptions_started_at", table_name="billing_subscriptions")
    op.drop_table("usage_record_counts")
    op.drop_table("usage_rollups")
