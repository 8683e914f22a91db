"""Tracking state stays small beside the vectors: once the Qdrant step has applied an
embeddings file, its vectors (and shard files) are removed, while a Qdrant step that failed
or was killed keeps them for the run that follows; `status --storage` shows the disk space of
the ledger, the state dir and Qdrant, and their ratio."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from vector_sync.config import load_config
from vector_sync.core.faults import ENV
from vector_sync.core.generations.serving import serving_config
from vector_sync.core.ledger import Ledger
from vector_sync.core.pipeline.apply import apply
from vector_sync.core.storage import disk_usage
from vector_sync_tests.support import Project, counts, long_note

EMBEDDINGS = Path("state/embeddings/notes")


def _vault(project: Project, longs: int = 2) -> None:
    """Short notes and `longs` long ones (several chunks each)."""
    for i in range(longs):
        project.note(f"long{i}.md", long_note(f"Long {i}", sections=3))
    for i in range(3):
        project.note(f"short{i}.md", f"# Short {i}\n\nShort note {i} about topic {i}.\n")


def _vectors(project: Project) -> int:
    """Rows of the collection's embeddings file."""
    return pq.read_metadata(project.root / EMBEDDINGS / "notes.parquet").num_rows


def _storage(project: Project, capsys: pytest.CaptureFixture[str]) -> dict:
    code, status = project.cli("status", "--storage", capsys=capsys)
    assert code == 0
    return dict(status["storage"])


@pytest.mark.slow
def test_a_sync_removes_the_vectors_it_applied_and_the_next_sync_still_works(
        project: Project, capsys) -> None:
    _vault(project)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["added"] == 5 and counts(report)["chunks_embedded"] > 5
    assert _vectors(project) == 0  # Qdrant holds them: the file keeps its schema only
    assert len(project.points()) == 5

    project.note("long0.md", long_note("Long 0", sections=3) + "\nOne more sentence.\n")
    project.note("new.md", "# New\n\nA new note.\n")
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["updated"] == 1 and counts(report)["added"] == 1
    assert _vectors(project) == 0
    assert set(project.points()) == {"long0.md", "long1.md", "short0.md", "short1.md",
                                     "short2.md", "new.md"}
    code, found = project.cli("verify", capsys=capsys)
    assert code == 0 and found["ok"]


def test_the_qdrant_step_run_again_after_its_vectors_were_removed_changes_nothing(
        project: Project, capsys) -> None:
    """What the qdrant_<collection> asset does when re-materialized (a re-execution of the
    run's Qdrant step): the change set it applied is found applied, not refused."""
    _vault(project, longs=0)
    code, _ = project.cli("sync", capsys=capsys)
    assert code == 0 and _vectors(project) == 0
    held = project.held()
    config = serving_config(load_config(project.config_file))
    report = apply(config, "notes", "notes")
    assert report.counts["added"] == 3 and not report.failures
    assert report.points_written == 0 and report.points_deleted == 0
    assert project.held() == held

    with Ledger(config.state.ledger_sqlalchemy_url()) as ledger:  # no longer as applied
        row = ledger.rows("notes", "notes")["short0.md"]
        ledger.upsert([replace(row, status="failed")])
    with pytest.raises(RuntimeError, match="short0.md.*sync the source again"):
        apply(config, "notes", "notes")
    assert project.held() == held


@pytest.mark.slow
def test_vectors_stay_while_qdrant_is_down_and_the_retry_embeds_nothing(
        project: Project, capsys) -> None:
    _vault(project)
    project.config["retry"] = {"step_retries": 0}
    project.config["qdrant"] = {"url": "http://127.0.0.1:9", "timeout_s": 2}  # refused
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1 and counts(report)["failed"] == 5
    made = counts(report)["chunks_embedded"]
    assert _vectors(project) == made
    kept = _storage(project, capsys)["state"]["parts"]["embeddings"]

    project.config["qdrant"] = {"url": None}  # Qdrant answers again
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["added"] == 5
    assert counts(report)["chunks_embedded"] == 0  # every vector came from the kept file
    assert _vectors(project) == 0
    assert _storage(project, capsys)["state"]["parts"]["embeddings"] < kept


