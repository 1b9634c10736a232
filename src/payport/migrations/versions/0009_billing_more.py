"""billing: incomplete_expired fits the status column; trial_will_end notices; payment attempts found by their intent (webhooks), paid on-session

Revision ID: 0009_billing_more
Revises: 0008_invoicing
Create Date: 2026-12-01 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import payport.db

revision: str = "0009_billing_more"
down_revision: str | None = "0008_invoicing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("billing_subscriptions", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=16),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
        batch_op.add_column(
            sa.Column("trial_notice_at", payport.db.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("billing_payment_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("return_url", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_billing_payment_attempts_payment_intent_id", ["payment_intent_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_payment_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_payment_attempts_payment_intent_id")
        batch_op.drop_column("return_url")
    with op.batch_alter_table("billing_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("trial_notice_at")
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=32),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
