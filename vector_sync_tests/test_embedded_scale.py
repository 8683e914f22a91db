"""Embedded Qdrant at scale: a collection keeps its vectors and payloads in memory-mapped
files, a shard made by the previous version (vectors resident in RAM) still opens, reads and
searches as it was, and past the size threshold `optimize()` builds an HNSW index whose
results equal an exact search. The memory and latency figures are in
benchmarks/embedded_scale.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as edge

from vector_sync.core.store import Delete, Point
from vector_sync.core.store.embedded import EmbeddedStore

DIM = 8
RNG = np.random.default_rng(3)
VECTORS = RNG.standard_normal((400, DIM)).astype(np.float32)
QUERIES = RNG.standard_normal((5, DIM)).astype(np.float32)


def _id(i: int) -> str:
    return f"00000000-0000-0000-0000-{i:012d}"


def _points(indexes: range) -> list[Point]:
    return [Point(_id(i), VECTORS[i].tolist(), {"source": "s", "doc_id": f"d{i}",
                                                "text": f"text {i}"}) for i in indexes]


def _exact(query: np.ndarray, present: list[int], limit: int = 10) -> set[str]:
    unit = VECTORS[present] / np.linalg.norm(VECTORS[present], axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    return {_id(present[i]) for i in np.argsort(-scores)[:limit]}


def _segments(shard: Path) -> list[dict]:
    return [json.loads(path.read_text())["config"]["vector_data"][""]
            for path in (shard / "segments").glob("*/segment.json")]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    opened = EmbeddedStore(tmp_path / "shards", index_after=100)
    try:
        yield opened
    finally:
        opened.close()


def test_a_new_collection_keeps_vectors_and_payloads_in_mapped_files(tmp_path: Path) -> None:
    store = EmbeddedStore.open(tmp_path / "qdrant", 0)
    store.ensure_collection("c", DIM, "model")
    store.upsert("c", _points(range(50)))
    store.close()
    shard = tmp_path / "qdrant" / "shards" / "c"
    config = json.loads((shard / "edge_config.json").read_text())
    assert config["vectors"][""]["memory"] == "cold" and config["payload_memory"] == "cold"
    # the previous default read every vector into RAM at open ("InRamChunkedMmap")
    assert [s["storage_type"] for s in _segments(shard)] == ["ChunkedMmap"]


def test_past_the_threshold_optimize_builds_hnsw_and_results_equal_exact_search(
        store: EmbeddedStore) -> None:
    store.create("c", DIM)
    store.upsert("c", _points(range(60)))
    assert store.optimize("c") is False  # below the threshold: nothing is built
    assert {s["index"]["type"] for s in _segments(store.shards_dir / "c")} == {"plain"}

    store.upsert("c", _points(range(60, 400)))
    assert store.optimize("c") is True
    assert "hnsw" in {s["index"]["type"] for s in _segments(store.shards_dir / "c")}
    present = list(range(400))
    for query in QUERIES:
        assert {h.id for h in store.search("c", query.tolist(), 10)} == _exact(query, present)

    # writes after the build land beside the index and are searched with it
    gone = [_id(i) for i in range(0, 400, 2)]
    store.batch("c", [Delete(gone)])
    present = list(range(1, 400, 2))
    assert store.count("c", "s") == 200
    for query in QUERIES:
        assert {h.id for h in store.search("c", query.tolist(), 10)} == _exact(query, present)
    store.optimize("c")  # half the indexed points deleted: vacuumed
    assert store.count("c", None) == 200 and len(list(store.scroll("c", "s"))) == 200


def test_a_shard_made_by_the_previous_version_reads_searches_and_is_indexed(
        tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    old = edge.EdgeShard.create(str(shards / "c"), edge.EdgeConfig(  # as the previous version
        vectors=edge.EdgeVectorParams(size=DIM, distance=edge.Distance.Cosine)))
    for key in ("source", "doc_id"):
        old.update(edge.UpdateOperation.create_field_index(key, edge.PayloadSchemaType.Keyword))
    old.update(edge.UpdateOperation.upsert_points(
        [edge.Point(p.id, p.vector, p.payload) for p in _points(range(300))]))
    old.close()
    present = list(range(300))

    store = EmbeddedStore(shards, index_after=100)
    try:
        assert store.count("c", "s") == 300 and store.vectors("c") == (DIM, "Cosine")
        assert store.payloads("c", [_id(7)]) == [{"source": "s", "doc_id": "d7",
                                                   "text": "text 7"}]
        for query in QUERIES:
            assert {h.id for h in store.search("c", query.tolist(), 10)} == _exact(query, present)
        assert store.optimize("c") is True
    finally:
        store.close()
    assert "hnsw" in {s["index"]["type"] for s in _segments(shards / "c")}
    config = json.loads((shards / "c" / "edge_config.json").read_text())
    assert config["vectors"][""]["memory"] == "cold"  # this version's settings, recorded

    store = EmbeddedStore(shards)  # and it opens again, as any shard
    try:
        assert store.count("c", None) == 300
        for query in QUERIES:
            assert {h.id for h in store.search("c", query.tolist(), 10)} == _exact(query, present)
    finally:
        store.close()


def test_a_sync_past_the_threshold_leaves_its_collection_indexed(tmp_path: Path, capsys,
                                                                monkeypatch) -> None:
    """The Qdrant step asks the embedded store to index: a collection that has passed the
    threshold is searched through HNSW after the sync, with the same results."""
    from vector_sync.core.store import embedded
    from vector_sync_tests.support import Project

    monkeypatch.setattr(embedded, "INDEX_AFTER_POINTS", 10)
    project = Project(tmp_path)
    for i in range(30):
        project.note(f"n{i}.md", f"# Note {i}\n\nNote {i} is about topic {i % 7}.\n")
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0, report
    with project.qdrant() as store:
        assert isinstance(store, EmbeddedStore)
        info = store._shard(store.resolve("notes")).info()
        assert info.points_count == 30 and info.indexed_vectors_count == 30
    code, found = project.cli("search", "notes", "topic 3", "--limit", "3", capsys=capsys)
    assert code == 0 and len(found) == 3
