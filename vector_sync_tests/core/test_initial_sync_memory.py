"""The apply stage of an initial sync holds a window of documents, not one per document of the
change set: its ledger rows are looked up a window at a time and dropped once applied.

The change set and its embeddings are written directly (the files the diff and embed stages
hand over, in their real format) so that thousands of documents need no model; the apply
stage then writes them into embedded Qdrant and the ledger as a sync does. Python's own
allocations are traced (tracemalloc): qdrant-edge's memory is its own and not measured here.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from vector_sync.config import load_config
from vector_sync.core.pipeline.apply import apply
from vector_sync.core.pipeline.rows import OUTCOMES, Change, EmbeddingRow
from vector_sync.core.pipeline.state_files import (
    CHANGES,
    EMBEDDINGS,
    StateFiles,
    write_rows,
)
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.store import open_store
from vector_sync_tests.support.project import Project

# both well above the stage's windows (2,000 rows read or looked up at once, a window of
# vectors alone ~25 MB as Python floats), so that what grows between them is what is held
# per document
SMALL, LARGE = 5_000, 15_000
# a whole-change-set dict of ledger rows and a list of every doc_id cost ~450 bytes per
# document; what the stage may keep per document, at most
BYTES_PER_DOCUMENT = 100
DIMENSION = 384


def initial_change_set(root: Path, notes: int) -> VectorSyncConfig:
    """The change set and embeddings of a first sync of `notes` one-chunk notes."""
    root.mkdir()
    config = load_config(Project(root).config_file)
    files = StateFiles(config.state.dir)
    doc_ids = [f"area{i % 40:02d}/topic/note number {i:06d}.md" for i in range(notes)]
    write_rows(files.changes("notes", "notes"), CHANGES, (
        Change(doc_id, "added", f"v{i}", f"c{i:012d}", f"p{i}",
               json.dumps({"tags": ["memory"], "path": doc_id}),
               [f"Note {i}: a few words of its own body."])
        for i, doc_id in enumerate(doc_ids)),
        summary=lambda: {**dict.fromkeys(OUTCOMES, 0), "added": notes})
    rng = np.random.default_rng(notes)
    write_rows(files.embeddings("notes", "notes"), EMBEDDINGS, (
        EmbeddingRow(doc_id, f"c{i:012d}", 0,
                     rng.standard_normal(DIMENSION).astype(np.float32).tolist())
        for i, doc_id in enumerate(doc_ids)))
    return config


def traced_apply(config: VectorSyncConfig) -> tuple[int, dict[str, int]]:
    tracemalloc.start()
    try:
        report = apply(config, "notes", "notes")
        return tracemalloc.get_traced_memory()[1], report.as_dict()
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # ~60 s on a shared 2-core machine: 20,000 documents written to Qdrant
def test_the_apply_stage_of_an_initial_sync_holds_a_window_not_every_document(
        tmp_path: Path) -> None:
    # once untraced first: what the first run imports and caches is not held per document
    apply(initial_change_set(tmp_path / "warm-up", 100), "notes", "notes")
    peaks: dict[int, int] = {}
    for notes in (SMALL, LARGE):
        config = initial_change_set(tmp_path / str(notes), notes)
        peaks[notes], counts = traced_apply(config)
        assert counts["added"] == notes and counts["failed"] == 0
        assert counts["points_written"] == notes
        with open_store(config.qdrant, config.state) as store:
            assert store.count("notes", "notes") == notes
    per_document = (peaks[LARGE] - peaks[SMALL]) / (LARGE - SMALL)
    assert per_document < BYTES_PER_DOCUMENT, (
        f"the apply stage's peak grew by {per_document:.0f} bytes per document "
        f"({peaks[SMALL] / 2**20:.1f} MiB at {SMALL}, {peaks[LARGE] / 2**20:.1f} MiB at {LARGE})")
