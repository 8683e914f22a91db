"""Parquet artifacts under the state dir, written and read in bounded batches."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

BATCH_ROWS = 2000

SNAPSHOT = pa.schema([
    ("doc_id", pa.string()), ("version", pa.string()),
    ("state", pa.string()),  # "read" | "skipped" (hint unchanged, not read) | "failed"
    ("fields_json", pa.string()), ("error_code", pa.string()), ("error", pa.string()),
])
CHANGES = pa.schema([
    ("doc_id", pa.string()), ("action", pa.string()), ("source_version", pa.string()),
    ("content_hash", pa.string()), ("payload_hash", pa.string()), ("payload_json", pa.string()),
    ("chunks", pa.list_(pa.string())), ("error_code", pa.string()), ("error", pa.string()),
])
EXPECTED = pa.schema([  # what Qdrant should hold, derived from the source alone
    ("doc_id", pa.string()), ("content_hash", pa.string()), ("payload_hash", pa.string()),
    ("chunk_count", pa.int32()),
])
EMBEDDINGS = pa.schema([
    ("doc_id", pa.string()), ("content_hash", pa.string()), ("chunk_index", pa.int32()),
    ("vector", pa.list_(pa.float32())),
])


class StateFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def snapshot(self, source: str) -> Path:
        return self.root / "snapshots" / f"{source}.parquet"

    def changes(self, collection: str, source: str) -> Path:
        return self.root / "changes" / collection / f"{source}.parquet"

    def change_counts(self, collection: str, source: str) -> Path:
        return self.changes(collection, source).with_suffix(".counts.json")

    def expected(self, collection: str, source: str) -> Path:
        return self.root / "expected" / collection / f"{source}.parquet"

    def embeddings(self, collection: str, source: str) -> Path:
        return self.root / "embeddings" / collection / f"{source}.parquet"


def write_rows(path: Path, schema: pa.Schema, rows: Iterable[dict[str, Any]]) -> int:
    """Stream rows into `path` atomically (a reader never sees a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    written = 0
    try:
        with pq.ParquetWriter(partial, schema) as writer:
            for batch in _chunks(rows):
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                written += len(batch)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return written


def _chunks(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def read_rows(path: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet: materialize its upstream asset first")
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns):
        yield from batch.to_pylist()


def read_expected(path: Path) -> dict[str, tuple[str, str, int]]:
    """doc_id -> (content_hash, payload_hash, chunk_count); empty if never written."""
    if not path.exists():
        return {}
    table = pq.read_table(path)
    return {d: (c, p, n) for d, c, p, n in zip(*(table.column(i).to_pylist() for i in range(4)),
                                               strict=True)}


def expected_ids(path: Path) -> set[str]:
    """The documents an expected-state file covers (its doc_id column only)."""
    if not path.exists():
        return set()
    return set(pq.read_table(path, columns=["doc_id"]).column(0).to_pylist())


def write_expected(path: Path, expected: dict[str, tuple[str, str, int]]) -> None:
    write_rows(path, EXPECTED, (
        {"doc_id": d, "content_hash": c, "payload_hash": p, "chunk_count": n}
        for d, (c, p, n) in expected.items()))
