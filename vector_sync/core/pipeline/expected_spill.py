"""Expectations spilled to a Parquet file, so a stage holds one batch of them, not one per
document: the diff's new or different expectations (kept until its change set is on disk;
the ledger learns them only then, so a run cut off before keeps the previous ones, which the
change set being redone is decided against), and verify's expected state of a source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vector_sync.core.ledger import Expected

SPILL_AT = 20_000  # expectations held before they are written to the file
_SCHEMA = pa.schema([("doc_id", pa.string()), ("content_hash", pa.string()),
                     ("payload_hash", pa.string()), ("chunk_count", pa.int64())])


def open_spill(path: Path) -> pq.ParquetWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    return pq.ParquetWriter(path, _SCHEMA)


def write_expected(writer: pq.ParquetWriter, states: dict[str, Expected]) -> None:
    values = list(states.values())
    writer.write_batch(pa.RecordBatch.from_arrays([
        pa.array(list(states), pa.string()),
        pa.array([v.content_hash for v in values], pa.string()),
        pa.array([v.payload_hash for v in values], pa.string()),
        pa.array([v.chunk_count for v in values], pa.int64())], schema=_SCHEMA))


def read_expected(path: Path, batch_size: int = SPILL_AT) -> Iterator[tuple[str, Expected]]:
    """(doc_id, Expected) in the order written; the file is closed too when a reader stops
    early."""
    with pq.ParquetFile(path) as spilled:
        for batch in spilled.iter_batches(batch_size=batch_size):
            read = batch.to_pydict()
            yield from zip(read["doc_id"], map(Expected, read["content_hash"],
                                               read["payload_hash"], read["chunk_count"]),
                           strict=True)


class ExpectedChanges:
    """doc_id -> Expected, each document added once (a snapshot has one row per document),
    up to SPILL_AT held in memory and the rest in the file at `path` (without one, all are
    held). Iterable more than once (a ledger write repeated after an outage reads it again):
    the spilled ones in the order they came, then those held."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._held: dict[str, Expected] = {}
        self._writer: pq.ParquetWriter | None = None
        self._spilled = False

    def update(self, states: dict[str, Expected]) -> None:
        self._held.update(states)
        if self.path is not None and len(self._held) >= SPILL_AT:
            self._writer = self._writer or open_spill(self.path)
            write_expected(self._writer, self._held)
            self._spilled, self._held = True, {}

    def __iter__(self) -> Iterator[tuple[str, Expected]]:
        self._close()
        if self._spilled and self.path is not None:
            yield from read_expected(self.path)
        yield from self._held.items()

    def remove(self) -> None:
        """Delete the file, once its expectations are written (or the run is given up)."""
        self._close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
