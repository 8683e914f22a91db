"""Retries re-apply only the documents that are due, reusing their stored embeddings, and
give up after retry.max_retries; the operator's runs (sync everything pending, re-sync listed
documents) are runs of the sync jobs and sync exactly what they promise. Real
Dagster runs over a real vault, embedded Qdrant and the real model."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from vector_sync import definitions
from vector_sync.config import load_config
from vector_sync.core.ledger import Ledger
from vector_sync.defs import reports, sensors
from vector_sync.defs.jobs import SYNC_JOB, SYNC_PENDING_JOB
from vector_sync_tests.support import Project, counts


def _notes(project: Project, *names: str) -> None:
    for name in names:
        project.note(f"{name}.md", f"# {name.title()}\n\nAll about {name}, and nothing else.\n")


def _qdrant_down(project: Project, down: bool) -> None:
    project.config["qdrant"] = {"url": "http://127.0.0.1:9", "timeout_s": 2} if down else {}
    project.save()


def _ledger(project: Project) -> Ledger:
    return Ledger(load_config(project.config_file).state.ledger_sqlalchemy_url())


def _due_in(project: Project, delay: timedelta, doc_ids: list[str]) -> None:
    """Move the next retry of these failed rows to now + `delay`."""
    with _ledger(project) as ledger:
        rows = ledger.rows("notes", "notes")
        ledger.upsert([replace(rows[d], next_attempt_at=datetime.now(UTC) + delay)
                       for d in doc_ids])


def _run(project: Project, job: str, run_config: dict | None = None,
         partition: str | None = None) -> dg.ExecuteInProcessResult:
    defs = definitions.build_definitions(str(project.config_file))
    return defs.resolve_job_def(job).execute_in_process(
        run_config=run_config or {}, partition_key=partition, raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral())


def _materialized(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, int]]:
    """partition -> metadata of the qdrant_notes materializations the run recorded."""
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        if materialization.asset_key == dg.AssetKey("qdrant_notes"):
            found[materialization.partition] = {
                k: v.value for k, v in materialization.metadata.items()}
    return found


@pytest.fixture
def half_failed(project: Project, capsys) -> Project:
    """4 notes failed while Qdrant was down (embedded and stored); apple and banana are due
    for retry, cherry and damson not for another hour."""
    _notes(project, "apple", "banana", "cherry", "damson")
    project.config["retry"] = {"step_retries": 0, "jitter": 0}
    _qdrant_down(project, True)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1 and counts(report)["failed"] == 4
    _due_in(project, -timedelta(seconds=1), ["apple.md", "banana.md"])
    _due_in(project, timedelta(hours=1), ["cherry.md", "damson.md"])
    _qdrant_down(project, False)
    return project


def test_a_retry_run_reapplies_only_due_documents_with_their_stored_embeddings(half_failed):
    project = half_failed
    _notes(project, "elder")  # a new note: not the retry's business
    result = _run(project, SYNC_JOB, sensors.RETRY_RUN_CONFIG, partition="notes")
    assert result.success
    applied = _materialized(result)["notes"]
    assert applied["added"] == 2 and applied["failed"] == 0
    embedded = [e.event_specific_data.materialization.metadata  # type: ignore[union-attr]
                for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey("embeddings_notes")][0]
    assert embedded["chunks_embedded"].value == 0 and embedded["chunks_reused"].value == 2
    assert set(project.points()) == {"apple.md", "banana.md"}
    with _ledger(project) as ledger:
        statuses = {d: r.status for d, r in ledger.rows("notes", "notes").items()}
    assert statuses == {"apple.md": "synced", "banana.md": "synced",
                        "cherry.md": "failed", "damson.md": "failed"}


def test_retries_give_up_after_max_retries_and_say_so(project: Project, capsys, monkeypatch):
    _notes(project, "apple")
    project.config["retry"] = {"step_retries": 0, "max_retries": 2, "base_backoff_s": 60,
                               "jitter": 0}
    _qdrant_down(project, True)
    project.cli("sync", capsys=capsys)
    _, status = project.cli("status", capsys=capsys)
    (row,) = status["failed"]
    assert row["attempts"] == 1 and not row["gave_up"]
    last = datetime.fromisoformat(row["last_attempt_at"])
    assert datetime.fromisoformat(row["next_attempt_at"]) - last == timedelta(seconds=60)

    project.cli("sync", capsys=capsys)  # the second failure is the last one allowed
    _, status = project.cli("status", capsys=capsys)
    (row,) = status["failed"]
    assert row["attempts"] == 2 and row["gave_up"] and row["next_attempt_at"] is None
    capsys.readouterr()
    from vector_sync.cli import main

    main(["status", "--config", str(project.config_file)])
    assert "retries exhausted" in capsys.readouterr().out

    # the retry sensor no longer asks, however late it is
    monkeypatch.setattr(sensors, "now", lambda: datetime.now(UTC) + timedelta(days=30))
    defs = definitions.build_definitions(str(project.config_file))
    tick = defs.resolve_sensor_def("retry_failed")(dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), definitions=defs))
    assert isinstance(tick, dg.SkipReason) and "no failed rows" in (tick.skip_message or "")

    # and the collection's failed_documents check, which every sync evaluates, says so: an
    # error now, since nothing will retry the document
    status = reports.collection_status(load_config(project.config_file), "notes")
    check = reports.failed_documents_check(status)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    [row] = [r.data for r in check.metadata["failed_documents"].value.records]  # type: ignore
    assert (row["doc_id"], row["next_retry"], row["attempts"]) == (
        "apple.md", "retries exhausted", 2)


def test_sync_all_pending_syncs_every_unsynced_document_due_or_not(half_failed):
    project = half_failed
    _notes(project, "elder")  # not in the ledger: not pending, not synced by this job
    result = _run(project, SYNC_PENDING_JOB, partition="notes")
    assert result.success
    assert _materialized(result)["notes"]["added"] == 4
    assert set(project.points()) == {"apple.md", "banana.md", "cherry.md", "damson.md"}


def _resync(project: Project, *doc_ids: str) -> dg.ExecuteInProcessResult:
    """The launchpad's "re-sync these documents": the sync job with `doc_ids`."""
    return _run(project, SYNC_JOB, {"ops": {"source_snapshot": {"config": {
        "doc_ids": list(doc_ids)}}}}, partition="notes")


def test_resync_documents_reads_exactly_the_listed_documents(project: Project, capsys):
    _notes(project, "apple", "banana")
    project.cli("sync", capsys=capsys)
    project.note("apple.md", "# Apple\n\nApples, rewritten.\n")
    project.note("banana.md", "# Banana\n\nBananas, rewritten.\n")
    (project.vault / "private").mkdir()
    project.note("private/secret.md", "# Secret\n")
    (project.vault / ".vectorsyncignore").write_text("private/\n")

    result = _resync(project, "apple.md", "private/secret.md")
    assert result.success
    assert _materialized(result)["notes"]["updated"] == 1
    points = project.points()
    assert set(points) == {"apple.md", "banana.md"}  # the ignored note was not synced
    assert "rewritten" in points["apple.md"][0]["text"]
    assert "rewritten" not in points["banana.md"][0]["text"]  # not listed: untouched

    (project.vault / "banana.md").unlink()
    result = _resync(project, "banana.md")
    assert _materialized(result)["notes"]["deleted"] == 1 and set(project.points()) == {
        "apple.md"}
