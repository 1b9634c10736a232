"""invoices: paid out of band; payment attempts keep the provider customer they charge

Revision ID: 0011_invoice_payments
Revises: 0009_billing_more
Create Date: 2026-12-01 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_invoice_payments"
down_revision: str | None = "0010_refund_reversals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("billing_invoices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("paid_out_of_band", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("billing_payment_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_customer_id", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("billing_payment_attempts", schema=None) as batch_op:
        batch_op.drop_column("provider_customer_id")
    with op.batch_alter_table("billing_invoices", schema=None) as batch_op:
        batch_op.drop_column("paid_out_of_band")
