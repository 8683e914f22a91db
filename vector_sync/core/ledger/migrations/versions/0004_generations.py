"""Collection generations: the physical Qdrant collections behind each configured name
(the serving one, one being built after a model or chunker change, retired ones kept for
rollback), with the settings each was built with and the build's progress.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("collection", sa.String(), nullable=False),
        sa.Column("physical", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("switched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retire_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("documents_done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("documents_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("chunks_embedded", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("chunks_reused", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("seconds", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('building', 'serving', 'retired', 'switching')",
                           name="ck_generations_state"),
        sa.PrimaryKeyConstraint("collection", "physical"),
    )


def downgrade() -> None:
    op.drop_table("generations")
