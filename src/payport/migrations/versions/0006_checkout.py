"""checkout: one payment per shop order and the order-service calls it owes

Revision ID: 0006_checkout
Revises: 0005_billing
Create Date: 2026-12-01 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import payport.db

revision: str = "0006_checkout"
down_revision: str | None = "0005_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkout_payments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("order_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("user_email", sa.String(length=320), nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("customer_email", sa.String(length=320), nullable=True),
        sa.Column("failure_reason", sa.String(length=255), nullable=True),
        sa.Column("expires_at", payport.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", payport.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", payport.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_payments")),
        sa.UniqueConstraint("order_id", name=op.f("uq_checkout_payments_order_id")),
        sa.UniqueConstraint("session_id", name=op.f("uq_checkout_payments_session_id")),
    )
    op.create_table(
        "checkout_order_calls",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("call_key", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.String(length=255), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", payport.db.UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", payport.db.UTCDateTime(), nullable=False),
        sa.Column("done_at", payport.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_order_calls")),
        sa.UniqueConstraint("call_key", name=op.f("uq_checkout_order_calls_call_key")),
    )
    op.create_index(
        "ix_checkout_order_calls_pending",
        "checkout_order_calls",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_checkout_payments_payment_intent_id",
        "checkout_payments",
        ["payment_intent_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_checkout_payments_payment_intent_id", table_name="checkout_payments")
    op.drop_index("ix_checkout_order_calls_pending", table_name="checkout_order_calls")
    op.drop_table("checkout_order_calls")
    op.drop_table("checkout_payments")
