"""fleet: desired-state generation and reports on devices, remote settings, commands, rollouts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("applied_generation", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reported", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reported_at", TS, nullable=True))
    op.create_table(
        "fleet_settings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("scope", sa.String(length=12), nullable=False),
        sa.Column("ref", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fleet_settings"),
        sa.UniqueConstraint("scope", "ref", name="uq_fleet_settings_scope_ref"),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
    )
    op.create_table(
        "commands",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("not_after", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_commands_device_id_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_commands"),
    )
    op.create_index("ix_commands_device_id", "commands", ["device_id"])


def downgrade() -> None:
    op.drop_index("ix_commands_device_id", table_name="commands")
    op.drop_table("commands")
    op.drop_table("rollouts")
    op.drop_table("fleet_settings")
    with op.batch_alter_table("devices") as batch:
        for column in ("reported_at", "reported", "applied_generation", "generation"):
            batch.drop_column(column)
