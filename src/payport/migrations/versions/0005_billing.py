"""billing: plans, subscriptions, invoices and their lines, payment attempts, test clocks,
gap-free invoice number sequences

Revision ID: 0005_billing
Revises: 0003_disputes
Create Date: 2026-12-01 18:15:07.051463
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import payport.db

revision: str = "0005_billing"
down_revision: str | None = "0003_disputes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_invoice_sequences",
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_billing_invoice_sequences")),
    )
    op.create_table(
        "billing_plans",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("tier", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billing_cycle", sa.String(length=16), nullable=False),
        sa.Column("trial_days", sa.Integer(), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_plans")),
    )
    with op.batch_alter_table("billing_plans", schema=None) as batch_op:
        batch_op.create_index("ix_billing_plans_created_at_id", ["created_at", "id"], unique=False)

    op.create_table(
        "billing_test_clocks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("frozen_time", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_test_clocks")),
    )
    op.create_table(
        "billing_subscriptions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_customer_id", sa.String(length=255), nullable=True),
        sa.Column("payment_method_id", sa.String(length=255), nullable=True),
        sa.Column("test_clock_id", sa.String(length=64), nullable=True),
        sa.Column("billing_cycle_anchor", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("period_index", sa.Integer(), nullable=False),
        sa.Column("current_period_start", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("current_period_end", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("trial_end", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("canceled_at", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancellation_reason", sa.Text(), nullable=True),
        sa.Column("latest_invoice_id", sa.String(length=64), nullable=True),
        sa.Column("started_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["billing_plans.id"],
            name=op.f("fk_billing_subscriptions_plan_id_billing_plans"),
        ),
        sa.ForeignKeyConstraint(
            ["test_clock_id"],
            ["billing_test_clocks.id"],
            name=op.f("fk_billing_subscriptions_test_clock_id_billing_test_clocks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_subscriptions")),
    )
    with op.batch_alter_table("billing_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_billing_subscriptions_status_period_end",
            ["status", "current_period_end"],
            unique=False,
        )
        batch_op.create_index(
            "ix_billing_subscriptions_test_clock_id", ["test_clock_id"], unique=False
        )
        batch_op.create_index("ix_billing_subscriptions_user_id", ["user_id"], unique=False)

    op.create_table(
        "billing_invoices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("billing_reason", sa.String(length=32), nullable=False),
        sa.Column("cycle_key", sa.String(length=128), nullable=True),
        sa.Column("period_start", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("period_end", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("subtotal_minor", sa.BigInteger(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("starting_balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("ending_balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_due_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_payment_attempt", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("issued_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_at", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["billing_subscriptions.id"],
            name=op.f("fk_billing_invoices_subscription_id_billing_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_invoices")),
        sa.UniqueConstraint("cycle_key", name=op.f("uq_billing_invoices_cycle_key")),
        sa.UniqueConstraint("number", name=op.f("uq_billing_invoices_number")),
    )
    with op.batch_alter_table("billing_invoices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_billing_invoices_status_next_attempt",
            ["status", "next_payment_attempt"],
            unique=False,
        )
        batch_op.create_index(
            "ix_billing_invoices_subscription_id", ["subscription_id"], unique=False
        )
        batch_op.create_index("ix_billing_invoices_user_id", ["user_id"], unique=False)

    op.create_table(
        "billing_invoice_lines",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("subscription_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_start", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("period_end", payport.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["billing_invoices.id"],
            name=op.f("fk_billing_invoice_lines_invoice_id_billing_invoices"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["billing_subscriptions.id"],
            name=op.f("fk_billing_invoice_lines_subscription_id_billing_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_invoice_lines")),
    )
    with op.batch_alter_table("billing_invoice_lines", schema=None) as batch_op:
        batch_op.create_index("ix_billing_invoice_lines_invoice_id", ["invoice_id"], unique=False)
        batch_op.create_index(
            "ix_billing_invoice_lines_pending", ["subscription_id", "invoice_id"], unique=False
        )

    op.create_table(
        "billing_payment_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payment_method_id", sa.String(length=255), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("decline_code", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("attempted_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", payport.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["billing_invoices.id"],
            name=op.f("fk_billing_payment_attempts_invoice_id_billing_invoices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_payment_attempts")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_billing_payment_attempts_idempotency_key")
        ),
    )
    with op.batch_alter_table("billing_payment_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_billing_payment_attempts_invoice_number", ["invoice_id", "number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_payment_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_payment_attempts_invoice_number")

    op.drop_table("billing_payment_attempts")
    with op.batch_alter_table("billing_invoice_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_invoice_lines_pending")
        batch_op.drop_index("ix_billing_invoice_lines_invoice_id")

    op.drop_table("billing_invoice_lines")
    with op.batch_alter_table("billing_invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_invoices_user_id")
        batch_op.drop_index("ix_billing_invoices_subscription_id")
        batch_op.drop_index("ix_billing_invoices_status_next_attempt")

    op.drop_table("billing_invoices")
    with op.batch_alter_table("billing_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_subscriptions_user_id")
        batch_op.drop_index("ix_billing_subscriptions_test_clock_id")
        batch_op.drop_index("ix_billing_subscriptions_status_period_end")

    op.drop_table("billing_subscriptions")
    op.drop_table("billing_test_clocks")
    with op.batch_alter_table("billing_plans", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_plans_created_at_id")

    op.drop_table("billing_plans")
    op.drop_table("billing_invoice_sequences")
