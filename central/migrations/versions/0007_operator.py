"""operator: why and when an organisation was qualified or refused, why a carnet was blocked

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(sa.Column("qualification_reason", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("qualified_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("carnets") as batch:
        batch.add_column(sa.Column("blocked_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("carnets") as batch:
        batch.drop_column("blocked_reason")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("qualified_at")
        batch.drop_column("qualification_reason")
