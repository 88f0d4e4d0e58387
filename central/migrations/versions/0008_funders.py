"""funders: console users of a commanditaire, and the orders they request

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "funder_memberships",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("commanditaire_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_funder_memberships_user_id_users"),
        sa.ForeignKeyConstraint(
            ["commanditaire_id"], ["commanditaires.id"], name="fk_funder_memberships_commanditaire_id_commanditaires"
        ),
        sa.PrimaryKeyConstraint("user_id", "commanditaire_id", name="pk_funder_memberships"),
    )
    op.create_index("ix_funder_memberships_commanditaire_id", "funder_memberships", ["commanditaire_id"])
    op.create_table(
        "order_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("commanditaire_id", sa.Integer(), nullable=False),
        sa.Column("carnet_size", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("millesime", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("territories", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["commanditaire_id"], ["commanditaires.id"], name="fk_order_requests_commanditaire_id_commanditaires"
        ),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_order_requests_created_by_users"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_order_requests_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_order_requests"),
    )
    op.create_index("ix_order_requests_commanditaire_id", "order_requests", ["commanditaire_id"])


def downgrade() -> None:
    op.drop_index("ix_order_requests_commanditaire_id", table_name="order_requests")
    op.drop_table("order_requests")
    op.drop_index("ix_funder_memberships_commanditaire_id", table_name="funder_memberships")
    op.drop_table("funder_memberships")