def test_status_storage_reports_the_ledger_the_state_dir_and_qdrant(
        project: Project, capsys) -> None:
    _vault(project, longs=0)
    project.cli("sync", capsys=capsys)
    storage = _storage(project, capsys)
    state = project.root / "state"
    ledger = sum(disk_usage(state / f"ledger.sqlite{s}") for s in ("", "-wal"))
    assert storage["ledger"]["bytes"] == ledger > 0
    parts = storage["state"]["parts"]
    assert {"snapshots", "changes", "embeddings"} <= set(parts)
    assert "qdrant" not in parts and "ledger.sqlite" not in parts
    assert storage["state"]["bytes"] == sum(parts.values())
    assert storage["qdrant"]["bytes"] == disk_usage(state / "qdrant") > 0
    total = storage["ledger"]["bytes"] + storage["state"]["bytes"]
    assert storage["ratio"] == round(total / storage["qdrant"]["bytes"], 4)

    code = __import__("vector_sync.cli", fromlist=["main"]).main(
        ["status", "--storage", "--config", str(project.config_file)])
    out = capsys.readouterr().out
    assert code == 0
    assert "storage on disk:" in out and f"{storage['ratio']:.0%}" in out
    assert "embedded storage" in out and "ledger.sqlite" in out


def test_status_storage_says_what_it_could_not_measure(project: Project, capsys) -> None:
    """Before any sync, with a Qdrant server that refuses connections: no ledger yet, the
    server's size unknown, no ratio; status itself still succeeds."""
    project.note("a.md", "# A\n\nA note.\n")
    project.config["qdrant"] = {"url": "http://127.0.0.1:9", "timeout_s": 2}  # refused
    project.save()
    storage = _storage(project, capsys)
    assert storage["ledger"]["bytes"] == 0 and storage["state"]["bytes"] == 0
    assert storage["qdrant"]["bytes"] is None and storage["ratio"] is None
    assert storage["qdrant"]["measured"].startswith("n/a (the server:")
    code = __import__("vector_sync.cli", fromlist=["main"]).main(
        ["status", "--storage", "--config", str(project.config_file)])
    out = capsys.readouterr().out
    assert code == 0 and "(ledger + state) / qdrant: n/a" in out


@pytest.mark.slow
def test_status_storage_sizes_a_postgresql_ledger(project: Project, postgres_url: str,
                                                   capsys) -> None:
    _vault(project)
    project.config["state"]["ledger_url"] = postgres_url
    project.save()
    code, _ = project.cli("sync", capsys=capsys)
    assert code == 0
    ledger = _storage(project, capsys)["ledger"]
    assert ledger["bytes"] > 8192 and "PostgreSQL" in ledger["measured"]


@pytest.mark.slow
def test_shard_files_go_once_applied(project: Project, capsys) -> None:
    _vault(project)
    project.config["execution"] = {"embed_shards": 2}
    project.save()
    code, _ = project.cli("sync", capsys=capsys)
    assert code == 0
    assert sorted(p.name for p in (project.root / EMBEDDINGS).iterdir()) == ["notes.parquet"]
    assert _vectors(project) == 0


@pytest.mark.slow
def test_a_run_killed_before_the_qdrant_step_keeps_its_vectors_for_the_next_one(
        project: Project) -> None:
    """A real process SIGKILLed by the fault hook (an injected fault) after its embeddings
    file was written, before Qdrant acknowledged anything."""
    _vault(project)

    def sync(kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in (ENV, "DAGSTER_HOME")}
        env.update({ENV: kill_at} if kill_at else {})
        return subprocess.run([sys.executable, "-m", "vector_sync.cli", "sync", "--config",
                               str(project.config_file), "--json"], env=env,
                              capture_output=True, text=True, timeout=600)

    killed = sync("apply.write_ahead")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert _vectors(project) > 0
    recovery = sync()
    assert recovery.returncode == 0, recovery.stderr[-2000:]
    assert counts(json.loads(recovery.stdout))["chunks_embedded"] == 0
    assert _vectors(project) == 0
    assert len(project.points()) == 5
