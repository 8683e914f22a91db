"""A sync costs what it changes, not what the ledger holds: its snapshot file has a row only
for the documents to decide (read, failed, gone), the others counted in its footer, and its
diff never pages through the ledger. Deletions still delete the points, whether the source's
history names them or a listing no longer finds them.

The no-op measurements start from the state a sync leaves, made directly (ledger rows,
expected state, checkpoints) so that thousands of documents need no embedding; the work the
ledger does is counted in SQLite virtual-machine steps (a progress handler on every ledger
connection the stages open)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, event
from surrealdb import RecordID

from vector_sync.config import load_config
from vector_sync.core.ledger import Expected, LedgerRow, open_ledger
from vector_sync.core.pipeline import checkpoints, expected_spill
from vector_sync.core.pipeline import diff as diff_stage
from vector_sync.core.pipeline.diff import changes
from vector_sync.core.pipeline.snapshot import snapshot
from vector_sync.core.pipeline.state_files import SNAPSHOT, StateFiles, read_rows, read_summary
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.source import Checkpointed
from vector_sync.core.spec import spec_for
from vector_sync_tests.support import Project, counts, listed
from vector_sync_tests.test_surrealdb_sync import COLLECTIONS, SurrealProject, article

STEP = 10  # VM instructions between two calls of the progress handler
# what may grow per document of a no-op from a contiguous checkpoint: the database's own
# counts (documents known, documents with points per collection), a few steps a row (13 in
# all here); paging through the ledger and looking every document up cost about 230
STEPS_PER_DOCUMENT = 20


@contextmanager
def vm_steps() -> Iterator[list[int]]:
    """Counts the SQLite VM steps of every connection opened meanwhile (in [0])."""
    steps = [0]

    def tick() -> int:
        steps[0] += STEP
        return 0  # go on

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_progress_handler(tick, STEP)

    event.listen(Engine, "connect", on_connect)
    try:
        yield steps
    finally:
        event.remove(Engine, "connect", on_connect)


def synced_state(config: VectorSyncConfig, source_name: str, checkpoint: str | None) -> int:
    """The ledger a sync of every document of the source leaves, in each of its collections
    (at `checkpoint`, for a source with a history). Returns the number of documents."""
    listed_now = list(config.open_source(source_name).scan())
    names = config.sources[source_name].collections
    with open_ledger(config.state) as ledger:
        for name in names:
            ledger.upsert(LedgerRow(source_name, name, e.doc_id, "synced", e.version,
                                    f"c{i}", "p", 1) for i, e in enumerate(listed_now))
            ledger.update_expected(source_name, name, {
                e.doc_id: Expected(f"c{i}", "p", 1) for i, e in enumerate(listed_now)}, [])
            checkpoints.record_config(ledger, source_name, spec_for(config, name))
        if checkpoint is not None:
            ledger.set_state(source_name, checkpoints.SCANNED_CHECKPOINT, checkpoint)
            for name in names:
                checkpoints.record_checkpoint(ledger, source_name, name)
            checkpoints.note_listing(ledger, source_name)
    return len(listed_now)


def surreal_synced(root: Path, records: int) -> VectorSyncConfig:
    """`records` articles in an embedded SurrealKV table with a change feed, synced up to
    where the feed ends now."""
    project = SurrealProject(root)
    rng = random.Random(5)
    with project.db() as db:
        db.query("INSERT INTO article $rows", {"rows": [
            {"id": RecordID("article", i), **article(rng, i)} for i in range(records)]})
    config = load_config(project.config_file)
    source = config.open_source("articles")
    assert isinstance(source, Checkpointed)
    source.changed_since(None)  # where the change feed ends: a sync would start from there
    assert synced_state(config, "articles", source.checkpoint) == records
    return config


def noop_steps(config: VectorSyncConfig, source: str) -> tuple[int, list[dict[str, Any]]]:
    """The VM steps of a sync's snapshot and diffs, and what they report."""
    with vm_steps() as steps:
        reports = [snapshot(config, source)]
        reports += [changes(config, source, c) for c in config.sources[source].collections]
    return steps[0], reports


def test_a_noop_from_a_contiguous_checkpoint_does_not_page_through_the_ledger(
        tmp_path: Path) -> None:
    small, large = 300, 1_200
    work: dict[int, int] = {}
    rows: dict[int, int] = {}  # in the snapshot file
    for records in (small, large):
        config = surreal_synced(tmp_path / str(records), records)
        noop_steps(config, "articles")  # once unmeasured: the tokenizer and the like loaded
        work[records], (taken, *diffs) = noop_steps(config, "articles")
        assert taken["read"] == 0 and taken["skipped_unchanged"] == records
        assert taken["documents"] == records and taken["detection"] == "changefeed"
        for diff in diffs:
            assert diff["unchanged"] == records and diff["deleted"] == 0
            assert diff["documents_before"] == diff["documents_now"] == records
        rows[records] = pq.read_metadata(StateFiles(config.state.dir).snapshot(
            "articles")).num_rows
    grown = (work[large] - work[small]) / (large - small)
    assert grown < STEPS_PER_DOCUMENT, work
    assert rows == {small: 0, large: 0}  # not a row per document


def markdown_synced(root: Path, notes: int) -> VectorSyncConfig:
    root.mkdir()
    project = Project(root)
    for i in range(notes):
        project.note(f"f{i // 100:02d}/note{i:04d}.md", f"# Note {i}\n\nWords of note {i}.\n")
    config = load_config(project.config_file)
    synced_state(config, "notes", None)
    return config


