"""Crash safety: faults injected on purpose (named so) between Qdrant and the ledger; the
next run must converge to exactly what the source says, with no orphaned chunks."""

from __future__ import annotations

import pytest

from vector_sync.core.ledger import Ledger
from vector_sync.core.store.embedded import EmbeddedStore
from vector_sync_tests.support import Project, counts, long_note


def test_injected_crash_after_qdrant_ack_before_ledger_converges_without_orphans(
        project: Project, capsys, monkeypatch):
    project.note("doc.md", long_note("Doc", sections=2))
    project.cli("sync", capsys=capsys)
    first = len(project.points()["doc.md"])

    project.note("doc.md", long_note("Doc", sections=6))  # grows
    real_upsert = Ledger.upsert

    def crash_when_recording_success(self, rows, *args):
        rows = list(rows)
        if any(r.status == "synced" for r in rows):
            raise RuntimeError("injected crash: process died after Qdrant acknowledged")
        real_upsert(self, rows, *args)

    monkeypatch.setattr(Ledger, "upsert", crash_when_recording_success)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1 and "injected crash" in report["sources"]["notes"]["error"]
    grown = len(project.points()["doc.md"])
    assert grown > first  # Qdrant has the new chunks; the ledger never heard of them
    monkeypatch.setattr(Ledger, "upsert", real_upsert)

    project.note("doc.md", "---\ntitle: Doc\n---\nShort now.\n")  # shrinks below both
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["updated"] == 1
    points = project.points()["doc.md"]
    assert [p["chunk_index"] for p in points] == [0]  # every surplus chunk deleted
    code, report = project.cli("sync", capsys=capsys)
    assert counts(report)["unchanged"] == 1 and counts(report)["updated"] == 0


def test_injected_qdrant_failure_on_one_batch_fails_only_that_batch(
        project: Project, capsys, monkeypatch):
    for i in range(6):
        project.note(f"n{i}.md", f"# Note {i}\n\nNote number {i} has its own words.\n")
    project.config["qdrant"] = {"batch_size": 2}  # 3 upsert batches of 2 documents
    project.config["retry"] = {"step_retries": 0}  # the step's last attempt
    project.save()
    real_upsert = EmbeddedStore.upsert
    calls = {"n": 0}

    def fail_second_batch(self, collection, points):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("injected fault: Qdrant dropped the connection")
        real_upsert(self, collection, points)

    monkeypatch.setattr(EmbeddedStore, "upsert", fail_second_batch)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1
    assert counts(report)["added"] == 4 and counts(report)["failed"] == 2
    assert len(project.points()) == 4
    code, status = project.cli("status", capsys=capsys)
    assert len(status["failed"]) == 2
    assert all("injected fault" in row["error"] for row in status["failed"])
    assert all(row["attempts"] == 1 and row["next_attempt_at"] for row in status["failed"])

    monkeypatch.setattr(EmbeddedStore, "upsert", real_upsert)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0
    assert counts(report)["added"] == 2 and counts(report)["chunks_embedded"] == 0  # reused
    assert len(project.points()) == 6


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    yield
    monkeypatch.undo()


def test_injected_transient_qdrant_fault_is_retried_by_the_step_without_rewriting(
        project: Project, capsys, monkeypatch):
    for i in range(6):
        project.note(f"n{i}.md", f"# Note {i}\n\nNote number {i} has its own words.\n")
    project.config["qdrant"] = {"batch_size": 2}
    project.config["retry"] = {"step_retries": 2, "step_delay_s": 0.1}
    project.save()
    real_upsert = EmbeddedStore.upsert
    written: list[str] = []

    def fail_second_batch_once(self, collection, points):
        if len(written) == 2 and "failed" not in written:
            written.append("failed")
            raise ConnectionError("injected fault: Qdrant dropped the connection")
        written.extend(p.payload["doc_id"] for p in points)
        real_upsert(self, collection, points)

    monkeypatch.setattr(EmbeddedStore, "upsert", fail_second_batch_once)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["added"] == 6 and counts(report)["failed"] == 0
    # the retried step did not write the two documents Qdrant had acknowledged again
    assert written == ["n0.md", "n1.md", "failed", "n2.md", "n3.md", "n4.md", "n5.md"]
    assert len(project.points()) == 6
    code, status = project.cli("status", capsys=capsys)
    assert status["failed"] == []
