"""The sync engine, one function per asset: snapshot, diff, embed, apply.

Each stage reads its upstream as a stream of rows and yields rows for the next, so the same
functions serve the Dagster assets (which write them to Parquet), `plan` (which only counts)
and tests (which call them directly). Qdrant is written only by `Applier`, and the
ledger only after Qdrant acknowledged (`wait=True`), so a crash anywhere leaves a state the
next run converges from.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from qdrant_client import models

from vector_sync.config import ChunkingConfig, RetryConfig, VectorSyncConfig
from vector_sync.core.batches import batched
from vector_sync.core.chunking import chunk_document, chunker_fingerprint
from vector_sync.core.documents import Document, ReadFailure, SourceEntry, nested_subset
from vector_sync.core.hashing import (
    content_hash,
    digest,
    payload_hash,
    point_id,
    stable_json,
    vector_version,
)
from vector_sync.core.ledger import Ledger, LedgerRow
from vector_sync.core.render import render
from vector_sync.core.store import CollectionMismatch, QdrantStore
from vector_sync.core.tokens import TokenCounter
from vector_sync.sources.base import Checkpointed, Source

log = logging.getLogger(__name__)


OUTCOMES = ("added", "updated", "payload_updated", "deleted", "unchanged", "failed")
READ_BATCH = 500
LEDGER_BATCH = 2000
EMBED_BATCH = 256  # texts handed to the model at once (it batches by embedding.batch_size)


@dataclass(frozen=True)
class CollectionSpec:
    """Everything about a collection that decides what its points look like."""

    name: str
    embed: tuple[str, ...]
    payload: tuple[str, ...]
    model: str
    chunking: ChunkingConfig

    @property
    def vector_version(self) -> str:
        chunker = chunker_fingerprint(self.chunking.max_tokens, self.chunking.overlap_tokens)
        return vector_version(self.model, chunker)

    @property
    def fingerprint(self) -> str:
        """Changes whenever a hash could change without the document changing."""
        return digest(self.vector_version, stable_json([self.embed, self.payload]))


def collection_specs(config: VectorSyncConfig, source: str) -> list[CollectionSpec]:
    specs = []
    for name in config.sources[source].collections:
        collection = config.collections[name]
        specs.append(CollectionSpec(
            name=name, embed=tuple(collection.embed), payload=tuple(collection.payload),
            model=config.embedding_for(name).model, chunking=collection.chunking,
        ))
    return specs


def config_state_key(collection: str) -> str:
    return f"collection_fingerprint:{collection}"


# Checkpoints of sources with a change history (`Checkpointed`, e.g. a Git commit): the
# snapshot notes where it was pinned; each collection records it once it applied that
# snapshot; the next scan diffs from the one all collections agree on.
SCANNED_CHECKPOINT = "checkpoint:scanned"


def checkpoint_key(collection: str) -> str:
    return f"checkpoint:{collection}"


def last_checkpoint(ledger: Ledger, source: str, collections: Iterable[str]) -> str | None:
    """The checkpoint every collection of the source has applied; None if one has none or
    they differ (the source then compares everything)."""
    found = {ledger.get_state(source, checkpoint_key(c)) for c in collections}
    return found.pop() if len(found) == 1 else None


def note_checkpoint(ledger: Ledger, source: Source) -> dict[str, Any]:
    """After a snapshot: remember where it was pinned (none for a snapshot that did not
    detect changes, e.g. a targeted one); returns the source's detection metadata."""
    if not isinstance(source, Checkpointed):
        return {}
    ledger.set_state(source.name, SCANNED_CHECKPOINT, source.checkpoint or "")
    return dict(source.detection)


def record_checkpoint(ledger: Ledger, source: str, collection: str) -> None:
    """The collection applied the last snapshot: it is synced up to that snapshot's
    checkpoint. Rows that failed stay failed in the ledger and are read again anyway."""
    scanned = ledger.get_state(source, SCANNED_CHECKPOINT)
    if scanned:
        ledger.set_state(source, checkpoint_key(collection), scanned)


# --- snapshot -------------------------------------------------------------------------------


