"""Stage 2, diff: one collection's change set, the decision table applied to a snapshot.

For every document: added, updated (content changed: re-chunked, re-embedded), payload
only, deleted, or unchanged. A document without points in the collection (none of its
embedded fields) is never added or deleted there: it is unchanged while the source has it,
and when it leaves, the ledger forgets it without a count (action "forgotten"). Plus the
expected state (what Qdrant should hold, derived from the source alone), which the stage
keeps in the ledger for the consistency checks and for the documents the next snapshot does
not read. The mass-delete guard's rule is here too.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vector_sync.core import faults
from vector_sync.core.batches import batched, old_objects_frozen
from vector_sync.core.documents import nested_subset
from vector_sync.core.hashing import content_hash, payload_hash, stable_json
from vector_sync.core.ledger import Expected, Ledger, LedgerRow, open_ledger
from vector_sync.core.pipeline.expected_spill import ExpectedChanges
from vector_sync.core.pipeline.rows import OUTCOMES, Action, Change, SnapshotRow
from vector_sync.core.pipeline.snapshot import Seen
from vector_sync.core.pipeline.state_files import (
    CHANGES,
    SNAPSHOT,
    StateFiles,
    read_rows,
    read_summary,
    write_rows,
)
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.spec import CollectionSpec, spec_for
from vector_sync.core.stats import timed
from vector_sync.core.text.chunking import chunk_document
from vector_sync.core.text.embedder import Embedder
from vector_sync.core.text.render import render
from vector_sync.core.text.tokens import TokenCounter

log = logging.getLogger(__name__)

class ChunkBudgetError(Exception):
    """Chunks would be longer than the model reads: they would be silently truncated."""


@dataclass
class Diff:
    """Counts of one collection's change set, in documents, plus the chunks to embed."""

    counts: Counter[str] = field(default_factory=Counter)
    chunks: int = 0
    documents_before: int = 0  # with points in this collection, as the ledger says
    documents_now: int = 0  # in the source snapshot

    def as_dict(self) -> dict[str, int]:
        return {**{k: self.counts[k] for k in OUTCOMES}, "chunks_to_embed": self.chunks,
                "documents_before": self.documents_before, "documents_now": self.documents_now}


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

    def decide(self, row: SnapshotRow, previous: LedgerRow | None,
               diff: Diff) -> Change | None:
        """The change for one document of the snapshot (None: nothing to write anywhere),
        counted in `diff`; its expected state goes into `expected`."""
        diff.documents_now += 1
        if row.state == "read":
            change, self.expected[row.doc_id] = self._compare(row, previous)
        else:
            change = self._unread(row, previous)
        if change is None:
            diff.counts["unchanged"] += 1
            return None
        diff.counts[change.action] += 1
        diff.chunks += len(change.chunks or ())
        return change

    @staticmethod
    def gone(doc_id: str, chunk_count: int, diff: Diff) -> Change:
        """A document of the ledger the snapshot no longer has."""
        if chunk_count == 0:  # no point in Qdrant to delete: nothing to count
            return Change(doc_id, "forgotten")
        diff.counts["deleted"] += 1
        return Change(doc_id, "deleted")

    def _unread(self, row: SnapshotRow, previous: LedgerRow | None) -> Change | None:
        """Not read (hint unchanged) or unreadable: Qdrant should keep what it has."""
        known = self.previous_expected.get(row.doc_id)
        if known is None and previous is not None and previous.content_hash is not None:
            known = Expected(previous.content_hash, previous.payload_hash or "",
                             previous.chunk_count)
        if known is not None:
            self.expected[row.doc_id] = known
        if row.state == "failed":
            return Change(row.doc_id, "failed", row.version, error_code=row.error_code,
                          error=row.error)
        return None

    def _compare(self, row: SnapshotRow,
                 previous: LedgerRow | None) -> tuple[Change | None, Expected]:
        """The decision table for a document that was read, and what Qdrant should hold."""
        assert row.fields_json is not None  # a read row carries its fields
        fields = json.loads(row.fields_json)
        preamble, body = render(fields, self.spec.embed)
        payload = nested_subset(fields, self.spec.payload)
        chash = content_hash(self.spec.vector_version, preamble, body)
        phash = payload_hash(payload)

        def change(action: Action, chunks: list[str] | None = None) -> Change:
            return Change(row.doc_id, action, row.version, chash, phash, stable_json(payload),
                          chunks)

        if not (preamble or body):  # none of the embedded fields: no points here
            if previous is not None and previous.chunk_count:
                return change("deleted", []), Expected(chash, phash, 0)
            return self._touch(change("unchanged"), previous), Expected(chash, phash, 0)
        if previous is None or previous.content_hash != chash or (
            previous.status in ("pending", "stale")  # cut off, or found wrong: redo it
        ):
            synced_before = previous is not None and previous.content_hash is not None
            chunks = self._chunks(preamble, body)
            return change("updated" if synced_before else "added", chunks), \
                Expected(chash, phash, len(chunks))
        known = self.previous_expected.get(row.doc_id)
        count = known.chunk_count if known and known.content_hash == chash else \
            len(self._chunks(preamble, body))  # rare: no earlier expectation (state lost)
        if previous.payload_hash != phash:
            return change("payload_updated"), Expected(chash, phash, count)
        return self._touch(change("unchanged"), previous), Expected(chash, phash, count)

    def _chunks(self, preamble: str, body: str) -> list[str]:
        return [c.text for c in chunk_document(
            preamble, body, count_tokens=self.count_tokens,
            max_tokens=self.spec.chunking.max_tokens,
            overlap_tokens=self.spec.chunking.overlap_tokens)]

    @staticmethod
    def _touch(new: Change, previous: LedgerRow | None) -> Change | None:
        """Nothing to write to Qdrant; the ledger may still have to learn the new hint."""
        if (previous is not None and previous.status == "synced"
                and previous.source_version == new.source_version
                and previous.content_hash == new.content_hash):
            return None
        return new


