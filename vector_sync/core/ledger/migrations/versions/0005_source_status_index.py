"""An index of the ledger by (source, status, source_version): a sync that trusts its
source's history instead of listing it reads the documents not fully synced (failed,
pending, stale, or without a version hint), found through it without reading the others.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ledger_source_status", "ledger", ["source", "status", "source_version"])


def downgrade() -> None:
    op.drop_index("ix_ledger_source_status", table_name="ledger")
