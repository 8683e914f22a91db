"""The event outbox: sync events written in the same transaction as the ledger change they
describe, and a delivery record per sink, so each sink is drained on its own.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        # AUTOINCREMENT on SQLite: a pruned sequence number is never handed out again
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("collection", sa.String()),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_type_time", "outbox", ["type", "time"])
    op.create_table(
        "outbox_delivery",
        sa.Column("sink", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text()),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sink", "seq"),
        sa.CheckConstraint("state IN ('delivered', 'failed', 'retrying')",
                           name="ck_outbox_delivery_state"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("outbox_delivery")
    op.drop_index("ix_outbox_type_time", table_name="outbox")
    op.drop_table("outbox")
