"""The ledger's records as Python values: a document's row (what Qdrant holds for it in one
collection, and how its sync went) and its expected state (what Qdrant should hold)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple, get_args

Status = Literal["pending", "synced", "stale", "failed"]
STATUSES: tuple[Status, ...] = get_args(Status)


@dataclass(slots=True)
class LedgerRow:
    source: str
    collection: str
    doc_id: str
    status: Status
    source_version: str | None = None
    content_hash: str | None = None
    payload_hash: str | None = None
    chunk_count: int = 0
    vector_version: str | None = None
    attempts: int = 0
    last_error: str | None = None
    error_code: str | None = None
    last_attempt_at: datetime | None = None
    last_synced_at: datetime | None = None
    next_attempt_at: datetime | None = None


FIELDS = tuple(f.name for f in dataclasses.fields(LedgerRow))  # the ledger table's columns
_DATETIME_FIELDS = ("last_attempt_at", "last_synced_at", "next_attempt_at")


class Expected(NamedTuple):
    """What Qdrant should hold for a document in a collection, derived from the source."""

    content_hash: str
    payload_hash: str
    chunk_count: int


def unique_in_key_order(rows: list[LedgerRow]) -> list[LedgerRow]:
    """Validated, one per key (PostgreSQL refuses to upsert a key twice in one statement),
    in key order (concurrent PostgreSQL writers then lock rows in the same order)."""
    unique: dict[tuple[str, str, str], LedgerRow] = {}
    for row in rows:
        _validate(row)
        unique[(row.source, row.collection, row.doc_id)] = row
    return [unique[key] for key in sorted(unique)]


def _validate(row: LedgerRow) -> None:
    if row.status not in STATUSES:
        raise ValueError(f"{row.doc_id!r}: status {row.status!r} is not one of {STATUSES}")
    for name in _DATETIME_FIELDS:
        value = getattr(row, name)
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{row.doc_id!r}: {name} must be timezone-aware, got {value!r}")
