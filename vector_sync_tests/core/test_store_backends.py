"""Both Qdrant engines behind the store answer the same calls the same way, and embedded
storage written by earlier versions (qdrant-client's local mode) is migrated on first open.

No Qdrant server can run here, so the server engine is driven through qdrant-client's local
mode, which serves the same client API from files."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from vector_sync.config import QdrantConfig, StateConfig
from vector_sync.core.store import (
    CollectionMismatch,
    DeletePayload,
    Point,
    QdrantStore,
    SetPayload,
    StoredPoint,
    open_store,
)
from vector_sync.core.store.embedded import EmbeddedStore
from vector_sync.core.store.server import ServerStore
from vector_sync_tests.support import Project


def _vector(i: int) -> list[float]:
    return [1.0, float(i), 0.0, 0.5]


def _point(source: str, i: int) -> Point:
    return Point(f"00000000-0000-0000-0000-{i:012d}", _vector(i),
                 {"source": source, "doc_id": f"d{i}", "chunk_index": 0, "text": f"text {i}"})


@pytest.fixture(params=["embedded", "client"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QdrantStore]:
    opened: QdrantStore = (EmbeddedStore.open(tmp_path / "qdrant", 0)
                           if request.param == "embedded"
                           else ServerStore(QdrantClient(path=str(tmp_path / "local"))))
    try:
        yield opened
    finally:
        opened.close()


def test_each_engine_creates_writes_reads_filters_and_drops_alike(store: QdrantStore) -> None:
    assert not store.exists("c")
    store.ensure_collection("c", 4, "model-a")
    assert store.exists("c") and store.vectors("c") == (4, "Cosine")
    assert store.model("c") == "model-a"
    store.record_model("c", "model-b", 4)
    assert store.model("c") == "model-b"
    with pytest.raises(CollectionMismatch, match="size 4 but model 'm' produces 8"):
        store.ensure_collection("c", 8, "m")

    store.upsert("c", [_point("a", i) for i in range(5)] + [_point("b", 9)])
    assert (store.count("c", "a"), store.count("c", "b"), store.count("c", None)) == (5, 1, 6)
    assert sorted(p.payload["doc_id"] for p in store.scroll("c", "a", ["doc_id"])) == [
        f"d{i}" for i in range(5)]
    assert all(set(p.payload) == {"doc_id"} and p.vector is None
               for p in store.scroll("c", "b", ["doc_id"]))

    ids = [_point("a", 1).id, _point("a", 2).id, _point("a", 3).id]
    store.batch("c", [SetPayload({"tags": ["x"]}, ids[:1]), DeletePayload(["text"], ids[1:2])])
    store.delete("c", ids[2:])
    held = {p.id: p for p in store.retrieve("c", ids, True, True)}
    assert set(held) == set(ids[:2])
    assert held[ids[0]].payload["tags"] == ["x"] and "text" not in held[ids[1]].payload
    vector = held[ids[0]].vector or []
    assert len(vector) == 4 and vector[1] == pytest.approx(vector[0])  # cosine: normalised
    assert list(store.chunks("c", ids, with_vectors=False)) == [("text 1", None)]

    unlabelled = Point("00000000-0000-0000-0001-000000000000", _vector(7), {"doc_id": "x"})
    store.upsert("c", [unlabelled])
    assert store.sources("c") == {"a": 4, "b": 1, None: 1}
    store.delete_source("c", None)
    store.delete_source("c", "b")
    assert store.sources("c") == {"a": 4} and store.collections() == ["c"]

    hits = store.search("c", _vector(4), limit=2)
    assert hits[0].payload["doc_id"] == "d4" and hits[0].score == pytest.approx(1.0)
    store.drop("c")
    assert not store.exists("c")
    store.delete("c", ids)  # deleting from a missing collection is nothing to do


def test_local_mode_storage_of_an_earlier_version_is_migrated_on_first_open(
        project: Project, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    for i in range(4):
        project.note(f"n{i}.md", f"# Note {i}\n\nNote {i} is about subject {i}.\n")
    code, _ = project.cli("sync", capsys=capsys)
    assert code == 0
    with project.qdrant() as embedded:
        held = {p.id: p for p in embedded.scroll("notes", None, with_vectors=True)}
        metadata = embedded.metadata("notes")
    qdrant_dir = project.root / "state" / "qdrant"
    _write_local_mode(qdrant_dir / "local", "notes", held, metadata)
    for path in (qdrant_dir / "local").iterdir():  # what an earlier version left behind
        path.rename(qdrant_dir / path.name)
    for path in qdrant_dir.glob("shards*"):
        path.rename(project.root / "discarded")

    with caplog.at_level(logging.WARNING):
        code, found = project.cli("verify", capsys=capsys)
    assert code == 0 and found["ok"], found
    assert "migrated collection notes: 4 points" in caplog.text
    backup = project.root / "state" / "qdrant-local-mode-backup"
    assert (backup / "meta.json").is_file() and not (qdrant_dir / "meta.json").exists()
    with project.qdrant() as embedded:
        migrated = {p.id: p for p in embedded.scroll("notes", None, with_vectors=True)}
        assert embedded.metadata("notes") == metadata
    assert migrated.keys() == held.keys()
    assert all(migrated[i].payload == held[i].payload for i in held)
    assert all(migrated[i].vector == pytest.approx(held[i].vector) for i in held)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and report["sources"]["notes"]["collections"]["notes"]["unchanged"] == 4


def test_an_interrupted_migration_starts_over_and_keeps_the_old_files(tmp_path: Path) -> None:
    root = tmp_path / "qdrant"
    points: dict[str, StoredPoint | Point] = {p.id: p for p in (_point("a", i) for i in range(3))}
    _write_local_mode(root, "c", points, {"vector_sync": {"model": "m", "dimension": 4}})
    (root / "shards.migrating" / "c").mkdir(parents=True)  # a crash left half a copy
    (root / "shards.migrating" / "c" / "garbage").write_text("x")
    with open_store(QdrantConfig(), StateConfig(dir=tmp_path)) as store:
        assert store.count("c", "a") == 3 and store.model("c") == "m"
    assert not (root / "shards.migrating").exists()
    assert json.loads((tmp_path / "qdrant-local-mode-backup" / "meta.json").read_text())


def _write_local_mode(path: Path, collection: str, points: dict[str, StoredPoint | Point],
                     metadata: dict) -> None:
    """Storage as earlier versions wrote it: qdrant-client's local mode."""
    from qdrant_client import models

    size = len(next(iter(points.values())).vector or [])
    client = QdrantClient(path=str(path))
    try:
        client.create_collection(collection, metadata=metadata, vectors_config=models.VectorParams(
            size=size, distance=models.Distance.COSINE))
        client.upsert(collection, points=[models.PointStruct(
            id=p.id, vector=p.vector or [], payload=p.payload) for p in points.values()])
    finally:
        client.close()
