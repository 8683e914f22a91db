"""The expectations a diff found new or different, kept until its change set is on disk (the
ledger learns them only then, so a run cut off before keeps the previous ones, which the
change set being redone is decided against). Up to SPILL_AT are held in memory; past that
they go to a Parquet file, so an initial sync of a million documents holds one batch of
them, not 0.4 GB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vector_sync.core.ledger import Expected

SPILL_AT = 20_000  # expectations held before they are written to the file
_SCHEMA = pa.schema([("doc_id", pa.string()), ("content_hash", pa.string()),
                     ("payload_hash", pa.string()), ("chunk_count", pa.int64())])


class ExpectedChanges:
    """doc_id -> Expected, each document added once (a snapshot has one row per document).
    Without a `path`, everything is held."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.count = 0
        self._held: dict[str, Expected] = {}
        self._writer: pq.ParquetWriter | None = None

    def update(self, states: dict[str, Expected]) -> None:
        self._held.update(states)
        self.count += len(states)
        if self.path is not None and len(self._held) >= SPILL_AT:
            self._spill(self.path)

    def items(self) -> Iterator[tuple[str, Expected]]:
        """Every expectation added: those spilled, in the order they came, then those held."""
        if self._writer is not None and self.path is not None:
            self._writer.close()
            self._writer = None
            with pq.ParquetFile(self.path) as spilled:
                for batch in spilled.iter_batches(batch_size=SPILL_AT):
                    read = batch.to_pydict()
                    yield from zip(read["doc_id"], map(
                        Expected, read["content_hash"], read["payload_hash"],
                        read["chunk_count"]), strict=True)
        yield from self._held.items()

    def remove(self) -> None:
        """Delete the file, once its expectations are written (or the run is given up)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return self.count

    def _spill(self, path: Path) -> None:
        if self._writer is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(path, _SCHEMA)
        values = list(self._held.values())
        self._writer.write_batch(pa.RecordBatch.from_arrays([
            pa.array(list(self._held), pa.string()),
            pa.array([v.content_hash for v in values], pa.string()),
            pa.array([v.payload_hash for v in values], pa.string()),
            pa.array([v.chunk_count for v in values], pa.int64())], schema=_SCHEMA))
        self._held = {}
