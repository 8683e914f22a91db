"""Kill anywhere, converge: a real `vector-sync sync` process (its Dagster run in-process) is
SIGKILLed at named points of every stage by the fault hook (vector_sync.core.faults, enabled
only by VECTOR_SYNC_FAULT_KILL_AT), then an ordinary sync runs. After it, Qdrant must hold
exactly what a run that was never killed holds (ids, payloads, vectors), `verify` must find
nothing wrong (no missing, orphan, stale or duplicate point; the ledger agrees with Qdrant),
and nothing Qdrant had acknowledged may be embedded again: once the killed run had written
its embeddings file, the recovery embeds nothing at all.

Slow (about 15 s per kill point): `make test-slow`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vector_sync.core.faults import ENV
from vector_sync_tests.support import Project, long_note
from vector_sync_tests.test_mongodb_sync import (  # noqa: F401 - fixtures
    COLLECTIONS,
    Clock,
    mongo,
    mongo_project,
    qdrant_state,
    tool,
    tools,
)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Kill:
    point: str  # name@N, as VECTOR_SYNC_FAULT_KILL_AT takes it
    vectors_kept: bool  # the killed run had already renamed its embeddings file into place


INITIAL = [  # the first sync of a vault, killed
    Kill("snapshot.read_batch", False), Kill("snapshot.before_rename", False),
    Kill("changes.writing", False), Kill("changes.before_rename", False),
    Kill("changes.expected_saved", False), Kill("embed.batch", False),
    Kill("embeddings.before_rename", False), Kill("embeddings.renamed", True),
    Kill("apply.write_ahead", True), Kill("qdrant.upsert.unflushed", True),
    Kill("qdrant.upsert.flushed", True), Kill("qdrant.upsert.flushed@2", True),
    Kill("apply.group_acknowledged", True), Kill("ledger.group_synced", True),
    Kill("apply.checkpoint_recorded", True), Kill("embeddings.consumed", True),
]
CHANGE = [  # a sync of edits, growths, shrinks, payload-only changes, deletions and additions
    Kill("snapshot.renamed", False), Kill("changes.renamed", False),
    Kill("embeddings.writing", False), Kill("apply.write_ahead@2", True),
    Kill("qdrant.upsert.unflushed@2", True), Kill("apply.group_acknowledged@2", True),
    Kill("ledger.group_synced@2", True), Kill("qdrant.batch.operation", True),
    Kill("qdrant.batch.flushed", True), Kill("ledger.deletions_recorded", True),
]


def _base(project: Project) -> None:
    project.config["qdrant"] = {"batch_size": 3}  # several upserts per run
    project.save()
    for i in range(3):
        project.note(f"long{i}.md", long_note(f"Long {i}", sections=3 + i))
    for i in range(6):
        project.note(f"short{i}.md", f"---\ntags: [t{i}]\n---\n# Short {i}\n\nShort note {i}.\n")


def _change(project: Project) -> None:
    long0 = project.vault / "long0.md"
    long0.write_text(long0.read_text() + "\n## Added part\n\n" + "More words here. " * 60)
    project.note("long1.md", long_note("Long 1", sections=2))  # shrinks
    long2 = project.vault / "long2.md"
    long2.write_text(long2.read_text() + "\nOne appended sentence.\n")
    project.note("short0.md", "---\ntags: [changed]\n---\n# Short 0\n\nShort note 0.\n")
    (project.vault / "short1.md").unlink()
    (project.vault / "short2.md").unlink()
    project.note("new.md", long_note("New", sections=2))
    project.note("new_short.md", "# New short\n\nA new short note.\n")


def _sync(project: Project, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV, "DAGSTER_HOME")}
    if kill_at:
        env[ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "vector_sync.cli", "sync", "--config", str(project.config_file),
         "--json"], env=env, capture_output=True, text=True, timeout=600)


def _embedded(result: subprocess.CompletedProcess[str]) -> int:
    return int(json.loads(result.stdout)["sources"]["notes"]["collections"]["notes"][
        "chunks_embedded"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project synced without faults: its state before and after the change, the Qdrant
    it ends with, and a copy of it before the change to start the change cases from."""
    root = tmp_path_factory.mktemp("reference")
    (root / "project").mkdir()
    project = Project(root / "project")
    _base(project)
    first = _sync(project)
    assert first.returncode == 0, first.stderr
    shutil.copytree(project.root, root / "synced")
    initial = project.held()
    _change(project)
    second = _sync(project)
    assert second.returncode == 0, second.stderr
    return {"initial": initial, "initial_embedded": _embedded(first), "changed": project.held(),
            "change_embedded": _embedded(second), "synced": root / "synced"}


