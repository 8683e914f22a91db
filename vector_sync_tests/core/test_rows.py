"""The rows the stages hand each other: each Parquet schema agrees with its Python row type,
and rows come back from a stage file as they were written."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Literal, Union, get_args, get_origin, get_type_hints

import pyarrow as pa
import pytest

from vector_sync.core.pipeline.rows import (
    EMBEDS,
    KEEPS_POINTS,
    LEAVES,
    OPERATES,
    OUTCOMES,
    WRITES_QDRANT,
    Action,
    Change,
    EmbeddingRow,
    SnapshotRow,
)
from vector_sync.core.pipeline.state_files import (
    CHANGES,
    EMBEDDINGS,
    SNAPSHOT,
    RowFile,
    read_rows,
    write_rows,
)

FILES = {"snapshot": SNAPSHOT, "changes": CHANGES, "embeddings": EMBEDDINGS}


def arrow_type(hint: object) -> tuple[pa.DataType, bool]:
    """The Arrow type a Python field type is stored as, and whether it may be None. Integers
    are stored as int32 and floats as float32 (chunk indexes, vector components)."""
    if get_origin(hint) in (Union, types.UnionType):
        (inner,) = [arg for arg in get_args(hint) if arg is not type(None)]
        return arrow_type(inner)[0], True
    if get_origin(hint) is Literal:
        assert all(isinstance(value, str) for value in get_args(hint))
        return pa.string(), False
    if get_origin(hint) is list:
        (item,) = get_args(hint)
        return pa.list_(arrow_type(item)[0]), False
    return {str: pa.string(), int: pa.int32(), float: pa.float32()}[hint], False


@pytest.mark.parametrize("kind", FILES)
def test_each_parquet_schema_has_the_fields_and_types_of_its_row(kind: str) -> None:
    layout = FILES[kind]
    hints = get_type_hints(layout.row)
    assert layout.schema.names == list(layout.row._fields) == list(hints)
    for field in layout.schema:
        stored, optional = arrow_type(hints[field.name])
        assert field.type == stored, f"{kind}.{field.name}"
        assert field.nullable or not optional, f"{kind}.{field.name} may be None"


def test_a_schema_that_disagrees_with_its_row_is_refused() -> None:
    swapped = pa.schema([("content_hash", pa.string()), ("doc_id", pa.string()),
                         ("chunk_index", pa.int32()), ("vector", pa.list_(pa.float32()))])
    with pytest.raises(TypeError, match="not the fields of EmbeddingRow"):
        RowFile("embeddings", EmbeddingRow, swapped)


def test_the_named_sets_hold_actions_and_the_counted_outcomes_are_actions() -> None:
    actions = set(get_args(Action))
    for named in (EMBEDS, WRITES_QDRANT, OPERATES, KEEPS_POINTS, LEAVES):
        assert named <= actions
    assert set(OUTCOMES) == actions - {"forgotten"}  # forgotten documents are not counted
    assert EMBEDS | OPERATES == WRITES_QDRANT and not EMBEDS & OPERATES


def test_rows_come_back_from_a_stage_file_as_they_were_written(tmp_path: Path) -> None:
    snapshot = [SnapshotRow("a.md", "v1", "read", '{"title": "A"}'),
                SnapshotRow("b.md", "v2", "skipped"),
                SnapshotRow("c.md", "v3", "failed", error_code="invalid_utf8", error="bad byte")]
    changes = [Change("a.md", "added", "v1", "h1", "p1", "{}", ["one", "two"]),
               Change("b.md", "deleted", "v2", "h2", "p2", "{}", []),
               Change("c.md", "failed", "v3", error_code="invalid_utf8", error="bad byte"),
               Change("d.md", "forgotten")]
    embeddings = [EmbeddingRow("a.md", "h1", 0, [0.5, -1.0]),
                  EmbeddingRow("a.md", "h1", 1, [0.25, 2.0])]
    for layout, rows in ((SNAPSHOT, snapshot), (CHANGES, changes), (EMBEDDINGS, embeddings)):
        path = tmp_path / f"{layout.kind}.parquet"
        assert write_rows(path, layout, rows) == len(rows)
        assert list(read_rows(path, layout)) == rows
        assert all(type(row) is layout.row for row in read_rows(path, layout))

    # a read of some columns only: the other fields are None
    path = tmp_path / "changes.parquet"
    assert list(read_rows(path, CHANGES, ["doc_id", "action"])) == [
        Change(c.doc_id, c.action) for c in changes]
    with pytest.raises(ValueError, match="no column"):
        next(read_rows(path, CHANGES, ["doc_id", "vector"]))
