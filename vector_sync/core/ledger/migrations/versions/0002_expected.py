"""The expected state: what each source says Qdrant should hold, per document and collection.

It used to live in Parquet files beside the stage hand-offs; the ledger is now the one place
for state that drives the next run. Nothing is carried over: after the upgrade, the next
sync of each source reads every document once and fills the table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "expected",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("collection", sa.String(), nullable=False),
        sa.Column("doc_id", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("payload_hash", sa.String(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "collection", "doc_id"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("expected")
