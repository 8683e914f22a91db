"""The events of one collection's document transitions, built by the apply stage next to the
ledger rows they describe (and written in the same transaction).

An event's id digests the document's ledger row before the transition (status, hashes,
attempts, when it was last attempted) and the state after it: a run that repeats a
transition the ledger never recorded (it was killed before) builds the same id, while the
same content synced again later (an edit undone) is a new transition with a new id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vector_sync.core.events.cloudevents import (
    DELETED,
    FAILED,
    GIVEN_UP,
    SYNCED,
    Event,
    iso,
    make,
)
from vector_sync.core.hashing import point_id
from vector_sync.core.ledger.rows import LedgerRow

if TYPE_CHECKING:
    from vector_sync.core.pipeline.rows import Change
    from vector_sync.core.store import QdrantStore

log = logging.getLogger(__name__)


def _before(row: LedgerRow | None) -> tuple[object, ...]:
    if row is None:
        return ("none",)
    return (row.status, row.content_hash, row.payload_hash, row.chunk_count, row.attempts,
            row.last_attempt_at.isoformat() if row.last_attempt_at else None)


class DocumentEvents:
    """Builds the document events of one (source, collection)."""

    def __init__(self, source: str, collection: str, now: Callable[[], datetime]) -> None:
        self.source, self.collection, self.now = source, collection, now

    def _event(self, type_: str, doc_id: str, previous: LedgerRow | None,
               data: dict[str, Any], *after: object) -> Event:
        return make(type_, self.source, self.collection, f"{self.collection}/{doc_id}",
                    self.now(), {"source": self.source, "collection": self.collection,
                                 "doc_id": doc_id, **data}, *_before(previous), *after)

    def synced(self, doc_id: str, action: str, previous: LedgerRow | None, row: LedgerRow,
               embedded: int, reused: int) -> Event:
        """`action`: added, updated, payload_updated."""
        return self._event(SYNCED, doc_id, previous, {
            "action": action, "chunks_embedded": embedded, "chunks_reused": reused,
            "points": row.chunk_count, "content_hash": row.content_hash,
            "source_version": row.source_version,
        }, action, row.content_hash, row.payload_hash, row.chunk_count)

    def deleted(self, doc_id: str, previous: LedgerRow | None, points_deleted: int) -> Event:
        return self._event(DELETED, doc_id, previous, {"points_deleted": points_deleted},
                           "deleted")

    def failed(self, doc_id: str, previous: LedgerRow | None, row: LedgerRow) -> Event | None:
        """`failed` while a retry is due; `given_up` once the retries are spent; None for a
        document given up before that failed again (a sync still reads it: nothing new)."""
        given_up = row.next_attempt_at is None
        if given_up and previous is not None and previous.status == "failed" \
                and previous.next_attempt_at is None:
            return None
        return self._event(GIVEN_UP if given_up else FAILED, doc_id, previous, {
            "error_code": row.error_code, "error": row.last_error, "attempts": row.attempts,
            "next_retry_at": iso(row.next_attempt_at) if row.next_attempt_at else None,
        }, "failed", row.attempts, row.error_code)

    def held_texts(self, store: QdrantStore, vector_version: str | None,
                   changes: Sequence[Change], rows: dict[str, LedgerRow]) -> dict[str, set[str]]:
        """doc_id -> chunk texts its points hold now (read before they are overwritten), for
        edited documents of several chunks embedded by the current model: what a `synced`
        event counts as reused (the embed stage reused their vectors by the same rule). A
        read that fails counts nothing reused."""
        held: dict[str, set[str]] = {}
        try:
            for change in changes:
                previous = rows.get(change.doc_id)
                if change.action == "updated" and len(change.chunks or ()) > 1 and previous \
                        and previous.vector_version == vector_version:
                    ids = [point_id(self.source, change.doc_id, i)
                           for i in range(previous.chunk_count)]
                    held[change.doc_id] = {text for text, _ in store.chunks(
                        self.collection, ids, with_vectors=False)}
        except Exception as error:  # noqa: BLE001 - only an event's figure depends on it
            log.warning("cannot read back chunk texts for sync events: %s", error)
        return held

    def group_synced(self, changes: Sequence[Change], rows: Sequence[LedgerRow],
                     previous: dict[str, LedgerRow], held: dict[str, set[str]]) -> list[Event]:
        """The `synced` events of a group of upserted documents."""
        events = []
        for change, row in zip(changes, rows, strict=True):
            texts = held.get(change.doc_id, set())
            reused = sum(text in texts for text in change.chunks or ())
            events.append(self.synced(change.doc_id, change.action, previous.get(change.doc_id),
                                      row, row.chunk_count - reused, reused))
        return events
