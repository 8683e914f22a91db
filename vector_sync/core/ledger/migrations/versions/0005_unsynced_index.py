"""A partial index of the ledger's rows not fully synced (failed, pending, stale, or synced
without a version hint), by source: a sync that trusts its source's history instead of
listing it reads those documents, found through it without reading the others. Partial, so
its size follows those rows, not the ledger's.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

# as in the ledger's table definition (core/ledger/db.py); a migration keeps its own copy
UNSYNCED = text("(status != 'synced' OR source_version IS NULL)")

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ledger_unsynced", "ledger", ["source"], sqlite_where=UNSYNCED,
                    postgresql_where=UNSYNCED)


def downgrade() -> None:
    op.drop_index("ix_ledger_unsynced", table_name="ledger")
