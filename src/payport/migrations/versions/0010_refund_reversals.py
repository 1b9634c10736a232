"""refunds of released payments: each refund's transfer reversal and fee share; the fee given back per payment

Revision ID: 0010_refund_reversals
Revises: 0009_billing_more
Create Date: 2026-12-01 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_refund_reversals"
down_revision: str | None = "0009_billing_more"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transfer_reversal_id", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column(
                "transfer_reversal_minor", sa.BigInteger(), server_default="0", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("fee_refund_minor", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fee_refunded_minor", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("fee_refunded_minor")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("fee_refund_minor")
        batch_op.drop_column("transfer_reversal_minor")
        batch_op.drop_column("transfer_reversal_id")
