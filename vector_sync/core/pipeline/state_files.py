"""The Parquet files one stage hands to the next, under the state dir, written and read in
bounded batches: snapshot (per source) -> changes -> embeddings (per collection and source);
and the list of sync statuses still owed to a source that writes them back.
A file may carry a small summary in its footer (the change set's counts), so the stage that
reads it needs nothing else. State that outlives a run is in the ledger, except that list;
an embeddings file is emptied (`consume`) once the Qdrant step has applied it."""

from __future__ import annotations

import glob
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import pyarrow as pa
import pyarrow.parquet as pq

from vector_sync.core import faults
from vector_sync.core.atomic import atomic_write, write_atomically
from vector_sync.core.pipeline.rows import Change, EmbeddingRow, SnapshotRow

BATCH_ROWS = 2000

Row = TypeVar("Row", SnapshotRow, Change, EmbeddingRow)


@dataclass(frozen=True)
class RowFile(Generic[Row]):
    """A kind of stage file: the type of its rows (rows.py) and their Parquet schema, the
    same fields in the same order. `kind` names the file in kill points."""

    kind: str
    row: type[Row]
    schema: pa.Schema

    def __post_init__(self) -> None:
        if self.schema.names != list(self.row._fields):
            raise TypeError(f"the {self.kind} schema's columns {self.schema.names} are not "
                            f"the fields of {self.row.__name__} {self.row._fields}")


SNAPSHOT = RowFile("snapshot", SnapshotRow, pa.schema([
    ("doc_id", pa.string()), ("version", pa.string()), ("state", pa.string()),
    ("fields_json", pa.string()), ("error_code", pa.string()), ("error", pa.string()),
]))
CHANGES = RowFile("changes", Change, pa.schema([
    ("doc_id", pa.string()), ("action", pa.string()), ("source_version", pa.string()),
    ("content_hash", pa.string()), ("payload_hash", pa.string()), ("payload_json", pa.string()),
    ("chunks", pa.list_(pa.string())), ("error_code", pa.string()), ("error", pa.string()),
]))
EMBEDDINGS = RowFile("embeddings", EmbeddingRow, pa.schema([
    ("doc_id", pa.string()), ("content_hash", pa.string()), ("chunk_index", pa.int32()),
    ("vector", pa.list_(pa.float32())),
]))


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

    def embedding_shards(self, collection: str, source: str) -> list[Path]:
        """The shard files of the embeddings file on disk, whatever their count (that of an
        earlier run may differ from the configured one)."""
        folder = self.root / "embeddings" / collection
        return sorted(folder.glob(f"{glob.escape(source)}.shard-*-of-*.parquet"))

    def write_back(self, collection: str, source: str) -> Path:
        """Documents whose sync status is still owed to a source that writes it back."""
        return self.root / "write_back" / collection / f"{source}.json"


SUMMARY_KEY = b"vector_sync.summary"


def write_rows(path: Path, layout: RowFile[Row], rows: Iterable[Row],
               summary: Callable[[], dict[str, int]] | None = None) -> int:
    """Stream rows into `path` atomically (a reader never sees a half-written file).
    `summary`, called once every row is written, is stored in the footer (`read_summary`)."""
    schema = layout.schema
    written = 0
    try:
        with atomic_write(path) as partial_file:
            with pq.ParquetWriter(partial_file, schema) as writer:
                for batch in _chunks(rows):
                    columns = zip(*batch, strict=True)  # rows are tuples in the schema's order
                    writer.write_batch(pa.RecordBatch.from_arrays(
                        [pa.array(column, type=field.type)
                         for column, field in zip(columns, schema, strict=True)], schema=schema))
                    written += len(batch)
                    faults.reached(f"{layout.kind}.writing")
                if summary is not None:
                    writer.add_key_value_metadata({SUMMARY_KEY: json.dumps(summary())})
            faults.reached(f"{layout.kind}.before_rename")
    except OSError as error:  # a full disk, above all: say which file, keep the old one
        raise OSError(error.errno, f"cannot write {path} ({error}); the previous file is "
                      "kept") from None
    faults.reached(f"{layout.kind}.renamed")
    return written


def _chunks(rows: Iterable[Row]) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def read_rows(path: Path, layout: RowFile[Row],
              columns: Sequence[str] | None = None) -> Iterator[Row]:
    """The file's rows. With `columns`, only those are read: the row's other fields are
    None (whatever their type says), so a caller reads only the fields it asked for."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet: materialize its upstream asset first")
    fields = layout.row._fields
    if columns is not None and not set(columns) <= set(fields):
        raise ValueError(f"{layout.kind} rows have no column {sorted(set(columns) - set(fields))}")
    # a row is made from its column values as they come, by tuple's own constructor (no
    # per-row Python call: a no-op sync reads every document's snapshot row)
    make = cast(Callable[[Iterable[Any]], Row], partial(tuple.__new__, layout.row))
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns):
        read = batch.to_pydict()
        values = [read[name] if name in read else repeat(None, batch.num_rows)
                  for name in fields]
        yield from map(make, zip(*values, strict=False))
        # let go of this batch before the next is read: two batches of vectors as Python
        # floats at once would double what the reader holds
        del read, values


def read_summary(path: Path) -> dict[str, int]:
    """The summary `write_rows` stored in the file's footer."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet: materialize its upstream asset first")
    metadata = pq.read_metadata(path).metadata or {}
    return dict(json.loads(metadata[SUMMARY_KEY])) if SUMMARY_KEY in metadata else {}


CONSUMED_KEY = b"vector_sync.consumed"


def consume(path: Path, layout: RowFile[Row]) -> int:
    """Empty a hand-off file whose rows the next stage has applied for good: it is replaced
    by a file of the same schema without rows (every reader still finds the file it
    expects), its footer recording how many rows it held (`consumed`). Returns the bytes
    freed. An embeddings file of an initial sync holds a vector per chunk, gigabytes at a
    million documents, that nothing reads once Qdrant holds them."""
    if not path.exists():
        return 0
    before, rows = path.stat().st_size, pq.read_metadata(path).num_rows
    if rows == 0:  # consumed already, or nothing to hold (a run that embedded nothing)
        return 0
    with atomic_write(path) as partial_file, \
            pq.ParquetWriter(partial_file, layout.schema) as writer:
        writer.add_key_value_metadata({CONSUMED_KEY: json.dumps({"rows": rows})})
    faults.reached(f"{layout.kind}.consumed")
    return max(before - path.stat().st_size, 0)


def consumed(path: Path) -> int | None:
    """How many rows the file held before `consume` emptied it, or None when it was not
    consumed (or does not exist)."""
    if not path.exists():
        return None
    metadata = pq.read_metadata(path).metadata or {}
    return int(json.loads(metadata[CONSUMED_KEY])["rows"]) if CONSUMED_KEY in metadata else None


def write_json(path: Path, value: Any) -> None:
    """A small JSON state file, replaced atomically."""
    write_atomically(path, json.dumps(value))


def read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default
