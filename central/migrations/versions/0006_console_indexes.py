"""console: indexes of the dashboard (per organisation and national scans per month, service and funder)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Covering indexes: the dashboard's GROUP BY queries read them alone, never the scans table (1 M rows and
    # more). ``service_month`` is set only on accepted and flagged scans, so "IS NOT NULL" replaces a status test.
    op.create_index("ix_scans_org_service_month", "scans", ["organisation_id", "service_month", "service",
                                                            "commanditaire_id"])  # fmt: skip
    op.create_index("ix_scans_service_month_funder", "scans", ["service_month", "commanditaire_id"])


def downgrade() -> None:
    op.drop_index("ix_scans_service_month_funder", table_name="scans")
    op.drop_index("ix_scans_org_service_month", table_name="scans")
