"""invoicing: refunds with approval, usage records, metered prices

Revision ID: 0008_invoicing
Revises: 0006_checkout
Create Date: 2026-12-01 19:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import payport.db

revision: str = "0008_invoicing"
down_revision: str | None = "0006_checkout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("provider_reason", sa.String(length=32), nullable=False),
        sa.Column("provider_refund_id", sa.String(length=255), nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("approved_by", sa.String(length=255), nullable=True),
        sa.Column("approved_at", payport.db.UTCDateTime(), nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("processed_at", payport.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", payport.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", payport.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
    )
    op.create_index("ix_refunds_payment_id_status", "refunds", ["payment_id", "status"])
    op.create_index("ix_refunds_status_created_at", "refunds", ["status", "created_at"])
    op.create_table(
        "usage_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", payport.db.UTCDateTime(), nullable=False),
        sa.Column("created_at", payport.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["billing_subscriptions.id"],
            name=op.f("fk_usage_records_subscription_id_billing_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("event_id", name=op.f("uq_usage_records_event_id")),
    )
    op.create_index(
        "ix_usage_records_subscription_metric_time",
        "usage_records",
        ["subscription_id", "metric", "recorded_at"],
    )
    op.create_table(
        "billing_metered_prices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("aggregation", sa.String(length=8), nullable=False),
        sa.Column("unit_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", payport.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["billing_plans.id"],
            name=op.f("fk_billing_metered_prices_plan_id_billing_plans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_metered_prices")),
        sa.UniqueConstraint("plan_id", "metric", name=op.f("uq_billing_metered_prices_plan_id")),
    )


def downgrade() -> None:
    op.drop_table("billing_metered_prices")
    op.drop_index("ix_usage_records_subscription_metric_time", table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_index("ix_refunds_status_created_at", table_name="refunds")
    op.drop_index("ix_refunds_payment_id_status", table_name="refunds")
    op.drop_table("refunds")
