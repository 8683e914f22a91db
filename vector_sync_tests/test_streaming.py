"""The stages of a no-op sync stream: the snapshot, the diff and the spot check hold a window
of rows, not a Python object per document, so their memory barely grows with the source.

The synced state is made directly (the ledger rows and expected state a sync of the vault
would leave, from the source's own listing) so that thousands of notes need no embedding.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from vector_sync.config import load_config
from vector_sync.core.consistency import verify
from vector_sync.core.consistency.verify import spot_check
from vector_sync.core.ledger import Expected, LedgerRow, open_ledger
from vector_sync.core.pipeline import checkpoints
from vector_sync.core.pipeline.diff import changes
from vector_sync.core.pipeline.snapshot import snapshot
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.spec import spec_for
from vector_sync_tests.support.project import Project

# both well above the stages' batch sizes (a listing batch is 5,000 entries, a ledger page
# 5,000 rows), so that what grows between them is what is held per document, not a window
SMALL, LARGE = 12_000, 36_000
# what the stages may keep per document for the whole run (a hash of its id, in a sorted
# copy as well): whole-source dicts and sets cost several hundred bytes per document
BYTES_PER_DOCUMENT = 100


def synced_vault(root: Path, notes: int) -> VectorSyncConfig:
    """A vault of `notes` notes, and the state a sync of it leaves (no points needed: the
    stages measured here never read Qdrant, and the spot check finds an empty collection)."""
    root.mkdir()
    project = Project(root)
    for i in range(notes):  # in folders, as a vault is: the source lists a folder at a time
        folder = project.vault / f"f{i // 200:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"note{i:05d}.md").write_text(f"# Note {i}\n\nWords of note {i}.\n")
    config = load_config(project.config_file)
    spec = spec_for(config, "notes")
    listed = list(config.open_source("notes").scan())
    with open_ledger(config.state) as ledger:
        ledger.upsert(LedgerRow("notes", "notes", e.doc_id, "synced", e.version, f"c{i}",
                                "p", 1) for i, e in enumerate(listed))
        ledger.update_expected("notes", "notes", {
            e.doc_id: Expected(f"c{i}", "p", 1) for i, e in enumerate(listed)}, [])
        checkpoints.record_config(ledger, "notes", spec)
    return config


def traced_peak(work: Callable[[], Any]) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        result = work()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def noop_sync_stages(config: VectorSyncConfig) -> tuple[dict[str, Any], dict[str, float]]:
    return snapshot(config, "notes"), changes(config, "notes", "notes")


@pytest.mark.slow
def test_a_noop_snapshot_and_diff_hold_a_window_of_rows_not_every_document(
        tmp_path: Path) -> None:
    peaks: dict[int, int] = {}
    for notes in (SMALL, LARGE):
        config = synced_vault(tmp_path / str(notes), notes)
        if notes == SMALL:
            noop_sync_stages(config)  # once untraced: the tokenizer and the like loaded
        peaks[notes], (listed, counts) = traced_peak(partial(noop_sync_stages, config))
        assert listed["skipped_unchanged"] == notes and listed["read"] == 0
        assert counts["unchanged"] == notes and counts["documents_before"] == notes
        assert counts["deleted"] == counts["added"] == counts["updated"] == 0
    growth = (peaks[LARGE] - peaks[SMALL]) / (LARGE - SMALL)
    assert growth < BYTES_PER_DOCUMENT, f"{growth:.0f} bytes per document ({peaks})"


@pytest.mark.slow
def test_the_spot_check_looks_up_only_its_sample(tmp_path: Path) -> None:
    peaks: dict[int, int] = {}
    for notes in (SMALL, LARGE):
        config = synced_vault(tmp_path / str(notes), notes)
        if notes == SMALL:
            spot_check(config, "notes", "notes")  # once untraced: Qdrant's client loaded
        peaks[notes], result = traced_peak(partial(spot_check, config, "notes", "notes"))
        drawn = max(20, notes // 50)
        assert result.checked == notes and result.points_expected == notes
        assert result.sampled.startswith(f"{drawn} of {notes} documents")
        assert len(result.missing) == drawn  # nothing was written to Qdrant
    # the sample itself is 2% of the documents: what is held beyond it is what counts
    growth = (peaks[LARGE] - peaks[SMALL]) / (LARGE - SMALL)
    assert growth < BYTES_PER_DOCUMENT, f"{growth:.0f} bytes per document ({peaks})"


def test_a_diff_still_finds_deleted_notes_and_forgets_their_expectations(
        tmp_path: Path) -> None:
    config = synced_vault(tmp_path / "vault", 3_000)
    for i in range(0, 3_000, 1_000):
        (tmp_path / "vault" / "vault" / f"f{i // 200:03d}" / f"note{i:05d}.md").unlink()
    listed = snapshot(config, "notes")
    counts = changes(config, "notes", "notes")
    assert listed["documents"] == 2_997 and listed["read"] == 0
    assert counts["deleted"] == 3 and counts["unchanged"] == 2_997
    assert counts["documents_before"] == 3_000 and counts["documents_now"] == 2_997
    with open_ledger(config.state) as ledger:
        assert ledger.expected_totals("notes", "notes") == (2_997, 2_997)
        assert "f005/note01000.md" not in ledger.expected_of("notes", "notes",
                                                             ["f005/note01000.md"])


def test_the_spot_check_of_a_large_source_reads_back_a_bounded_sample(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """2% of a million documents would be 20,000 point reads after every sync: the sample
    stops at SPOT_CHECK_AT_MOST (lowered here so that 3,000 notes reach it)."""
    config = synced_vault(tmp_path / "vault", 3_000)
    monkeypatch.setattr(verify, "SPOT_CHECK_AT_MOST", 25)
    result = spot_check(config, "notes", "notes")
    assert result.checked == 3_000 and result.sampled.startswith("25 of 3000 documents")
    assert len(result.missing) == 25  # nothing was written to Qdrant: every one read back