def snapshot_rows(
    source: Source, ledger: Ledger, specs: list[CollectionSpec], full: bool = False,
    expected: set[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The source's current documents. Those whose hint matches a fully synced ledger entry
    (and whose expected state is known, see `Differ.expected`) are not read ("skipped");
    all are read with `full` or after a collection's config changed. Raises
    SourceUnavailable before yielding anything if the source is down."""
    entries: list[SourceEntry] = list(source.scan())
    config_changed = any(
        ledger.get_state(source.name, config_state_key(s.name)) != s.fingerprint for s in specs
    )
    clean = {} if full or config_changed else ledger.synced_hints(
        source.name, [s.name for s in specs])
    changed: set[str] = set()
    if isinstance(source, Checkpointed):  # its own history decides too: reads are the union
        changed = source.changed_since(last_checkpoint(ledger, source.name,
                                                       [s.name for s in specs]))
    to_read = []
    for entry in entries:
        if entry.doc_id not in changed and clean.get(entry.doc_id) == entry.version and (
                expected is None or entry.doc_id in expected):
            yield {"doc_id": entry.doc_id, "version": entry.version, "state": "skipped"}
        else:
            to_read.append(entry.doc_id)
    log.info("source %s: %d documents, %d to read", source.name, len(entries), len(to_read))
    for ids in batched(to_read, READ_BATCH):
        for result in source.read(ids):
            yield _snapshot_row(result)


def targeted_snapshot_rows(source: Source, ledger: Ledger,
                           doc_ids: Collection[str]) -> Iterator[dict[str, Any]]:
    """A snapshot that reads exactly `doc_ids` (a retry, an operator's re-sync) and takes
    every other document the ledger knows as unchanged, without listing the source. A
    listed document the source no longer has, or that is out of its scope, is deleted."""
    wanted = set(doc_ids)
    if not source.scoped_reads:
        # read() would take any path: keep to what the source's include/ignore rules list
        wanted &= {entry.doc_id for entry in source.scan()}
    known = {row.doc_id: row.source_version for row in ledger.source_rows(source.name)}
    log.info("source %s: reading %d listed documents, %d others kept as they are",
             source.name, len(wanted), len(known.keys() - set(doc_ids)))
    for ids in batched(sorted(wanted), READ_BATCH):
        for result in source.read(ids):
            yield _snapshot_row(result)
    for doc_id, version in known.items():
        if doc_id not in doc_ids:
            yield {"doc_id": doc_id, "version": version, "state": "skipped"}


def _snapshot_row(result: Document | ReadFailure) -> dict[str, Any]:
    if isinstance(result, ReadFailure):
        return {"doc_id": result.doc_id, "version": result.version, "state": "failed",
                "error_code": result.error_code, "error": result.message}
    return {"doc_id": result.doc_id, "version": result.version, "state": "read",
            "fields_json": stable_json(result.fields)}


# --- diff -----------------------------------------------------------------------------------


@dataclass
class Diff:
    """Counts of one collection's change set, in documents, plus the chunks to embed."""

    counts: Counter[str] = field(default_factory=Counter)
    chunks: int = 0
    documents_before: int = 0  # in the ledger for this collection
    documents_now: int = 0  # in the source snapshot

    def as_dict(self) -> dict[str, int]:
        return {**{k: self.counts[k] for k in OUTCOMES}, "chunks_to_embed": self.chunks,
                "documents_before": self.documents_before, "documents_now": self.documents_now}


Expected = tuple[str, str, int]  # what Qdrant should hold: content_hash, payload_hash, chunks


class Differ:
    """Compares a source snapshot with the ledger for one collection (the decision table).

    It also records `expected`: for every document of the source, the hashes and chunk
    count Qdrant should hold, derived from the source alone (documents that were not read
    keep the previous run's expectation). The consistency checks compare Qdrant with it."""

    def __init__(self, spec: CollectionSpec, count_tokens: TokenCounter,
                 previous_expected: dict[str, Expected] | None = None) -> None:
        self.spec = spec
        self.count_tokens = count_tokens
        self.previous_expected = previous_expected or {}
        self.expected: dict[str, Expected] = {}

    def changes(
        self, snapshot: Iterable[dict[str, Any]], ledger_rows: dict[str, LedgerRow], diff: Diff
    ) -> Iterator[dict[str, Any]]:
        """Rows of the change set; `diff` is filled in as they are produced. Rows that need
        no Qdrant write are still emitted when the ledger must learn something (a new hint,
        a failure) — as action "unchanged" or "failed"."""
        remaining = dict(ledger_rows)
        diff.documents_before = len(ledger_rows)
        for row in snapshot:
            diff.documents_now += 1
            doc_id = row["doc_id"]
            previous = remaining.pop(doc_id, None)
            if row["state"] == "read":
                change, self.expected[doc_id] = self._compare(row, previous)
            else:
                change = self._unread(row, previous)
            diff.counts[change["action"] if change else "unchanged"] += 1
            if change:
                diff.chunks += len(change.get("chunks") or ())
                yield change
        for doc_id in remaining:  # in the ledger, gone from the source
            diff.counts["deleted"] += 1
            yield {"doc_id": doc_id, "action": "deleted"}

    def _unread(self, row: dict[str, Any], previous: LedgerRow | None) -> dict[str, Any] | None:
        """Not read (hint unchanged) or unreadable: Qdrant should keep what it has."""
        known = self.previous_expected.get(row["doc_id"])
        if known is None and previous is not None and previous.content_hash is not None:
            known = (previous.content_hash, previous.payload_hash or "", previous.chunk_count)
        if known is not None:
            self.expected[row["doc_id"]] = known
        if row["state"] == "failed":
            return {"doc_id": row["doc_id"], "action": "failed", "source_version": row["version"],
                    "error_code": row["error_code"], "error": row["error"]}
        return None

    def _compare(self, row: dict[str, Any],
                 previous: LedgerRow | None) -> tuple[dict[str, Any] | None, Expected]:
        """The decision table for a document that was read, and what Qdrant should hold."""
        fields = json.loads(row["fields_json"])
        preamble, body = render(fields, self.spec.embed)
        payload = nested_subset(fields, self.spec.payload)
        new = {"doc_id": row["doc_id"], "source_version": row["version"],
               "content_hash": content_hash(self.spec.vector_version, preamble, body),
               "payload_hash": payload_hash(payload), "payload_json": stable_json(payload)}
        hashes = (new["content_hash"], new["payload_hash"])
        if not (preamble or body):  # none of the embedded fields: no points here
            if previous is not None and previous.chunk_count:
                return {**new, "action": "deleted", "chunks": []}, (*hashes, 0)
            return self._touch(new, previous), (*hashes, 0)
        if previous is None or previous.content_hash != new["content_hash"] or (
            previous.status in ("pending", "stale")  # cut off, or found wrong: redo it
        ):
            synced_before = previous is not None and previous.content_hash is not None
            chunks = self._chunks(preamble, body)
            action = "updated" if synced_before else "added"
            return {**new, "action": action, "chunks": chunks}, (*hashes, len(chunks))
        known = self.previous_expected.get(row["doc_id"])
        count = known[2] if known and known[0] == new["content_hash"] else \
            len(self._chunks(preamble, body))  # rare: no earlier expectation (state lost)
        if previous.payload_hash != new["payload_hash"]:
            return {**new, "action": "payload_updated"}, (*hashes, count)
        return self._touch(new, previous), (*hashes, count)

    def _chunks(self, preamble: str, body: str) -> list[str]:
        return [c.text for c in chunk_document(
            preamble, body, count_tokens=self.count_tokens,
            max_tokens=self.spec.chunking.max_tokens,
            overlap_tokens=self.spec.chunking.overlap_tokens)]

    @staticmethod
    def _touch(new: dict[str, Any], previous: LedgerRow | None) -> dict[str, Any] | None:
        """Nothing to write to Qdrant; the ledger may still have to learn the new hint."""
        if (previous is not None and previous.status == "synced"
                and previous.source_version == new["source_version"]
                and previous.content_hash == new["content_hash"]):
            return None
        return {**new, "action": "unchanged"}


# --- embed ----------------------------------------------------------------------------------


def reusable_vectors(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[list[float]]]:
    """Vectors of an earlier embeddings file, by (doc_id, content_hash), in chunk order."""
    found: dict[tuple[str, str], list[list[float]]] = {}
    for row in rows:
        found.setdefault((row["doc_id"], row["content_hash"]), []).append(row["vector"])
    return found


def embedding_rows(
    changes: Iterable[dict[str, Any]],
    embed: Callable[[list[str]], Any],
    reusable: dict[tuple[str, str], list[list[float]]],
    stats: Counter[str],
) -> Iterator[dict[str, Any]]:
    """Vectors for every chunk of added/updated documents, in change-set order; vectors of
    an identical earlier version are reused (a retry after Qdrant was down embeds nothing)."""
    pending: list[tuple[str, str, int, str]] = []
    last_report = time.monotonic()

    def flush() -> Iterator[dict[str, Any]]:
        nonlocal last_report
        if not pending:
            return
        vectors = embed([text for *_, text in pending])
        if time.monotonic() - last_report > 10:
            log.info("embedded %d chunks so far", stats["chunks_embedded"] + len(pending))
            last_report = time.monotonic()
        for (doc_id, chash, index, _), vector in zip(pending, vectors, strict=True):
            yield {"doc_id": doc_id, "content_hash": chash, "chunk_index": index,
                   "vector": [float(x) for x in vector]}
        stats["chunks_embedded"] += len(pending)
        pending.clear()

    for change in changes:
        if change["action"] not in ("added", "updated"):
            continue
        doc_id, chash, chunks = change["doc_id"], change["content_hash"], change["chunks"]
        earlier = reusable.get((doc_id, chash))
        if earlier is not None and len(earlier) == len(chunks):
            yield from flush()  # keep change-set order
            for index, vector in enumerate(earlier):
                yield {"doc_id": doc_id, "content_hash": chash, "chunk_index": index,
                       "vector": vector}
            stats["chunks_reused"] += len(chunks)
            continue
        pending.extend((doc_id, chash, index, text) for index, text in enumerate(chunks))
        if len(pending) >= EMBED_BATCH:
            yield from flush()
    yield from flush()


# --- apply ----------------------------------------------------------------------------------


def retry_at(now: datetime, attempts: int, policy: RetryConfig) -> datetime | None:
    """When a row that failed `attempts` times is due again: exponential backoff with
    jitter, or None once it has failed max_retries times (it stays failed)."""
    if attempts >= policy.max_retries:
        return None
    delay = min(policy.base_backoff_s * policy.multiplier ** max(attempts - 1, 0),
                policy.max_backoff_s)
    return now + timedelta(seconds=delay * random.uniform(1 - policy.jitter, 1 + policy.jitter))


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
                 unavailable: str | None = None) -> None:
        """`store` may be None for a change set that writes nothing to Qdrant.
        `may_retry_step`: a Qdrant error raises QdrantTransientError (the step is retried)
        rather than failing the documents; on the step's last attempt it is False.
        `unavailable`: why Qdrant could not be opened; every write is then marked failed."""
        self._store, self.ledger, self.source, self.spec = store, ledger, source, spec
        self.batch_points = batch_points
        self.retry = retry or RetryConfig()
        self.may_retry_step = may_retry_step
        self.now = now or (lambda: datetime.now(UTC))
        self.rows = ledger.rows(source, spec.name)
        self.report = ApplyReport()
        self._consecutive_errors = 0
        self._unavailable = unavailable

    @property
    def store(self) -> QdrantStore:
        if self._store is None:
            raise RuntimeError("this change set writes to Qdrant, but no store was opened")
        return self._store

    def apply(self, changes: Iterable[dict[str, Any]], vectors: Iterator[dict[str, Any]],
              dimension: int | None) -> ApplyReport:
        """Apply in batches: documents with new vectors (upserts), documents with only
        payload or deletion operations, and rows only the ledger has to learn about."""
        if dimension is not None and self._unavailable is None:
            try:
                self.store.ensure_collection(self.spec.name, dimension, self.spec.model)
            except CollectionMismatch:
                raise  # a configuration problem: fail the run, touch nothing
            except Exception as error:  # noqa: BLE001 - Qdrant unreachable: fail every row
                self._unavailable = self._qdrant_error(error)
        upserts: list[tuple[dict[str, Any], list[list[float]]]] = []
        operations: list[dict[str, Any]] = []
        ledger_only: list[dict[str, Any]] = []
        upsert_points = 0
        for change in changes:
            action = change["action"]
            points = _take_vectors(vectors, change) if action in ("added", "updated") else []
            if self._applied_before(change):  # by an earlier attempt of this step
                self.report.counts[action] += 1
                continue
            if action in ("added", "updated"):
                if upserts and upsert_points + len(points) > self.batch_points:
                    self._write_group(upserts)
                    upserts, upsert_points = [], 0
                upserts.append((change, points))
                upsert_points += len(points)
            elif action in ("deleted", "payload_updated"):
                operations.append(change)
                if len(operations) >= self.batch_points:
                    self._operate(operations)
                    operations = []
            else:
                ledger_only.append(change)
                if len(ledger_only) >= LEDGER_BATCH:
                    self._record(ledger_only)
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

    def _applied_before(self, change: dict[str, Any]) -> bool:
        """The ledger already records this change as acknowledged by Qdrant."""
        previous = self.rows.get(change["doc_id"])
        if change["action"] == "deleted":
            return previous is None
        return (change["action"] != "failed" and previous is not None
                and previous.status == "synced"
                and previous.source_version == change.get("source_version")
                and previous.content_hash == change.get("content_hash")
                and previous.payload_hash == change.get("payload_hash"))

    # rows that need no Qdrant write: new hints ("unchanged") and read failures
    def _record(self, changes: list[dict[str, Any]]) -> None:
        failed = [c for c in changes if c["action"] == "failed"]
        if failed:
            self._record_failure(failed)
        touched = [c for c in changes if c["action"] == "unchanged"]
        # counted by the diff, together with the documents that were not even read
        self.ledger.upsert([self._synced_row(c, self.rows.get(c["doc_id"]), 0) for c in touched])

    # deletions and payload-only updates, many documents per Qdrant request
    def _operate(self, changes: list[dict[str, Any]]) -> None:
        if not self._guard(changes):
            return
        synced_at = _iso(self.now())
        operations: list[Any] = []
        deleting = 0
        for change in changes:
            ids = self._ids(change["doc_id"], 0, self._held(change["doc_id"]))
            if ids and change["action"] == "deleted":
                operations.append(models.DeleteOperation(delete=models.PointIdsList(points=ids)))
                deleting += len(ids)
            elif ids:
                operations.extend(self._payload_operations(change, ids, synced_at))
        try:
            # deleting from a collection that does not exist is done already
            only_deletes = all(c["action"] == "deleted" for c in changes)
            if operations and not (only_deletes and not self.store.exists(self.spec.name)):
                self.store.batch(self.spec.name, operations)
        except Exception as error:  # noqa: BLE001 - the batch fails, the run goes on
            self._qdrant_failed(changes, error)
            return
        self._consecutive_errors = 0
        self.report.points_deleted += deleting
        gone = [c["doc_id"] for c in changes if c.get("content_hash") is None]
        self.ledger.delete(self.source, self.spec.name, gone)
        self.ledger.upsert([self._synced_row(c, self.rows.get(c["doc_id"]), 0)
                            for c in changes if c.get("content_hash") is not None])
        for change in changes:
            self.report.counts[change["action"]] += 1

    def _payload_operations(self, change: dict[str, Any], ids: list[str],
                            synced_at: str) -> list[Any]:
        payload = json.loads(change["payload_json"])
        operations: list[Any] = [models.SetPayloadOperation(set_payload=models.SetPayload(
            payload={**payload, "synced_at": synced_at}, points=ids))]
        # set_payload merges top-level keys: a field the document no longer has must go
        dropped = sorted({f.split(".", 1)[0] for f in self.spec.payload} - set(payload))
        if dropped:
            operations.append(models.DeletePayloadOperation(
                delete_payload=models.DeletePayload(keys=dropped, points=ids)))
        return operations

    def _held(self, doc_id: str) -> int:
        """Chunk indexes below this may exist in Qdrant for the document (ledger's bound)."""
        previous = self.rows.get(doc_id)
        return previous.chunk_count if previous else 0

    def _ids(self, doc_id: str, first: int, end: int) -> list[str]:
        return [point_id(self.source, doc_id, i) for i in range(first, end)]

    # documents with new vectors, several per Qdrant request
    def _write_group(self, group: list[tuple[dict[str, Any], list[list[float]]]]) -> None:
        changes = [c for c, _ in group]
        if not self._guard(changes):
            return
        synced_at = _iso(self.now())
        # write-ahead: a crash between upsert and ledger must still let the next run find
        # every chunk index that may exist, so surplus chunks are never orphaned
        growing = [self._grown_row(c, len(p)) for c, p in group
                   if len(p) > self._held(c["doc_id"])]
        if growing:
            self.ledger.upsert(growing)
            self.rows.update({r.doc_id: r for r in growing})
        try:
            points = [p for change, vectors in group
                      for p in self._points(change, vectors, synced_at)]
            for batch in batched(points, self.batch_points):
                self.store.upsert(self.spec.name, batch)
            surplus = [i for change, vectors in group for i in self._ids(
                change["doc_id"], len(vectors), self._held(change["doc_id"]))]
            self.store.delete(self.spec.name, surplus)
            self.report.points_deleted += len(surplus)
        except Exception as error:  # noqa: BLE001 - the group fails, the run goes on
            self._qdrant_failed(changes, error)
            return
        self._consecutive_errors = 0
        self.report.points_written += len(points)
        self.ledger.upsert([
            self._synced_row(c, self.rows.get(c["doc_id"]), chunk_count=len(v)) for c, v in group
        ])
        for change in changes:
            self.report.counts[change["action"]] += 1

    def _points(self, change: dict[str, Any], vectors: list[list[float]],
                synced_at: str) -> Iterator[models.PointStruct]:
        payload = json.loads(change["payload_json"])
        for index, (text, vector) in enumerate(zip(change["chunks"], vectors, strict=True)):
            yield models.PointStruct(
                id=point_id(self.source, change["doc_id"], index), vector=vector,
                payload={**payload, "source": self.source, "doc_id": change["doc_id"],
                         "chunk_index": index, "chunk_count": len(vectors), "text": text,
                         "content_hash": change["content_hash"], "synced_at": synced_at},
            )

    # ledger rows
    def _synced_row(self, change: dict[str, Any], previous: LedgerRow | None,
                    chunk_count: int) -> LedgerRow:
        now = self.now()
        if change["action"] in ("unchanged", "payload_updated") and previous is not None:
            chunk_count = previous.chunk_count
        return LedgerRow(
            source=self.source, collection=self.spec.name, doc_id=change["doc_id"],
            status="synced", source_version=change.get("source_version"),
            content_hash=change.get("content_hash"), payload_hash=change.get("payload_hash"),
            chunk_count=chunk_count, vector_version=self.spec.vector_version, attempts=0,
            last_attempt_at=now, last_synced_at=now,
        )

    def _grown_row(self, change: dict[str, Any], chunk_count: int) -> LedgerRow:
        previous = self.rows.get(change["doc_id"])
        base = previous or LedgerRow(source=self.source, collection=self.spec.name,
                                     doc_id=change["doc_id"], status="pending")
        return replace(base, status="pending", chunk_count=chunk_count)

    def _record_failure(self, changes: list[dict[str, Any]], code: str | None = None,
                        reason: str | None = None) -> None:
        """Mark documents failed (with the change's own reason unless one is given), keeping
        what the ledger knew about Qdrant's state, so nothing synced is forgotten."""
        now = self.now()
        rows = []
        for change in changes:
            previous = self.rows.get(change["doc_id"])
            base = previous or LedgerRow(source=self.source, collection=self.spec.name,
                                         doc_id=change["doc_id"], status="failed")
            attempts = base.attempts + 1
            rows.append(replace(
                base, status="failed", attempts=attempts,
                error_code=code or change["error_code"], last_error=reason or change["error"],
                last_attempt_at=now, next_attempt_at=retry_at(now, attempts, self.retry)))
            self.report.failures.append((change["doc_id"], reason or change["error"]))
        self.report.counts["failed"] += len(changes)
        self.ledger.upsert(rows)
        self.rows.update({r.doc_id: r for r in rows})

    # Qdrant errors: fail the documents, stop hammering a Qdrant that is down
    def _qdrant_error(self, error: Exception) -> str:
        reason = f"Qdrant {type(error).__name__}: {error}"[:500]
        if self.may_retry_step:
            raise QdrantTransientError(reason) from error
        return reason

    def _qdrant_failed(self, changes: list[dict[str, Any]], error: Exception) -> None:
        reason = self._qdrant_error(error)
        log.warning("collection %s: %d document(s) failed: %s", self.spec.name, len(changes),
                    reason)
        self._record_failure(changes, "qdrant_error", reason)
        self._consecutive_errors += 1
        if self._consecutive_errors >= 3:
            self._unavailable = reason

    def _guard(self, changes: list[dict[str, Any]]) -> bool:
        if self._unavailable is None:
            return True
        self._record_failure(changes, "qdrant_error",
                             f"not attempted, Qdrant kept failing: {self._unavailable}")
        return False


def _take_vectors(vectors: Iterator[dict[str, Any]], change: dict[str, Any]) -> list[list[float]]:
    taken = []
    for index in range(len(change["chunks"])):
        row = next(vectors, None)
        expected = (change["doc_id"], change["content_hash"], index)
        if row is None or (row["doc_id"], row["content_hash"], row["chunk_index"]) != expected:
            raise RuntimeError(
                f"embeddings do not match the change set at {expected}: re-materialize "
                "the embeddings asset for this partition"
            )
        taken.append(row["vector"])
    return taken


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def timed(started: float) -> float:
    return round(time.perf_counter() - started, 3)
