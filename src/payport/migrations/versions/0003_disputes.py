"""disputes and money moved outside payport: the open dispute, transfer reversals made elsewhere

Revision ID: 0003_disputes
Revises: 0002_ledger
Create Date: 2026-11-25 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_disputes"
down_revision: str | None = "0002_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispute_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("transfer_reversed_minor", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("transfer_reversed_minor")
        batch_op.drop_column("dispute_id")
