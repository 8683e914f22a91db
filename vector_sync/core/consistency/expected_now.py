"""The expected state of a source's collections as the source is now, for `verify`, without
holding it in memory: the source is listed once for all its collections (reading only what
the hints say changed, as a dry run does), each batch of the listing goes through every
collection's diff (pipeline/diff.KeyedDiff, which looks the ledger up by doc_id), and each
document's expected state is spilled to a temporary Parquet file per collection. The check
reads that file once for its digests and once more for the buckets that differ.

A sampled check needs the expected state of its sample only: `expected_of` reads just those
documents from the source, by id, and decides them as the complete check does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from vector_sync.core.batches import batched
from vector_sync.core.documents import ReadFailure
from vector_sync.core.hashing import stable_json
from vector_sync.core.ledger import Expected, Ledger
from vector_sync.core.pipeline.diff import DIFF_BATCH, Diff, KeyedDiff, differ_for
from vector_sync.core.pipeline.expected_spill import open_spill, read_expected, write_expected
from vector_sync.core.pipeline.rows import SnapshotRow
from vector_sync.core.pipeline.snapshot import snapshot_rows
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.spec import collection_specs


class ExpectedFile:
    """One collection's expected state, spilled: `checked` documents calling for `points`
    points. Calling it streams (doc_id, Expected) in the order they were added."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checked = 0
        self.points = 0
        self._writer: pq.ParquetWriter | None = open_spill(path)

    def add(self, states: dict[str, Expected]) -> None:
        if not states or self._writer is None:
            return
        write_expected(self._writer, states)
        self.checked += len(states)
        self.points += sum(v.chunk_count for v in states.values())

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __call__(self) -> Iterator[tuple[str, Expected]]:
        self.close()
        return read_expected(self.path, DIFF_BATCH)



def expected_now(config: VectorSyncConfig, source_name: str, ledger: Ledger, scratch: Path,
                 collections: Collection[str] | None = None) -> dict[str, ExpectedFile]:
    """collection -> its expected state now, for every collection of the source (or only
    `collections`), spilled under `scratch`. Raises SourceUnavailable."""
    specs = [s for s in collection_specs(config, source_name)
             if collections is None or s.name in collections]
    source = config.sources[source_name].open_read_only(source_name,
                                                        config.fields_of(source_name))
    found: dict[str, ExpectedFile] = {}
    diffs: list[tuple[KeyedDiff, Diff]] = []
    try:
        for number, spec in enumerate(specs):
            keyed = KeyedDiff(ledger, source_name, differ_for(config, spec.name, {}),
                              keep_changed=False)
            # by number: a collection's name need not be a good file name
            found[spec.name] = ExpectedFile(scratch / f"{number}.parquet")
            keyed.on_expected = found[spec.name].add
            diffs.append((keyed, Diff()))
        for batch in batched(snapshot_rows(source, ledger, specs), DIFF_BATCH):
            for keyed, diff in diffs:
                for _ in keyed.decide(batch, diff):
                    pass  # the changes a sync would make: only the expected state is kept
    finally:
        for spilled in found.values():
            spilled.close()
    return found


def expected_of(config: VectorSyncConfig, source_name: str, ledger: Ledger,
                doc_ids: Sequence[str], collections: Collection[str]
                ) -> tuple[dict[str, dict[str, Expected]], bool]:
    """collection -> doc_id -> expected state now, of `doc_ids` only, and whether the
    source's reads apply its scope (Source.scoped_reads). Each document is read from the
    source by id (one read for every collection) and decided as a dry run decides it. A
    document the source no longer has (or no longer keeps in its scope, for a source whose
    reads apply it) has no expected state; one that cannot be read keeps the ledger's.
    Raises SourceUnavailable."""
    specs = [s for s in collection_specs(config, source_name) if s.name in collections]
    source = config.sources[source_name].open_read_only(source_name,
                                                        config.fields_of(source_name))
    found: dict[str, dict[str, Expected]] = {spec.name: {} for spec in specs}
    diffs: list[KeyedDiff] = []
    for spec in specs:
        keyed = KeyedDiff(ledger, source_name, differ_for(config, spec.name, {}),
                          keep_changed=False)
        keyed.on_expected = found[spec.name].update
        diffs.append(keyed)
    for ids in batched(doc_ids, DIFF_BATCH):
        rows = [SnapshotRow(r.doc_id, r.version, "failed", error_code=r.error_code,
                            error=r.message) if isinstance(r, ReadFailure) else
                SnapshotRow(r.doc_id, r.version, "read", stable_json(r.fields))
                for r in source.read(ids)]
        for keyed in diffs:
            for _ in keyed.decide(rows, Diff()):
                pass  # only the expected state is kept
    return found, source.scoped_reads