def mass_delete(counts: dict[str, int], max_fraction: float) -> str | None:
    """Why a change set's deletions look like an accident (an unmounted vault, an emptied
    collection, a filter gone wrong), or None."""
    deleted, before = counts["deleted"], counts["documents_before"]
    if deleted and counts["documents_now"] == 0:
        return f"the source now yields no documents, but {before} were synced before"
    if before and deleted > max_fraction * before:
        return (f"{deleted} of {before} documents would be deleted, more than "
                f"max_delete_fraction {max_fraction}")
    return None


def differ_for(config: VectorSyncConfig, collection: str,
               previous_expected: dict[str, Expected]) -> Differ:
    """A Differ counting tokens as the collection's model does. Raises ChunkBudgetError when
    the configured chunks are longer than the model reads."""
    spec = spec_for(config, collection)
    embedder = Embedder(config.embedding_for(collection))
    limit = embedder.max_tokens()
    if spec.chunking.max_tokens > limit:
        raise ChunkBudgetError(
            f"collections.{collection}.chunking.max_tokens is {spec.chunking.max_tokens} but "
            f"model {spec.model} reads at most {limit} tokens")
    return Differ(spec, embedder.count_tokens(), previous_expected)


# --- streaming a snapshot through the Differ -------------------------------------------------

DIFF_BATCH = 2_000  # snapshot rows decided together: one keyed ledger look-up per batch


