"""Files that a run replaces (a collection's metadata in embedded Qdrant, the JSON state files
beside the hand-off files) are replaced whole or not at all: a write that fails part-way, on a
full disk above all, keeps the previous file and leaves no temporary file behind. (The disk is
a small tmpfs, which needs root to mount; elsewhere the test is skipped, under CI=true it
fails.)"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from vector_sync.core.atomic import atomic_write
from vector_sync.core.pipeline.state_files import read_json, write_json
from vector_sync.core.store.embedded import EmbeddedStore
from vector_sync_tests.support import tmpfs

TOO_BIG = "x" * 2_000_000  # more than the full disk has left


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a tmpfs; `_fill` takes its free space once the test has written there."""
    with tmpfs(tmp_path / "disk", "8m") as disk:
        yield disk


def _fill(disk: Path, leave_bytes: int = 64 * 1024) -> None:
    with (disk / "filler").open("wb") as out:
        os.posix_fallocate(out.fileno(), 0, max(shutil.disk_usage(disk).free - leave_bytes, 1))


def _temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name != "filler" and ".partial" in p.name]


def test_collection_metadata_on_a_full_disk_keeps_the_previous_and_leaves_no_temporary_file(
        full_disk: Path) -> None:
    store = EmbeddedStore.open(full_disk / "qdrant", 0)
    try:
        store.ensure_collection("notes", 4, "model-a", deployment="here")
        _fill(full_disk)
        with pytest.raises(OSError):
            store.set_metadata("notes", {"vector_sync": {"model": TOO_BIG}})
        assert store.model("notes") == "model-a" and store.deployment("notes") == "here"
        assert _temporary_files(full_disk) == []
    finally:
        store.close()


def test_a_json_state_file_on_a_full_disk_keeps_the_previous_and_leaves_no_temporary_file(
        full_disk: Path) -> None:
    path = full_disk / "state" / "write_back" / "notes" / "docs.json"
    write_json(path, ["a", "b"])
    _fill(full_disk)
    with pytest.raises(OSError):
        write_json(path, [TOO_BIG])
    assert read_json(path, None) == ["a", "b"]
    assert _temporary_files(full_disk) == []


def test_a_writer_that_fails_on_purpose_leaves_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "file.json"
    with atomic_write(path) as temporary:
        temporary.write_text("first")
    assert path.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_write(path) as temporary:
        temporary.write_text("half of the sec")
        raise RuntimeError("the writer failed")
    assert path.read_text() == "first"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.json"]
