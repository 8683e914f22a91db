"""Stage 1, snapshot: the source's documents now, as rows for the diff.

Cheap version hints decide what is read: a document whose hint matches a fully synced
ledger entry (and whose expected state is known) is listed but not read ("skipped").
A sync's snapshot file holds only the rows that need a decision (read, failed, and "gone":
a document the ledger has that the source no longer has); the skipped documents are counted
in its footer, so a sync costs what it changes, not what the ledger holds. A full stream (a
dry run, verify) has a row per skipped document instead, and no "gone" row. A targeted
snapshot (a retry, an operator's re-sync) reads exactly the documents asked for.
"""

from __future__ import annotations

import logging
import time
from array import array
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import numpy as np

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


class Tally:
    """What a sync's snapshot counts instead of writing a row for: the documents listed but
    not read (`skipped`), and the documents the source has now (`documents`: those of its
    rows but "gone", plus the skipped). Kept in the snapshot file's footer."""

    def __init__(self) -> None:
        self.skipped = 0
        self.documents = 0

    def as_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "documents": self.documents}


class Seen:
    """The documents a listing found, 8 bytes each: a hash of the id (Python's 64-bit string
    hash, one process), so a million ids take 8 MB where a set of them takes 100."""

    def __init__(self) -> None:
        self._hashes = array("q")
        self._sorted: np.ndarray[Any, np.dtype[np.int64]] | None = None

    def add(self, doc_ids: Iterable[str]) -> None:
        self._hashes.extend(map(hash, doc_ids))
        self._sorted = None

    def missing(self, page: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The entries (doc_id, ...) of `page` whose id was not seen. A hash can only be
        missing for an id that is missing, so nothing seen is ever taken as missing."""
        if self._sorted is None:
            self._sorted = np.sort(np.frombuffer(self._hashes, dtype=np.int64))
        seen = self._sorted
        if not len(seen):
            return list(page)
        hashes = np.fromiter((hash(entry[0]) for entry in page), dtype=np.int64,
                             count=len(page))
        at = np.minimum(np.searchsorted(seen, hashes), len(seen) - 1)
        return [entry for entry, there in zip(page, seen[at] == hashes, strict=True)
                if not there]


def snapshot_rows(source: Source, ledger: Ledger, specs: list[CollectionSpec],
                  full: bool = False) -> Iterator[SnapshotRow]:
    """Every document of the source now, one row each, for a dry run or a check (nothing is
    noted in the ledger). Those whose hint matches a fully synced ledger entry and whose
    expected state is known are not read ("skipped"); all are read with `full` or after a
    collection's config changed. Raises SourceUnavailable if the source is down (before any
    row when it is down from the start)."""
    names = [s.name for s in specs]
    changed = _changed(source, ledger, names)
    hints = not full and not checkpoints.config_changed(ledger, source.name, specs)
    yield from _listed_rows(source, ledger, names, changed, hints, None)


def changed_rows(source: Source, ledger: Ledger, specs: list[CollectionSpec], tally: Tally,
                 full: bool = False) -> Iterator[SnapshotRow]:
    """A sync's snapshot: the rows that need a decision (read, failed, gone), the others
    counted in `tally`. A source whose history names every change since the last sync is
    not listed, until its full-listing period has passed; when it is listed, the ledger
    notes when. Raises SourceUnavailable as snapshot_rows does."""
    names = [s.name for s in specs]
    changed = _changed(source, ledger, names)
    hints = not full and not checkpoints.config_changed(ledger, source.name, specs)
    if hints and isinstance(source, Checkpointed) and source.complete and \
            not checkpoints.listing_due(ledger, source.name, source.full_listing_every_s):
        yield from _unlisted_rows(source, ledger, names, changed, tally)
    else:
        yield from _listed_rows(source, ledger, names, changed, hints, tally)


def _changed(source: Source, ledger: Ledger, names: list[str]) -> set[str]:
    if not isinstance(source, Checkpointed):
        return set()
    # its own history decides too: reads are the union
    return source.changed_since(checkpoints.last_checkpoint(ledger, source.name, names))


def _listed_rows(source: Source, ledger: Ledger, names: list[str], changed: set[str],
                 hints: bool, tally: Tally | None) -> Iterator[SnapshotRow]:
    """The listing is taken in batches, each batch's hints looked up in the ledger by doc_id:
    what is held is one batch, the ids still to read and, for a sync (`tally`), 8 bytes per
    listed document to find afterwards, in one paged pass over the ledger's ids of the
    source, the documents it has that the listing did not find."""
    listed = 0
    seen = Seen()
    to_read: list[str] = []  # read once the listing is done, as before batching
    for entries in batched(source.scan(), SCAN_BATCH):
        listed += len(entries)
        clean = ledger.hints_of(source.name, names, [
            e.doc_id for e in entries if e.doc_id not in changed]) if hints else {}
        if tally is not None:
            seen.add(e.doc_id for e in entries)
        for entry in entries:
            if entry.doc_id in changed or clean.get(entry.doc_id) != entry.version:
                to_read.append(entry.doc_id)
            elif tally is None:
                yield SnapshotRow(entry.doc_id, entry.version, "skipped")
            else:
                tally.skipped += 1
    faults.reached("snapshot.scanned")
    if tally is not None and isinstance(source, Checkpointed):
        checkpoints.note_listing(ledger, source.name)
    log.info("source %s: %d documents, %d to read", source.name, listed, len(to_read))
    if tally is None:
        yield from _read_rows(source, to_read)
        return
    gone = 0
    for row in _read_rows(source, to_read, _gone):  # listed, then deleted before its read
        gone += row.state == "gone"
        yield row
    yield from absent_rows(ledger, source.name, seen)
    tally.documents = listed - gone


def absent_rows(ledger: Ledger, source: str, seen: Seen) -> Iterator[SnapshotRow]:
    """A "gone" row, once, for each document the ledger has of `source` (a row or an
    expected state, in any collection) that is not in `seen`: pages of ids, in one pass."""
    emitted: set[str] = set()  # the documents gone: as many as the change, not the source
    for collection in ledger.known_collections(source):
        for expected in (False, True):
            for page in ledger.id_pages(source, collection, expected):
                for (doc_id,) in seen.missing(page):
                    if doc_id not in emitted:
                        emitted.add(doc_id)
                        yield _gone(doc_id)


def _unlisted_rows(source: Source, ledger: Ledger, names: list[str], changed: set[str],
                   tally: Tally) -> Iterator[SnapshotRow]:
    """The snapshot without a listing, and without paging through the ledger: what the
    source's history names is read (a deleted or out-of-scope document reads as nothing:
    a "gone" row), as is every document not fully synced (found by an index); the rest
    are as the ledger has them, counted."""
    unsynced = ledger.unsynced_of(source.name)  # not fully synced, with a hint: few, usually
    reads = sorted(changed | unsynced.keys())
    count, known = _known(ledger, source.name, names, reads)
    tally.skipped = count - len(known)
    log.info("source %s: not listed (its history names every change since the last sync): "
             "%d documents known, %d to read", source.name, count, len(reads))

    def missing(doc_id: str) -> SnapshotRow:
        if doc_id in changed:
            return _gone(doc_id)
        # the history did not name it, so the source still has it: it could not be read
        # back by its id alone (a MongoDB _id that does not print back, say). Kept, as
        # failed, until the next listing reads it; never deleted for that.
        return SnapshotRow(doc_id, unsynced[doc_id], "failed", error_code="not_read",
                           error="not found by its id without a listing; the next full "
                           "listing reads it")

    tally.documents = count
    for row in _read_rows(source, reads, missing):
        tally.documents += (row.state != "gone") - (row.doc_id in known)
        yield row


def _known(ledger: Ledger, source: str, names: list[str],
           doc_ids: list[str]) -> tuple[int, set[str]]:
    """(how many documents of `source` the ledger has in `names`, which of `doc_ids` it
    has): counted by the database in the first collection (a clean document is in every
    one), plus those of `doc_ids` only in others."""
    if not names:
        return 0, set()
    first = ledger.present_of(source, names[0], doc_ids)
    known = set(first)
    for other in names[1:]:
        known |= ledger.present_of(source, other, [d for d in doc_ids if d not in known])
    return ledger.count_rows(source, names[0]) + len(known - first), known


def _read_rows(source: Source, doc_ids: list[str],
               missing: Callable[[str], SnapshotRow] | None = None) -> Iterator[SnapshotRow]:
    """The documents read; `missing` makes the row of one the source did not return."""
    for ids in batched(doc_ids, READ_BATCH):
        found: set[str] = set()
        for result in source.read(ids):
            found.add(result.doc_id)
            yield _snapshot_row(result)
        if missing is not None:
            yield from (missing(doc_id) for doc_id in ids if doc_id not in found)
        faults.reached("snapshot.read_batch")


def _gone(doc_id: str) -> SnapshotRow:
    return SnapshotRow(doc_id, None, "gone")


def targeted_snapshot_rows(source: Source, ledger: Ledger, doc_ids: Collection[str],
                           names: list[str], tally: Tally) -> Iterator[SnapshotRow]:
    """A snapshot that reads exactly `doc_ids` (a retry, an operator's re-sync, a migration's
    batch) and counts every other document the ledger knows as unchanged, without listing
    the source. A wanted document the source no longer has, or that is out of its scope,
    is "gone" (deleted)."""
    wanted = set(doc_ids)
    in_scope = wanted
    if not source.scoped_reads:
        # read() would take any path: keep to what the source's include/ignore rules list
        in_scope = {entry.doc_id for entry in source.scan() if entry.doc_id in wanted}
    count, known = _known(ledger, source.name, names, sorted(wanted))
    tally.skipped, tally.documents = count - len(known), count
    log.info("source %s: reading %d listed documents, the others kept as they are",
             source.name, len(in_scope))
    for row in chain(map(_gone, sorted(wanted - in_scope)),
                     _read_rows(source, sorted(in_scope), _gone)):
        tally.documents += (row.state != "gone") - (row.doc_id in known)
        yield row


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
    tally = Tally()

    def counted(rows: Iterator[SnapshotRow]) -> Iterator[SnapshotRow]:
        for row in rows:
            states[row.state] += 1
            yield row

    with open_ledger(config.state) as ledger, old_objects_frozen():
        specs = collection_specs(config, source_name)
        rows = changed_rows(source, ledger, specs, tally, full) if only is None else \
            targeted_snapshot_rows(source, ledger, only, [s.name for s in specs], tally)
        write_rows(path, SNAPSHOT, counted(rows), summary=tally.as_dict)
        detection = checkpoints.note_checkpoint(ledger, source)
    seconds = timed(started)
    total = tally.documents
    log.info("snapshot of %s: %d documents (%d read, %d unchanged hint, %d failed, %d gone) "
             "in %.2f s", source_name, total, states["read"], tally.skipped, states["failed"],
             states["gone"], seconds)
    return {"documents": total, "read": states["read"], "skipped_unchanged": tally.skipped,
            "targeted": only is not None, "failed": states["failed"], "gone": states["gone"],
            "duration_s": seconds,
            **throughput("documents_per_s", total, seconds), "path": str(path), **detection}