class KeyedDiff:
    """A collection's diff over a snapshot streamed in batches. For each batch, the expected
    states and (only where the decision needs them: documents read, failed or gone, or
    without an expectation to carry forward) the ledger rows of its documents are looked up
    by doc_id. A sync's snapshot holds only the documents to decide (its skipped ones are
    counted in its footer, the ones gone are rows of their own), so the diff never pages
    through the ledger. Over a full stream (`changes` without a tally: a snapshot file of
    an earlier version), what the snapshot no longer has is found by paging through the
    ledger afterwards, holding 8 bytes per document. The expectations that changed are
    kept to be written (`changed`), spilled to the file `spill` past a bound.
    `on_expected`, if set, is given each batch's expected states (the consistency check
    folds them)."""

    def __init__(self, ledger: Ledger, source: str, differ: Differ,
                 keep_changed: bool = True, spill: Path | None = None) -> None:
        """`keep_changed` False: a dry look that writes no expectation keeps none."""
        self.ledger, self.source, self.differ = ledger, source, differ
        self.keep_changed = keep_changed
        self.collection = differ.spec.name
        self.changed = ExpectedChanges(spill)  # new or different expectations, to write
        self.removed: list[str] = []  # expectations of documents the source no longer has
        self.on_expected: Callable[[dict[str, Expected]], None] | None = None
        self._seen = Seen()

    def changes(self, snapshot: Iterable[SnapshotRow], diff: Diff,
                tally: dict[str, int] | None = None) -> Iterator[Change]:
        """Rows of the change set (`diff` is filled in). Rows that need no Qdrant write are
        still emitted when the ledger must learn something (a new hint, a failure, a row to
        forget): as action "unchanged", "failed" or "forgotten". `tally`: the snapshot's
        footer (its rows are those to decide: see snapshot.Tally); without it, the snapshot
        is a full stream."""
        if tally is not None:
            # the mass-delete guard weighs deletions against what the collection holds
            diff.documents_before = self.ledger.count_rows(self.source, self.collection,
                                                           with_points=True)
            diff.counts["unchanged"] += tally["skipped"]
        for batch in batched(snapshot, DIFF_BATCH):
            if tally is None:
                self._seen.add(row.doc_id for row in batch if row.state != "gone")
            yield from self.decide(batch, diff)
        if tally is None:
            yield from self.leftovers(diff)
        else:
            diff.documents_now = tally["documents"]

    def decide(self, batch: list[SnapshotRow], diff: Diff) -> Iterator[Change]:
        """The changes of one batch of the snapshot (all of it decided once consumed)."""
        differ, source, collection = self.differ, self.source, self.collection
        ids = [row.doc_id for row in batch]
        previous = self.ledger.expected_of(source, collection, ids)
        needed = [row.doc_id for row in batch
                  if row.state != "skipped" or row.doc_id not in previous]
        rows = {row.doc_id: row for row in self.ledger.rows_of(source, collection, needed)}
        differ.previous_expected, differ.expected = previous, {}
        for row in batch:
            if row.state == "gone":  # deleted if the ledger has it here, its expectation too
                if row.doc_id in previous:
                    self.removed.append(row.doc_id)
                if (held := rows.get(row.doc_id)) is not None:
                    yield differ.gone(row.doc_id, held.chunk_count, diff)
            elif (change := differ.decide(row, rows.get(row.doc_id), diff)) is not None:
                yield change
        if self.keep_changed:
            self.changed.update({doc_id: now for doc_id, now in differ.expected.items()
                                 if previous.get(doc_id) != now})
        if self.on_expected is not None:
            self.on_expected(differ.expected)
        differ.previous_expected, differ.expected = {}, {}

    def leftovers(self, diff: Diff) -> Iterator[Change]:
        """Once every batch of a full stream is decided: the ledger's documents it no longer
        has (deleted, or forgotten), found by paging through the ledger; and the
        expectations to remove (`removed`)."""
        source, collection = self.source, self.collection
        for page in self.ledger.key_pages(source, collection):
            # the mass-delete guard weighs deletions against what the collection holds
            diff.documents_before += sum(1 for _, count, _ in page if count)
            for doc_id, count, _ in self._seen.missing(page):  # in the ledger, not the source
                yield self.differ.gone(doc_id, count, diff)
        for expected in self.ledger.expected_pages(source, collection):
            self.removed += [entry[0] for entry in self._seen.missing(expected)]


# --- the stage ------------------------------------------------------------------------------


def changes(config: VectorSyncConfig, source: str, collection: str) -> dict[str, float]:
    """Write the change set of `collection` from the source's snapshot, with its counts in
    the file's footer, and keep the expected state in the ledger. Returns the counts."""
    files = StateFiles(config.state.dir)
    started = time.perf_counter()
    diff = Diff()
    snapshot = files.snapshot(source)
    tally = read_summary(snapshot) or None  # none: a full stream, of an earlier version
    target = files.changes(collection, source)
    with open_ledger(config.state) as ledger, old_objects_frozen():
        keyed = KeyedDiff(ledger, source, differ_for(config, collection, {}),
                          spill=target.with_name(f".{target.stem}.expected.parquet"))
        try:
            write_rows(target, CHANGES, keyed.changes(read_rows(snapshot, SNAPSHOT), diff,
                                                      tally), summary=diff.as_dict)
            # only once the change set is on disk: a run cut off before keeps the old ones
            ledger.update_expected(source, collection, keyed.changed, keyed.removed)
        finally:
            keyed.changed.remove()
    faults.reached("changes.expected_saved")
    log.info("changes for %s from %s: %s", collection, source, diff.as_dict())
    return {**diff.as_dict(), "duration_s": timed(started)}

