"""Stage 1, snapshot: the source's documents now, as rows for the diff.

Cheap version hints decide what is read: a document whose hint matches a fully synced
ledger entry (and whose expected state is known) is listed but not read ("skipped").
A targeted snapshot (a retry, an operator's re-sync) reads exactly the documents asked for.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Collection, Iterator
from datetime import UTC, datetime

from vector_sync.core import faults
from vector_sync.core.batches import batched, old_objects_frozen
from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.core.hashing import stable_json
from vector_sync.core.ledger import Ledger, open_ledger
from vector_sync.core.pipeline import checkpoints
from vector_sync.core.pipeline.rows import Metadata, SnapshotRow
from vector_sync.core.pipeline.state_files import SNAPSHOT, StateFiles, write_rows
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.source import Checkpointed, Source
from vector_sync.core.spec import CollectionSpec, collection_specs
from vector_sync.core.stats import throughput, timed

log = logging.getLogger(__name__)

READ_BATCH = 500


def snapshot_rows(source: Source, ledger: Ledger, specs: list[CollectionSpec],
                  full: bool = False, track_listing: bool = False) -> Iterator[SnapshotRow]:
    """The source's current documents. Those whose hint matches a fully synced ledger entry
    and whose expected state is known are not read ("skipped"); all are read with `full` or
    after a collection's config changed. Raises SourceUnavailable before yielding anything
    if the source is down. `track_listing` (a sync, not a dry run): a source whose history
    names every change since the last sync is not listed, until its full-listing period
    has passed; when it is listed, the ledger notes when."""
    names = [s.name for s in specs]
    changed: set[str] = set()
    if isinstance(source, Checkpointed):  # its own history decides too: reads are the union
        changed = source.changed_since(checkpoints.last_checkpoint(ledger, source.name, names))
    clean: dict[str, str] = {}
    if not full and not checkpoints.config_changed(ledger, source.name, specs):
        clean = ledger.synced_hints(source.name, names)
        known = ledger.expected_everywhere(source.name, names)
        clean = {doc_id: hint for doc_id, hint in clean.items() if doc_id in known}
        if track_listing and isinstance(source, Checkpointed) and source.complete and \
                not checkpoints.listing_due(ledger, source.name, source.full_listing_every_s):
            yield from _unlisted_rows(source, ledger, clean, changed)
            return
    entries: list[SourceEntry] = list(source.scan())
    faults.reached("snapshot.scanned")
    if track_listing and isinstance(source, Checkpointed):
        checkpoints.note_listing(ledger, source.name)
    to_read = []
    for entry in entries:
        if entry.doc_id not in changed and clean.get(entry.doc_id) == entry.version:
            yield SnapshotRow(entry.doc_id, entry.version, "skipped")
        else:
            to_read.append(entry.doc_id)
    log.info("source %s: %d documents, %d to read", source.name, len(entries), len(to_read))
    yield from _read_rows(source, to_read)


def _unlisted_rows(source: Source, ledger: Ledger, clean: dict[str, str],
                   changed: set[str]) -> Iterator[SnapshotRow]:
    """The snapshot without a listing: what the source's history names is read (a deleted
    or out-of-scope document reads as nothing, so the diff deletes it), as is every
    document not fully synced; the rest are as the ledger has them."""
    known = {row.doc_id for row in ledger.source_rows(source.name)}
    to_read = sorted(changed | (known - clean.keys()))
    for doc_id, hint in clean.items():
        if doc_id not in changed:
            yield SnapshotRow(doc_id, hint, "skipped")
    log.info("source %s: not listed (its history names every change since the last sync): "
             "%d documents known, %d to read", source.name, len(known | changed), len(to_read))
    yield from _read_rows(source, to_read)


def _read_rows(source: Source, doc_ids: list[str]) -> Iterator[SnapshotRow]:
    for ids in batched(doc_ids, READ_BATCH):
        for result in source.read(ids):
            yield _snapshot_row(result)
        faults.reached("snapshot.read_batch")


def targeted_snapshot_rows(source: Source, ledger: Ledger,
                           doc_ids: Collection[str]) -> Iterator[SnapshotRow]:
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
    yield from _read_rows(source, sorted(wanted))
    for doc_id, version in known.items():
        if doc_id not in doc_ids:
            yield SnapshotRow(doc_id, version, "skipped")


def _snapshot_row(result: Document | ReadFailure) -> SnapshotRow:
    if isinstance(result, ReadFailure):
        return SnapshotRow(result.doc_id, result.version, "failed",
                           error_code=result.error_code, error=result.message)
    return SnapshotRow(result.doc_id, result.version, "read", stable_json(result.fields))


# --- which documents a targeted snapshot reads ----------------------------------------------


def due_for_retry(ledger: Ledger, source: str) -> set[str]:
    """Documents of `source` with a failed row whose backoff has expired."""
    return {row.doc_id for row in ledger.due_for_retry(datetime.now(UTC), source)}


def pending_documents(ledger: Ledger, source: str) -> set[str]:
    """Documents of `source` with any row not synced (pending, stale or failed, due or not)."""
    return {row.doc_id for row in ledger.source_rows(source) if row.status != "synced"}


# --- the stage ------------------------------------------------------------------------------


def snapshot(config: VectorSyncConfig, source_name: str, full: bool = False,
             only: Collection[str] | None = None) -> Metadata:
    """Write the source's snapshot file; returns the metadata the asset reports. `only`:
    read exactly these documents and keep the rest as the ledger has them. Raises
    SourceUnavailable (before replacing the previous snapshot) if the source is down."""
    source = config.open_source(source_name)
    path = StateFiles(config.state.dir).snapshot(source_name)
    started = time.perf_counter()
    states: Counter[str] = Counter()

    def counted(rows: Iterator[SnapshotRow]) -> Iterator[SnapshotRow]:
        for row in rows:
            states[row.state] += 1
            yield row

    with open_ledger(config.state) as ledger, old_objects_frozen():
        specs = collection_specs(config, source_name)
        rows = snapshot_rows(source, ledger, specs, full, track_listing=True) if only is None \
            else targeted_snapshot_rows(source, ledger, only)
        write_rows(path, SNAPSHOT, counted(rows))
        detection = checkpoints.note_checkpoint(ledger, source)
    seconds = timed(started)
    total = states.total()
    log.info("snapshot of %s: %d documents (%d read, %d unchanged hint, %d failed) in %.2f s",
             source_name, total, states["read"], states["skipped"], states["failed"], seconds)
    return {"documents": total, "read": states["read"], "skipped_unchanged": states["skipped"],
            "targeted": only is not None, "failed": states["failed"], "duration_s": seconds,
            **throughput("documents_per_s", total, seconds), "path": str(path), **detection}
