"""How the apply stage writes one collection's change set: into Qdrant, then into the ledger.

Each group of documents is upserted (`wait=True`) before its ledger rows say so, and a
document about to grow records its new chunk count first (write-ahead), so a crash at any
point leaves a state the next run converges from: the surplus chunk ids of a shrunk document
are always known and deleted. Qdrant errors fail the documents concerned (or, while the run
may retry the step, the step), never the run.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from vector_sync.core import faults
from vector_sync.core.batches import batched
from vector_sync.core.events.cloudevents import Event
from vector_sync.core.events.documents import DocumentEvents
from vector_sync.core.hashing import point_id
from vector_sync.core.ledger import Ledger, LedgerRow
from vector_sync.core.pipeline.backoff import retry_at
from vector_sync.core.pipeline.rows import (
    EMBEDS,
    KEEPS_POINTS,
    LEAVES,
    OPERATES,
    OUTCOMES,
    Change,
    EmbeddingRow,
)
from vector_sync.core.settings import RetryConfig
from vector_sync.core.spec import CollectionSpec
from vector_sync.core.store import (
    CollectionMismatch,
    Delete,
    DeletePayload,
    Operation,
    Point,
    QdrantStore,
    SetPayload,
)

log = logging.getLogger(__name__)

LEDGER_BATCH = 2000  # ledger-only rows (new hints, read failures) recorded at once
ROWS_WINDOW = 2000  # changes whose ledger rows are looked up in one query


class QdrantTransientError(Exception):
    """Qdrant failed a request while the run may still retry the step (RetryPolicy): the
    step fails as a whole and is re-run, instead of marking rows failed."""


@dataclass
class ApplyReport:
    counts: Counter[str] = field(default_factory=Counter)
    points_written: int = 0
    points_deleted: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (doc_id, reason)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, int]:
        return {**{k: self.counts[k] for k in OUTCOMES},
                "points_written": self.points_written, "points_deleted": self.points_deleted}


class Applier:
    """Writes one collection's change set into Qdrant, then records it in the ledger."""

    def __init__(self, store: QdrantStore | None, ledger: Ledger, source: str,
                 spec: CollectionSpec, batch_points: int = 256,
                 now: Callable[[], datetime] | None = None,
                 retry: RetryConfig | None = None, may_retry_step: bool = False,
                 unavailable: str | None = None,
                 deployment: str | None = None, events: bool = False) -> None:
        """`store` may be None for a change set that writes nothing to Qdrant.
        The ledger rows of the change set's documents are looked up a window of changes at
        a time (`with_rows`) and forgotten once applied: what is held does not grow with it.
        `may_retry_step`: a Qdrant error raises QdrantTransientError (the step is retried)
        rather than failing the documents; on the step's last attempt it is False.
        `unavailable`: why Qdrant could not be opened; every write is then marked failed.
        `deployment`: the configuration the collection belongs to (ownership.py).
        `events`: record each transition as a sync event, in its ledger row's transaction."""
        self._store, self.ledger, self.source, self.spec = store, ledger, source, spec
        self.batch_points = batch_points
        self.retry = retry or RetryConfig()
        self.may_retry_step = may_retry_step
        self.now = now or (lambda: datetime.now(UTC))
        self.rows: dict[str, LedgerRow] = {}
        self.report = ApplyReport()
        self._consecutive_errors = 0
        self._unavailable = unavailable
        self.deployment = deployment
        self.events = DocumentEvents(source, spec.name, self.now) if events else None

    @property
    def store(self) -> QdrantStore:
        if self._store is None:
            raise RuntimeError("this change set writes to Qdrant, but no store was opened")
        return self._store

    def apply(self, changes: Iterable[Change], vectors: Iterator[EmbeddingRow],
              dimension: int | None) -> ApplyReport:
        """Apply in batches: documents with new vectors (upserts), documents with only
        payload or deletion operations, and rows only the ledger has to learn about."""
        if self._store is not None and self._unavailable is None:
            try:  # never write a collection another deployment made (ownership.py)
                if dimension is not None:
                    self.store.ensure_collection(self.spec.name, dimension, self.spec.model,
                                                 self.deployment)
                elif self.store.exists(self.spec.name):
                    self.store.claim(self.spec.name, self.deployment)
            except CollectionMismatch:
                raise  # a configuration problem: fail the run, touch nothing
            except Exception as error:  # noqa: BLE001 - Qdrant unreachable: fail every row
                self._unavailable = self._qdrant_error(error)
        upserts: list[tuple[Change, list[list[float]]]] = []
        operations: list[Change] = []
        ledger_only: list[Change] = []
        upsert_points = 0
        for change in self.with_rows(changes):
            action = change.action
            points = _take_vectors(vectors, change) if action in EMBEDS else []
            if self.applied_before(change):  # by an earlier attempt of this step
                self.report.counts[action] += 1
                self.forget([change])
                continue
            if action in EMBEDS:
                if upserts and upsert_points + len(points) > self.batch_points:
                    self._write_group(upserts)
                    self.forget(c for c, _ in upserts)
                    upserts, upsert_points = [], 0
                upserts.append((change, points))
                upsert_points += len(points)
            elif action in OPERATES:
                operations.append(change)
                if len(operations) >= self.batch_points:
                    self._operate(operations)
                    self.forget(operations)
                    operations = []
            else:
                ledger_only.append(change)
                if len(ledger_only) >= LEDGER_BATCH:
                    self._record(ledger_only)
                    self.forget(ledger_only)
                    ledger_only = []
        if upserts:
            self._write_group(upserts)
        if operations:
            self._operate(operations)
        if ledger_only:
            self._record(ledger_only)
        if dimension is not None and not self.report.failures and self._unavailable is None \
                and self.store.model(self.spec.name) != self.spec.model:
            # a model change re-embeds every document: the collection now holds its vectors
            self.store.record_model(self.spec.name, self.spec.model, dimension)
        return self.report

    def with_rows(self, changes: Iterable[Change]) -> Iterator[Change]:
        """The changes, each window's ledger rows looked up first (never all at once)."""
        for window in batched(changes, ROWS_WINDOW):
            unknown = [c.doc_id for c in window if c.doc_id not in self.rows]
            if unknown:
                self.rows.update((row.doc_id, row) for row in self.ledger.rows_of(
                    self.source, self.spec.name, unknown))
            yield from window

    def forget(self, changes: Iterable[Change]) -> None:
        """Drop applied documents' rows: a change set names each document once."""
        for change in changes:
            self.rows.pop(change.doc_id, None)

    def applied_before(self, change: Change) -> bool:
        """The ledger already records this change as acknowledged by Qdrant."""
        previous = self.rows.get(change.doc_id)
        if change.action in LEAVES:
            return previous is None
        return (change.action != "failed" and previous is not None
                and previous.status == "synced"
                and previous.source_version == change.source_version
                and previous.content_hash == change.content_hash
                and previous.payload_hash == change.payload_hash)

    # rows that need no Qdrant write: new hints ("unchanged"), read failures, and documents
    # gone from the source that had no points here ("forgotten", counted as nothing)
    def _record(self, changes: list[Change]) -> None:
        failed = [c for c in changes if c.action == "failed"]
        if failed:
            self._record_failure(failed)
        forgotten = [c.doc_id for c in changes if c.action == "forgotten"]
        if forgotten:
            self.ledger.delete(self.source, self.spec.name, forgotten)
        touched = [c for c in changes if c.action == "unchanged"]
        # counted by the diff, together with the documents that were not even read
        self.ledger.upsert([self._synced_row(c, self.rows.get(c.doc_id), 0) for c in touched])

    # deletions and payload-only updates, many documents per Qdrant request
    def _operate(self, changes: list[Change]) -> None:
        if not self._guard(changes):
            return
        synced_at = _iso(self.now())
        operations: list[Operation] = []
        deleting = 0
        for change in changes:
            ids = self._ids(change.doc_id, 0, self._held(change.doc_id))
            if ids and change.action == "deleted":
                operations.append(Delete(ids))
                deleting += len(ids)
            elif ids:
                operations.extend(self._payload_operations(change, ids, synced_at))
        try:
            # deleting from a collection that does not exist is done already
            only_deletes = all(c.action == "deleted" for c in changes)
            if operations and not (only_deletes and not self.store.exists(self.spec.name)):
                self.store.batch(self.spec.name, operations)
        except Exception as error:  # noqa: BLE001 - the batch fails, the run goes on
            self._qdrant_failed(changes, error)
            return
        self._consecutive_errors = 0
        self.report.points_deleted += deleting
        gone = [c for c in changes if c.content_hash is None]
        self.ledger.delete(self.source, self.spec.name, [c.doc_id for c in gone],
                           self._deleted_events(gone))
        faults.reached("ledger.deletions_recorded")
        kept = [c for c in changes if c.content_hash is not None]
        rows = [self._synced_row(c, self.rows.get(c.doc_id), 0) for c in kept]
        events = [] if self.events is None else [
            self._deleted_events([c])[0] if c.action == "deleted" else self.events.synced(
                c.doc_id, c.action, self.rows.get(c.doc_id), row, 0, 0)
            for c, row in zip(kept, rows, strict=True)]
        self.ledger.upsert(rows, events)  # one transaction: rows and their events
        for change in changes:
            self.report.counts[change.action] += 1


    def _deleted_events(self, changes: list[Change]) -> list[Event]:
        if self.events is None:
            return []
        return [self.events.deleted(c.doc_id, self.rows.get(c.doc_id), self._held(c.doc_id))
                for c in changes]

    def _payload_operations(self, change: Change, ids: list[str],
                            synced_at: str) -> list[Operation]:
        payload = _payload(change)
        operations: list[Operation] = [SetPayload({**payload, "synced_at": synced_at}, ids)]
        # set_payload merges top-level keys: a field the document no longer has must go
        dropped = sorted({f.split(".", 1)[0] for f in self.spec.payload} - set(payload))
        if dropped:
            operations.append(DeletePayload(dropped, ids))
        return operations

    def _held(self, doc_id: str) -> int:
        """Chunk indexes below this may exist in Qdrant for the document (ledger's bound)."""
        previous = self.rows.get(doc_id)
        return previous.chunk_count if previous else 0

    def _ids(self, doc_id: str, first: int, end: int) -> list[str]:
        return [point_id(self.source, doc_id, i) for i in range(first, end)]

    # documents with new vectors, several per Qdrant request
    def _write_group(self, group: list[tuple[Change, list[list[float]]]]) -> None:
        changes = [c for c, _ in group]
        if not self._guard(changes):
            return
        synced_at = _iso(self.now())
        # write-ahead: a crash between upsert and ledger must still let the next run find
        # every chunk index that may exist, so surplus chunks are never orphaned
        growing = [self._grown_row(c, len(p)) for c, p in group
                   if len(p) > self._held(c.doc_id)]
        if growing:
            self.ledger.upsert(growing)
            self.rows.update({r.doc_id: r for r in growing})
            faults.reached("apply.write_ahead")
        held = self.events.held_texts(self.store, self.spec.vector_version, changes,
                                      self.rows) if self.events is not None else {}
        try:
            points = [p for change, vectors in group
                      for p in self._points(change, vectors, synced_at)]
            for batch in batched(points, self.batch_points):
                self.store.upsert(self.spec.name, batch)
            surplus = [i for change, vectors in group for i in self._ids(
                change.doc_id, len(vectors), self._held(change.doc_id))]
            self.store.delete(self.spec.name, surplus)
            self.report.points_deleted += len(surplus)
            faults.reached("apply.group_acknowledged")
        except Exception as error:  # noqa: BLE001 - the group fails, the run goes on
            self._qdrant_failed(changes, error)
            return
        self._consecutive_errors = 0
        self.report.points_written += len(points)
        rows = [self._synced_row(c, self.rows.get(c.doc_id), chunk_count=len(v))
                for c, v in group]
        events = [] if self.events is None else self.events.group_synced(
            changes, rows, self.rows, held)
        self.ledger.upsert(rows, events)  # one transaction: rows and their events
        faults.reached("ledger.group_synced")
        for change in changes:
            self.report.counts[change.action] += 1

    def _points(self, change: Change, vectors: list[list[float]],
                synced_at: str) -> Iterator[Point]:
        payload = _payload(change)
        for index, (text, vector) in enumerate(zip(change.chunks or (), vectors, strict=True)):
            yield Point(
                id=point_id(self.source, change.doc_id, index), vector=vector,
                payload={**payload, "source": self.source, "doc_id": change.doc_id,
                         "chunk_index": index, "chunk_count": len(vectors), "text": text,
                         "content_hash": change.content_hash, "synced_at": synced_at},
            )

    # ledger rows
    def _synced_row(self, change: Change, previous: LedgerRow | None,
                    chunk_count: int) -> LedgerRow:
        now = self.now()
        if change.action in KEEPS_POINTS and previous is not None:
            chunk_count = previous.chunk_count
        return LedgerRow(
            source=self.source, collection=self.spec.name, doc_id=change.doc_id,
            status="synced", source_version=change.source_version,
            content_hash=change.content_hash, payload_hash=change.payload_hash,
            chunk_count=chunk_count, vector_version=self.spec.vector_version, attempts=0,
            last_attempt_at=now, last_synced_at=now,
        )

    def _grown_row(self, change: Change, chunk_count: int) -> LedgerRow:
        previous = self.rows.get(change.doc_id)
        base = previous or LedgerRow(source=self.source, collection=self.spec.name,
                                     doc_id=change.doc_id, status="pending")
        return replace(base, status="pending", chunk_count=chunk_count)

    def _record_failure(self, changes: list[Change], code: str | None = None,
                        reason: str | None = None) -> None:
        """Mark documents failed (with the change's own reason unless one is given), keeping
        what the ledger knew about Qdrant's state, so nothing synced is forgotten."""
        now = self.now()
        rows = []
        for change in changes:
            previous = self.rows.get(change.doc_id)
            base = previous or LedgerRow(source=self.source, collection=self.spec.name,
                                         doc_id=change.doc_id, status="failed")
            attempts = base.attempts + 1
            rows.append(replace(
                base, status="failed", attempts=attempts,
                error_code=code or change.error_code, last_error=reason or change.error,
                last_attempt_at=now, next_attempt_at=retry_at(now, attempts, self.retry)))
            self.report.failures.append((change.doc_id, reason or change.error or ""))
        self.report.counts["failed"] += len(changes)
        events = [] if self.events is None else [
            e for r in rows if (e := self.events.failed(r.doc_id, self.rows.get(r.doc_id), r))]
        self.ledger.upsert(rows, events)  # one transaction: rows and their events
        self.rows.update({r.doc_id: r for r in rows})

    # Qdrant errors: fail the documents, stop hammering a Qdrant that is down
    def _qdrant_error(self, error: Exception) -> str:
        reason = f"Qdrant {type(error).__name__}: {error}"[:500]
        if self.may_retry_step:
            raise QdrantTransientError(reason) from error
        return reason

    def _qdrant_failed(self, changes: list[Change], error: Exception) -> None:
        reason = self._qdrant_error(error)
        log.warning("collection %s: %d document(s) failed: %s", self.spec.name, len(changes),
                    reason)
        self._record_failure(changes, "qdrant_error", reason)
        self._consecutive_errors += 1
        if self._consecutive_errors >= 3:
            self._unavailable = reason

    def _guard(self, changes: list[Change]) -> bool:
        if self._unavailable is None:
            return True
        self._record_failure(changes, "qdrant_error",
                             f"not attempted, Qdrant kept failing: {self._unavailable}")
        return False


def _take_vectors(vectors: Iterator[EmbeddingRow], change: Change) -> list[list[float]]:
    taken = []
    for index in range(len(change.chunks or ())):
        row = next(vectors, None)
        expected = (change.doc_id, change.content_hash, index)
        if row is None or (row.doc_id, row.content_hash, row.chunk_index) != expected:
            raise RuntimeError(f"embeddings do not match the change set at {expected}: "
                               "re-materialize the embeddings asset for this partition")
        taken.append(row.vector)
    return taken


def _payload(change: Change) -> dict[str, object]:
    """The payload fields of an added, updated or payload-updated document."""
    assert change.payload_json is not None
    return dict(json.loads(change.payload_json))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