def test_a_listed_noop_writes_no_row_per_document_and_a_deletion_only_its_own(
        tmp_path: Path) -> None:
    notes = 400
    config = markdown_synced(tmp_path / "p", notes)
    path = StateFiles(config.state.dir).snapshot("notes")
    taken, diff = snapshot(config, "notes"), changes(config, "notes", "notes")
    assert taken["skipped_unchanged"] == notes and taken["read"] == 0
    assert pq.read_metadata(path).num_rows == 0
    assert read_summary(path) == {"skipped": notes, "documents": notes}
    assert diff["unchanged"] == notes and diff["documents_before"] == notes

    for gone in ("f00/note0003.md", "f02/note0250.md"):
        (tmp_path / "p" / "vault" / gone).unlink()
    taken, diff = snapshot(config, "notes"), changes(config, "notes", "notes")
    assert sorted((r.doc_id, r.state) for r in read_rows(path, SNAPSHOT)) == [
        ("f00/note0003.md", "gone"), ("f02/note0250.md", "gone")]
    assert taken["documents"] == notes - 2 and taken["gone"] == 2
    assert (diff["deleted"], diff["unchanged"]) == (2, notes - 2)
    assert (diff["documents_before"], diff["documents_now"]) == (notes, notes - 2)


def snapshot_states(root: Path, source: str) -> list[tuple[str, str]]:
    path = StateFiles(root / "state").snapshot(source)
    return sorted((row.doc_id, row.state) for row in read_rows(path, SNAPSHOT))


@pytest.mark.slow  # two syncs through Dagster with the real model: about 9 s
def test_a_deletion_the_change_feed_names_deletes_the_points(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    project = SurrealProject(tmp_path / "p")
    project.seed(6)
    code, report = project.sync(capsys)
    assert code == 0 and counts(report, "articles", "articles")["added"] == 6
    with project.db() as db:
        for i in (1, 4):
            db.query("DELETE $rid", {"rid": RecordID("article", i)})
    caplog.clear()
    code, report = project.sync(capsys)
    assert code == 0 and not listed(caplog)  # the change feed named them
    for collection in COLLECTIONS:
        got = counts(report, "articles", collection)
        assert (got["deleted"], got["unchanged"], got["added"]) == (2, 4, 0), collection
        held = project.points(collection)
        assert sorted(held) == ["article:0", "article:2", "article:3", "article:5"], collection
    assert snapshot_states(project.root, "articles") == [
        ("article:1", "gone"), ("article:4", "gone")]


def test_a_deletion_a_listing_finds_deletes_the_points(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = Project(tmp_path)
    for i in range(6):
        project.note(f"n{i}.md", f"# Note {i}\n\nA short note about topic {i}.\n")
    sync: Callable[[], tuple[int, Any]] = lambda: project.cli("sync", capsys=capsys)  # noqa: E731
    assert counts(sync()[1])["added"] == 6
    (project.vault / "n2.md").unlink()
    code, report = sync()
    assert code == 0
    got = counts(report)
    assert (got["deleted"], got["unchanged"], got["added"]) == (1, 5, 0)
    assert sorted(project.points()) == ["n0.md", "n1.md", "n3.md", "n4.md", "n5.md"]
    assert snapshot_states(project.root, "notes") == [("n2.md", "gone")]


def test_expectations_past_the_spill_bound_all_reach_the_ledger(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # as an initial sync of a large source: batches spilled, the last one still held
    monkeypatch.setattr(expected_spill, "SPILL_AT", 3)
    monkeypatch.setattr(diff_stage, "DIFF_BATCH", 3)
    project = Project(tmp_path)
    for i in range(8):
        project.note(f"n{i}.md", f"# Note {i}\n\nA short note about topic {i}.\n")
    config = load_config(project.config_file)
    snapshot(config, "notes")
    diff = changes(config, "notes", "notes")
    assert diff["added"] == 8
    with open_ledger(config.state) as ledger:
        expected = ledger.expected("notes", "notes")
    assert sorted(expected) == [f"n{i}.md" for i in range(8)]
    assert all(e.chunk_count == 1 and e.content_hash for e in expected.values())
    # the spill file is gone once its expectations are written
    assert not list((config.state.dir / "changes").rglob("*expected*"))


def test_spilled_expectations_read_whole_by_each_pass(tmp_path, monkeypatch):
    """A ledger write repeated after a brief PostgreSQL outage reads the expectations again:
    each pass sees every one, and nothing is held as a list of them on the way."""
    monkeypatch.setattr(expected_spill, "SPILL_AT", 3)
    changes = expected_spill.ExpectedChanges(tmp_path / "spill.parquet")
    for start in range(0, 10, 2):
        changes.update({f"d{i}": Expected(f"c{i}", "p", 1) for i in range(start, start + 2)})
    wanted = [(f"d{i}", Expected(f"c{i}", "p", 1)) for i in range(10)]
    assert list(changes) == wanted and list(changes) == wanted
    assert not isinstance(changes, Iterator)  # the ledger's retry wrapper lists iterators
    changes.remove()
    assert not (tmp_path / "spill.parquet").exists()


@pytest.mark.slow  # a sync and a repair through Dagster with the real model: about 10 s
def test_repair_rebuilds_a_dropped_collection_of_a_source_with_a_history(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Repair drops a collection whose vectors do not fit the config and syncs: the source's
    change feed names nothing, so that sync must list and read every document again."""
    project = SurrealProject(tmp_path / "p")
    project.seed(5)
    assert project.sync(capsys)[0] == 0
    with project.qdrant() as store:
        store.drop("summaries")
        store.create("summaries", 8, "Dot")
    code, report = project.cli("repair", capsys=capsys)
    assert code == 0 and report["ok"], report
    for collection in COLLECTIONS:
        assert len(project.points(collection)) == 5, collection
