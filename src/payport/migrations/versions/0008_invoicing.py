"""invoicing: refunds with approval

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


def downgrade() -> None:
    op.drop_index("ix_refunds_status_created_at", table_name="refunds")
    op.drop_index("ix_refunds_payment_id_status", table_name="refunds")
    op.drop_table("refunds")
