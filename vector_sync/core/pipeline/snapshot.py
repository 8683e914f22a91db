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
from vector_sync.core.documents import Document, ReadFailure
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
SCAN_BATCH = 5_000  # listed entries whose hints are looked up in the ledger together


def snapshot_rows(source: Source, ledger: Ledger, specs: list[CollectionSpec],
                  full: bool = False, track_listing: bool = False) -> Iterator[SnapshotRow]:
    """The source's current documents. Those whose hint matches a fully synced ledger entry
    and whose expected state is known are not read ("skipped"); all are read with `full` or
    after a collection's config changed. Raises SourceUnavailable if the source is down
    (before any row when it is down from the start). `track_listing` (a sync, not a dry
    run): a source whose history names every change since the last sync is not listed,
    until its full-listing period has passed; when it is listed, the ledger notes when.

    The listing is taken in batches, each batch's hints looked up in the ledger by doc_id:
    what is held is one batch and the ids still to read, never every document's hint."""
    names = [s.name for s in specs]
    changed: set[str] = set()
    if isinstance(source, Checkpointed):  # its own history decides too: reads are the union
        changed = source.changed_since(checkpoints.last_checkpoint(ledger, source.name, names))
    hints = not full and not checkpoints.config_changed(ledger, source.name, specs)
    if hints and track_listing and isinstance(source, Checkpointed) and source.complete and \
            not checkpoints.listing_due(ledger, source.name, source.full_listing_every_s):
        yield from _unlisted_rows(source, ledger, names, changed)
        return
    listed = 0
    to_read: list[str] = []  # read once the listing is done, as before batching
    for entries in batched(source.scan(), SCAN_BATCH):
        listed += len(entries)
        clean = ledger.hints_of(source.name, names, [
            e.doc_id for e in entries if e.doc_id not in changed]) if hints else {}
        for entry in entries:
            if entry.doc_id not in changed and clean.get(entry.doc_id) == entry.version:
                yield SnapshotRow(entry.doc_id, entry.version, "skipped")
            else:
                to_read.append(entry.doc_id)
    faults.reached("snapshot.scanned")
    if track_listing and isinstance(source, Checkpointed):
        checkpoints.note_listing(ledger, source.name)
    log.info("source %s: %d documents, %d to read", source.name, listed, len(to_read))
    yield from _read_rows(source, to_read)


def _unlisted_rows(source: Source, ledger: Ledger, names: list[str],
                   changed: set[str]) -> Iterator[SnapshotRow]:
    """The snapshot without a listing: what the source's history names is read (a deleted
    or out-of-scope document reads as nothing, so the diff deletes it), as is every
    document not fully synced; the rest are as the ledger has them."""
    unsynced: dict[str, str] = {}  # not fully synced, with the ledger's hint: few, usually
    known = 0
    for page, first in _ledger_documents(ledger, source.name, names):
        known += len(page)
        hints = {doc_id: hint for doc_id, hint in page if doc_id not in changed}
        # a clean document is synced in every collection, so it is in the first one
        clean = ledger.hints_of(source.name, names, list(hints)) if first else {}
        for doc_id, hint in hints.items():
            if doc_id in clean:
                yield SnapshotRow(doc_id, clean[doc_id], "skipped")
            else:
                unsynced.setdefault(doc_id, hint or "")
    reads = sorted(changed | unsynced.keys())
    log.info("source %s: not listed (its history names every change since the last sync): "
             "%d documents known, %d to read", source.name, known, len(reads))
    found: set[str] = set()
    for row in _read_rows(source, reads):
        found.add(row.doc_id)
        yield row
    for doc_id in unsynced.keys() - found - changed:
        # the history did not name it, so the source still has it: it could not be read
        # back by its id alone (a MongoDB _id that does not print back, say). Kept, as
        # failed, until the next listing reads it; never deleted for that.
        yield SnapshotRow(doc_id, unsynced[doc_id], "failed", error_code="not_read",
                          error="not found by its id without a listing; the next full "
                          "listing reads it")


def _ledger_documents(ledger: Ledger, source: str, first: list[str],
                      ) -> Iterator[tuple[list[tuple[str, str | None]], bool]]:
    """Every document the ledger has of `source`, once, as pages of (doc_id, version hint):
    collection by collection, those in `first` first, a document met in an earlier
    collection left out (looked up by doc_id, so no set of every id is kept). The flag
    says the page is of the first collection."""
    collections = [*first, *(c for c in ledger.collections_of(source) if c not in first)]
    for number, collection in enumerate(collections):
        for page in ledger.key_pages(source, collection):
            ids = [doc_id for doc_id, _, _ in page]
            earlier: set[str] = set()
            for previous in collections[:number]:
                earlier |= ledger.present_of(source, previous, ids)
            yield [(d, v) for d, _, v in page if d not in earlier], number == 0


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
        wanted = {entry.doc_id for entry in source.scan() if entry.doc_id in wanted}
    log.info("source %s: reading %d listed documents, the others kept as they are",
             source.name, len(wanted))
    yield from _read_rows(source, sorted(wanted))
    for page, _ in _ledger_documents(ledger, source.name, []):
        for doc_id, version in page:
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
