"""The complete check's scroll of Qdrant holds a bounded window: what it remembers per
document (a document's bucket and payload hash, so its chunks hash once) is capped, so the
Python memory of a consistent verify does not grow with the collection. Qdrant is the real
embedded one, filled directly (no embedding needed); the expected state and the ledger's
claims are streamed, as verify streams them from its files and pages."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from vector_sync.config import load_config
from vector_sync.core.consistency.compare import Verifier
from vector_sync.core.hashing import payload_hash, point_id
from vector_sync.core.ledger import Expected
from vector_sync.core.spec import spec_for
from vector_sync.core.store import Point
from vector_sync_tests.support.project import Project

# documents of one point each, both above what the scroll remembers (compare.MEMO)
SMALL, LARGE = 10_000, 30_000
DIMENSION = 4  # the check never reads vectors; a small one keeps the filling quick
BYTES_PER_DOCUMENT = 100  # a remembered document costs several hundred


@pytest.mark.slow  # 40,000 points scrolled under tracemalloc
def test_a_consistent_verify_holds_no_python_object_per_document(tmp_path: Path) -> None:
    project = Project(tmp_path)  # its collection's payload: tags and path
    config = load_config(project.config_file)
    spec = spec_for(config, "notes")
    peaks: dict[int, int] = {}
    with project.qdrant() as store:
        store.create("notes", DIMENSION)
        for documents in (SMALL, LARGE):
            have = store.count("notes", "notes")
            store.upsert("notes", [Point(point_id("notes", f"d{i:06}.md", 0), [0.5] * DIMENSION, {
                "source": "notes", "doc_id": f"d{i:06}.md", "chunk_index": 0, "chunk_count": 1,
                "content_hash": f"c{i}", "tags": [f"t{i % 7}"], "path": f"d{i:06}.md"})
                for i in range(have, documents)])

            def state(documents: int = documents) -> Iterator[tuple[str, Expected]]:
                for i in range(documents):  # streamed, as verify reads its spilled file
                    yield f"d{i:06}.md", Expected(f"c{i}", payload_hash(
                        {"tags": [f"t{i % 7}"], "path": f"d{i:06}.md"}), 1)

            verifier = Verifier(store, "notes", spec)
            if documents == SMALL:  # once untraced: Qdrant's shard loaded, and the like
                verifier.verify_streams(state, state, None, documents, documents)
            tracemalloc.start()
            try:
                result = verifier.verify_streams(state, state, None, documents, documents)
                peaks[documents] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert result.consistent and result.points == documents
    growth = (peaks[LARGE] - peaks[SMALL]) / (LARGE - SMALL)
    assert growth < BYTES_PER_DOCUMENT, f"{growth:.0f} bytes per document ({peaks})"
