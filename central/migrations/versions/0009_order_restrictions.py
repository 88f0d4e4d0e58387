"""orders requested with every restriction, paid before activated, withdrawn drafts; carnets distributed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order_requests") as batch:
        batch.add_column(sa.Column("place_types", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("points", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("services", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("payment_reference", sa.String(length=100), nullable=True))
    with op.batch_alter_table("carnets") as batch:
        batch.add_column(sa.Column("distributed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("distributed_to", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("carnets") as batch:
        batch.drop_column("distributed_to")
        batch.drop_column("distributed_at")
    with op.batch_alter_table("order_requests") as batch:
        batch.drop_column("payment_reference")
        batch.drop_column("paid_at")
        batch.drop_column("services")
        batch.drop_column("points")
        batch.drop_column("place_types")