def _converges(project: Project, kill: Kill, want: dict[str, Any], clean_embedded: int,
               capsys: pytest.CaptureFixture[str]) -> None:
    killed = _sync(project, kill.point)
    assert killed.returncode == -signal.SIGKILL, (
        f"{kill.point} was never reached: exit {killed.returncode}\n{killed.stderr[-3000:]}")
    recovery = _sync(project)
    assert recovery.returncode == 0, recovery.stderr[-3000:]
    assert project.held() == want
    code, report = project.cli("verify", capsys=capsys)
    found = report["collections"]["notes"]["sources"]["notes"]
    assert code == 0 and found["ledger_disagreements"] == 0, found
    embedded = _embedded(recovery)
    assert embedded <= clean_embedded
    if kill.vectors_kept:
        assert embedded == 0, "vectors made before the kill were embedded again"


@pytest.mark.parametrize("kill", INITIAL, ids=[k.point for k in INITIAL])
def test_a_first_sync_killed_anywhere_converges(kill: Kill, tmp_path: Path, reference,
                                                capsys) -> None:
    project = Project(tmp_path)
    _base(project)
    _converges(project, kill, reference["initial"], reference["initial_embedded"], capsys)


@pytest.mark.parametrize("kill", CHANGE, ids=[k.point for k in CHANGE])
def test_a_sync_of_changes_killed_anywhere_converges(kill: Kill, tmp_path: Path, reference,
                                                     capsys) -> None:
    shutil.copytree(reference["synced"], tmp_path / "project")
    project = Project.at(tmp_path / "project")
    _change(project)
    _converges(project, kill, reference["changed"], reference["change_embedded"], capsys)


def test_a_sync_killed_while_writing_status_back_to_mongodb_writes_the_rest_next_time(
        tmp_path: Path, tools, capsys) -> None:  # noqa: F811 - the imported fixture
    rng, clock = random.Random(3), Clock()
    tools.insert_many([tool(rng, i, clock) for i in range(12)])
    project = mongo_project(tmp_path / "p", tools.database.name, write_back=True,
                            batch_size=4)  # three write-back batches per collection
    killed = _sync(project, "writeback.batch")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert 0 < tools.count_documents({"syncMetadata": {"$exists": True}}) < 12
    recovery = _sync(project)
    assert recovery.returncode == 0, recovery.stderr[-3000:]
    report = json.loads(recovery.stdout)["sources"]["tools"]["collections"]
    assert all(report[c]["chunks_embedded"] == 0 for c in COLLECTIONS)  # nothing re-embedded
    held = {p["doc_id"]: p["content_hash"] for p, _ in qdrant_state(project, "tools").values()}
    for document in tools.find():
        for collection in COLLECTIONS:
            assert document["syncMetadata"][collection]["status"] == "synced"
        assert document["syncMetadata"]["tools"]["contentHash"] == held[str(document["_id"])]
    code, _ = project.cli("verify", capsys=capsys)
    assert code == 0


# --- the event outbox: killed anywhere, every ledger transition's event is delivered -------

OUTBOX_KILLS = ["apply.group_acknowledged@2", "ledger.group_synced@2",
                "ledger.deletions_recorded", "events.sent", "events.marked"]


def _with_file_sink(project: Project) -> Path:
    project.config["events"] = {"sinks": [{"kind": "file", "path": "events.jsonl"}]}
    project.save()
    return project.root / "events.jsonl"


def _document_events(file: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in file.read_text().splitlines()] if file.exists() \
        else []
    return [e for e in lines if e["type"].startswith("vector_sync.document.")]


@pytest.fixture(scope="module")
def clean_transitions(reference: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
                      ) -> set[tuple[str, str, str | None]]:
    """(type, subject, action) of every document event of the change, synced unharmed."""
    root = tmp_path_factory.mktemp("events_reference")
    shutil.copytree(reference["synced"], root / "project")
    project = Project.at(root / "project")
    file = _with_file_sink(project)
    _change(project)
    assert _sync(project).returncode == 0
    return {(e["type"], e["subject"], e["data"].get("action")) for e in _document_events(file)}


@pytest.mark.parametrize("point", OUTBOX_KILLS)
def test_a_sync_killed_anywhere_delivers_every_transitions_event_once_per_id(
        point: str, tmp_path: Path, reference: dict[str, Any],
        clean_transitions: set[tuple[str, str, str | None]]) -> None:
    shutil.copytree(reference["synced"], tmp_path / "project")
    project = Project.at(tmp_path / "project")
    file = _with_file_sink(project)
    _change(project)
    killed = _sync(project, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert _sync(project).returncode == 0
    events = _document_events(file)
    assert {(e["type"], e["subject"], e["data"].get("action")) for e in events} == \
        clean_transitions
    ids: dict[tuple[str, str], set[str]] = {}
    for event in events:  # a duplicate (sent, then killed before it was recorded) is equal
        ids.setdefault((event["type"], event["subject"]), set()).add(event["id"])
    assert all(len(found) == 1 for found in ids.values()), ids
    from vector_sync.config import load_config
    from vector_sync.core.events import outbox
    from vector_sync.core.ledger import open_ledger

    with open_ledger(load_config(project.config_file).state) as ledger:
        assert outbox.backlog(ledger.engine, ["file"])["file"].events == 0
