"""sandbox: a partial index on undelivered webhook deliveries, so claiming the due ones reads only those

Revision ID: 0014_pending_indexes
Revises: 0013_usage_rollups
Create Date: 2026-12-02 02:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_pending_indexes"
down_revision: str | None = "0013_usage_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_sandbox_webhook_deliveries_undelivered",
        "sandbox_webhook_deliveries",
        ["id"],
        postgresql_where=sa.text("delivered_at IS NULL"),
        sqlite_where=sa.text("delivered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_sandbox_webhook_deliveries_undelivered", table_name="sandbox_webhook_deliveries"
    )
