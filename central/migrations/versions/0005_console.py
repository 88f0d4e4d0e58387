"""console: accounts, memberships, invitation/reset tokens, login failures, audit log; organisations' and
points' administrative details, catalogue prices, statements paid, scans made in the console

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("is_operator", sa.Boolean(), nullable=False, server_default="0"),
        sa.Column("session_version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("password_changed_at", TS, nullable=True),
        sa.Column("disabled_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "memberships",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_memberships_user_id_users"),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name="fk_memberships_organisation_id_organisations"
        ),
        sa.PrimaryKeyConstraint("user_id", "organisation_id", name="pk_memberships"),
    )
    op.create_index("ix_memberships_organisation_id", "memberships", ["organisation_id"])
    op.create_table(
        "account_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=10), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name="fk_account_tokens_organisation_id_organisations"
        ),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_account_tokens_created_by_users"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_account_tokens"),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_key_at", "login_failures", ["key", "at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_audit_log_user_id_users"),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name="fk_audit_log_organisation_id_organisations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_organisation_id", "audit_log", ["organisation_id"])
    op.create_table(
        "catalogue_entries",
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.Integer(), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=True),
        sa.Column("regulated_price", sa.Boolean(), nullable=False, server_default="1"),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name="fk_catalogue_entries_organisation_id_organisations"
        ),
        sa.PrimaryKeyConstraint("organisation_id", "service", name="pk_catalogue_entries"),
    )
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(sa.Column("address", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("postcode", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("commune", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("contact_email", sa.String(length=254), nullable=True))
        batch.add_column(sa.Column("phone", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("iban", sa.String(length=34), nullable=True))
        batch.add_column(sa.Column("bic", sa.String(length=11), nullable=True))
        batch.add_column(sa.Column("bank_holder", sa.String(length=200), nullable=True))
    with op.batch_alter_table("points") as batch:
        batch.add_column(sa.Column("address", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("postcode", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("commune", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("itinerant", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("stops", sa.JSON(), nullable=True))
    with op.batch_alter_table("statements") as batch:
        batch.add_column(sa.Column("paid_at", TS, nullable=True))
    with op.batch_alter_table("scans") as batch:
        batch.alter_column("device_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_scans_user_id_users", "users", ["user_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("scans") as batch:
        batch.drop_constraint("fk_scans_user_id_users", type_="foreignkey")
        batch.drop_column("user_id")
        batch.alter_column("device_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("statements") as batch:
        batch.drop_column("paid_at")
    with op.batch_alter_table("points") as batch:
        for column in ("stops", "itinerant", "commune", "postcode", "address"):
            batch.drop_column(column)
    with op.batch_alter_table("organisations") as batch:
        for column in ("bank_holder", "bic", "iban", "phone", "contact_email", "commune", "postcode", "address"):
            batch.drop_column(column)
    for table in ("catalogue_entries", "audit_log", "login_failures", "account_tokens", "memberships", "users"):
        op.drop_table(table)
