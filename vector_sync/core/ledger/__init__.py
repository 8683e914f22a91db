"""The ledger: what Qdrant holds per (source, collection, doc_id), what it should hold, and
per-source state such as checkpoints: everything a run leaves for the next one.

- rows.py: the records (`LedgerRow`, its `Status`, `Expected`)
- ledger.py: `Ledger`, reading and writing them (`open_ledger` for a config's state)
- db.py: the tables, the engines for SQLite and PostgreSQL, the upsert statements
- schema.py: the schema revision, migrated on open by the Alembic scripts in migrations/
- outages.py: a PostgreSQL server briefly unreachable is waited out (`LedgerUnavailable`
  once the window is over)
"""

from __future__ import annotations

from vector_sync.core.ledger.ledger import Ledger, open_ledger
from vector_sync.core.ledger.outages import LedgerUnavailable
from vector_sync.core.ledger.rows import STATUSES, Expected, LedgerRow, Status
from vector_sync.core.ledger.schema import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    MigrationFailed,
    SchemaNotCurrent,
)

__all__ = [
    "HEAD_REVISION", "MIGRATIONS_DIR", "STATUSES", "Expected", "Ledger", "LedgerRow",
    "LedgerUnavailable", "MigrationFailed", "SchemaNotCurrent", "Status", "open_ledger",
]
