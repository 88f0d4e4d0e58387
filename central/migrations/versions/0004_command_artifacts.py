"""command artifacts: the file a command brings back (upload_logs, screenshot), one per command

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-18
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "command_artifacts",
        sa.Column("command_id", sa.String(length=36), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["command_id"], ["commands.id"], name="fk_command_artifacts_command_id_commands"),
        sa.PrimaryKeyConstraint("command_id", name="pk_command_artifacts"),
    )


def downgrade() -> None:
    op.drop_table("command_artifacts")
