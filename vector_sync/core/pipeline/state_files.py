"""The Parquet files one stage hands to the next, under the state dir, written and read in
bounded batches: snapshot (per source) -> changes -> embeddings (per collection and source);
and the list of sync statuses still owed to a source that writes them back.
A file may carry a small summary in its footer (the change set's counts), so the stage that
reads it needs nothing else. State that outlives a run is in the ledger, except that list."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vector_sync.core import faults

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
EMBEDDINGS = pa.schema([
    ("doc_id", pa.string()), ("content_hash", pa.string()), ("chunk_index", pa.int32()),
    ("vector", pa.list_(pa.float32())),
])


_KINDS = {SNAPSHOT: "snapshot", CHANGES: "changes", EMBEDDINGS: "embeddings"}  # kill points


class StateFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def snapshot(self, source: str) -> Path:
        return self.root / "snapshots" / f"{source}.parquet"

    def changes(self, collection: str, source: str) -> Path:
        return self.root / "changes" / collection / f"{source}.parquet"

    def embeddings(self, collection: str, source: str,
                   shard: tuple[int, int] | None = None) -> Path:
        """The embeddings file, or with `shard` (i, n) the i-th of n shard files merged
        into it."""
        name = source if shard is None else f"{source}.shard-{shard[0]}-of-{shard[1]}"
        return self.root / "embeddings" / collection / f"{name}.parquet"

    def write_back(self, collection: str, source: str) -> Path:
        """Documents whose sync status is still owed to a source that writes it back."""
        return self.root / "write_back" / collection / f"{source}.json"


SUMMARY_KEY = b"vector_sync.summary"


def write_rows(path: Path, schema: pa.Schema, rows: Iterable[dict[str, Any]],
               summary: Callable[[], dict[str, Any]] | None = None) -> int:
    """Stream rows into `path` atomically (a reader never sees a half-written file).
    `summary`, called once every row is written, is stored in the footer (`read_summary`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    kind = _KINDS.get(schema, "parquet")
    written = 0
    try:
        with pq.ParquetWriter(partial, schema) as writer:
            for batch in _chunks(rows):
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                written += len(batch)
                faults.reached(f"{kind}.writing")
            if summary is not None:
                writer.add_key_value_metadata({SUMMARY_KEY: json.dumps(summary())})
    except OSError as error:  # a full disk, above all: say which file, keep the old one
        partial.unlink(missing_ok=True)
        raise OSError(error.errno, f"cannot write {path} ({error}); the previous file is "
                      "kept") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    faults.reached(f"{kind}.before_rename")
    os.replace(partial, path)
    faults.reached(f"{kind}.renamed")
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


def read_summary(path: Path) -> dict[str, Any]:
    """The summary `write_rows` stored in the file's footer."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet: materialize its upstream asset first")
    metadata = pq.read_metadata(path).metadata or {}
    return dict(json.loads(metadata[SUMMARY_KEY])) if SUMMARY_KEY in metadata else {}



def write_json(path: Path, value: Any) -> None:
    """A small JSON state file, replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(value))
    os.replace(partial, path)


def read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default
