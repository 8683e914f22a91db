"""Consistency checks, repair and the mass-delete guard, with faults injected directly into
Qdrant and into the ledger (the faults are the point of these tests)."""

from __future__ import annotations

import sqlite3
import uuid

import dagster as dg

from vector_sync.core.hashing import point_id
from vector_sync.core.store import Point, SetPayload
from vector_sync.definitions import build_definitions
from vector_sync.defs.jobs import REPAIR_JOB, VERIFY_JOB
from vector_sync_tests.support import Project, counts, long_note, write_note
from vector_sync_tests.test_sync import _storage_digest


def _seed(project: Project) -> None:
    for i in range(6):
        project.note(f"n{i}.md", f"---\ntags: [t{i}]\n---\n# Note {i}\n\nNote {i} is short.\n")
    project.note("long.md", long_note("Longform"))
    project.note("long2.md", long_note("Second", sections=3))


def _ids(doc_id: str, indexes: range) -> list[str]:
    return [point_id("notes", doc_id, i) for i in indexes]


def _verify(project: Project, capsys) -> tuple[int, dict]:
    code, report = project.cli("verify", capsys=capsys)
    return code, report["collections"]["notes"]["sources"]["notes"]


def _problems(found: dict) -> dict[str, int]:
    return {k: found[k] for k in ("missing", "orphans", "stale", "ledger_disagreements")}


def test_a_fresh_sync_verifies_clean_and_repair_of_a_consistent_collection_writes_nothing(
        project: Project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    code, found = _verify(project, capsys)
    assert code == 0 and _problems(found) == {"missing": 0, "orphans": 0, "stale": 0,
                                              "ledger_disagreements": 0}
    assert found["checked"] == 8 and found["points"] == len(
        [p for ps in project.points().values() for p in ps])
    qdrant_before = _storage_digest(project)
    ledger_before = (project.root / "state" / "ledger.sqlite").read_bytes()
    code, report = project.cli("repair", capsys=capsys)
    assert code == 0 and report["ok"]
    assert _storage_digest(project) == qdrant_before
    assert _ledger_rows(project) == _ledger_rows_from(ledger_before, project)


def test_faults_injected_into_qdrant_are_found_exactly_and_repair_converges(
        project: Project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    long_chunks = len(project.points()["long.md"])
    with project.qdrant() as store:
        store.delete("notes", _ids("n0.md", range(1)))
        store.delete("notes", _ids("long.md", range(1, 2)))  # one chunk of a multi-chunk document
        orphan = {"source": "notes", "doc_id": "ghost.md", "chunk_index": 0, "chunk_count": 1,
                  "text": "boo", "content_hash": "x", "synced_at": "2026-01-01T00:00:00Z"}
        store.upsert("notes", [
            Point(point_id("notes", "ghost.md", 0), [0.1] * 384, orphan),
            Point(point_id("notes", "n1.md", 5), [0.1] * 384,  # a surplus chunk of a live doc
                  {**orphan, "doc_id": "n1.md", "chunk_index": 5})])
        store.batch("notes", [SetPayload({"tags": ["tampered"]}, _ids("n2.md", range(1))),
                              SetPayload({"content_hash": "old"}, _ids("n3.md", range(1)))])
    code, found = _verify(project, capsys)
    assert code == 1
    assert _problems(found) == {"missing": 2, "orphans": 2, "stale": 2,
                                "ledger_disagreements": 6}
    offenders = {(o["problem"], o["doc_id"]) for o in found["offenders"]}
    assert {("missing", "n0.md"), ("missing", "long.md"), ("orphan", "ghost.md"),
            ("orphan", "n1.md"), ("stale", "n2.md"), ("stale", "n3.md")} <= offenders

    code, report = project.cli("repair", capsys=capsys)
    assert code == 0 and report["ok"], report
    points = project.points()
    assert "ghost.md" not in points and len(points["long.md"]) == long_chunks
    assert [p["chunk_index"] for p in points["n1.md"]] == [0]
    assert points["n2.md"][0]["tags"] == ["t2"] and len(points["n0.md"]) == 1
    code, found = _verify(project, capsys)
    assert code == 0
    code, report = project.cli("sync", capsys=capsys)  # and the next sync has nothing to do
    assert counts(report)["unchanged"] == 8 and counts(report)["chunks_embedded"] == 0


def test_points_under_foreign_ids_are_orphans_and_repair_deletes_exactly_those_ids(
        project: Project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    with project.qdrant() as store:
        ours = {p.id: p for p in store.scroll("notes", None, with_vectors=True)}
        copy_of = {p.payload["doc_id"]: p for p in ours.values() if p.payload["chunk_index"] == 0}
        foreign = [  # as another tool, an older id scheme or a hand-made copy would write them
            Point(str(uuid.uuid4()), [0.1] * 384, {**copy_of["n0.md"].payload,
                                                   "doc_id": "ghost.md"}),
            Point(str(uuid.uuid4()), copy_of["n1.md"].vector or [], copy_of["n1.md"].payload),
            # three identical copies: digests that cancel in pairs must still be caught
            *[Point(str(uuid.uuid4()), copy_of["n2.md"].vector or [], copy_of["n2.md"].payload)
              for _ in range(3)]]
        store.upsert("notes", foreign)
    code, found = _verify(project, capsys)
    assert code == 1 and found["points"] == len(ours) + 5
    assert {o["doc_id"] for o in found["offenders"] if o["problem"] == "orphan"} == {
        "ghost.md", "n1.md", "n2.md"}
    assert found["missing"] == 0 and found["stale"] == 0

    code, report = project.cli("repair", capsys=capsys)
    assert code == 0 and report["ok"], report
    with project.qdrant() as store:
        after = {p.id for p in store.scroll("notes", None)}
    assert after == set(ours)  # every foreign id gone, every point of ours kept
    code, found = _verify(project, capsys)
    assert code == 0 and _problems(found) == {"missing": 0, "orphans": 0, "stale": 0,
                                              "ledger_disagreements": 0}


def test_faults_injected_into_the_ledger_are_warnings_that_repair_fixes(
        project: Project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    with sqlite3.connect(project.root / "state" / "ledger.sqlite") as db:
        db.execute("DELETE FROM ledger WHERE doc_id = 'n4.md'")
        db.execute("UPDATE ledger SET content_hash = 'wrong' WHERE doc_id = 'n5.md'")
        db.execute("UPDATE ledger SET chunk_count = 1 WHERE doc_id = 'long2.md'")
    code, found = _verify(project, capsys)
    # Qdrant itself matches the source: only the bookkeeping is wrong
    assert code == 0 and _problems(found) == {"missing": 0, "orphans": 0, "stale": 0,
                                              "ledger_disagreements": 3}
    code, report = project.cli("repair", capsys=capsys)
    assert code == 0
    assert report["collections"]["notes"]["sources"]["notes"]["ledger_disagreements"] == 0


def test_a_collection_recreated_with_another_vector_size_is_rebuilt_by_repair(
        project: Project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    with project.qdrant() as store:
        store.drop("notes")
        store.create("notes", 8, "Dot")
    code, found = _verify(project, capsys)
    assert code == 1 and found["missing"] == 8
    assert any("vector size 8" in p for p in found["config_problems"])
    assert any("distance Dot" in p for p in found["config_problems"])
    code, report = project.cli("repair", capsys=capsys)
    assert code == 0 and report["ok"], report
    with project.qdrant() as store:
        assert store.vector_size("notes") == 384
    assert len(project.points()) == 8


def test_an_emptied_vault_trips_the_guard_and_qdrant_keeps_every_point(project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    before = project.points()
    for note in project.vault.glob("*.md"):
        note.unlink()
    code, planned = project.cli("plan", capsys=capsys)
    assert "yields no documents" in counts(planned)["mass_delete_guard"]
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1
    error = report["sources"]["notes"]["error"]
    assert "yields no documents" in error and "--allow-mass-delete" in error
    assert project.points() == before
    project.note("n0.md", "# Note 0\n\nonly one left\n")  # 7 of 8 deleted: over the 0.5 limit
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1 and "7 of 8 documents would be deleted" in report["sources"]["notes"]["error"]
    assert project.points() == before
    code, report = project.cli("sync", "--allow-mass-delete", capsys=capsys)
    assert code == 0 and counts(report)["deleted"] == 7
    assert set(project.points()) == {"n0.md"}


def test_the_verify_job_checks_the_named_sources_with_a_table_of_offenders(
        project: Project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    with project.qdrant() as store:
        store.delete("notes", _ids("n0.md", range(1)))
    defs = build_definitions(str(project.config_file))
    ledger_before = _ledger_rows(project)
    result = defs.resolve_job_def(VERIFY_JOB).execute_in_process(  # as the launchpad runs it
        run_config={"sources": ["notes"]}, instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False)
    assert _ledger_rows(project) == ledger_before  # checks report; repair is what writes
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    consistent = evaluations["consistent_with_source"]
    assert not consistent.passed and consistent.severity == dg.AssetCheckSeverity.ERROR
    assert consistent.metadata["missing"].value == 1
    rows = consistent.metadata["offenders"].value.records
    assert [(r.data["source"], r.data["problem"], r.data["doc_id"]) for r in rows] == [
        ("notes", "missing", "n0.md"), ("notes", "ledger", "n0.md")]
    assert evaluations["vectors_match_config"].passed
    ledger_check = evaluations["ledger_matches_qdrant"]
    assert not ledger_check.passed and ledger_check.severity == dg.AssetCheckSeverity.WARN
    assert ledger_check.metadata["disagreements"].value == 1
    code, report = project.cli("sync", capsys=capsys)  # the ledger still claims n0.md is there
    assert counts(report)["added"] == 0 and len(project.points()) == 7


def test_the_verify_job_checks_every_source_by_default_and_names_an_unknown_one(
        project: Project, capsys):
    _seed(project)
    project.config["sources"]["more"] = {"kind": "markdown", "path": "more",
                                         "collections": ["notes"]}
    project.save()
    write_note(project.root / "more", "m.md", "# More\n\nMore notes.\n")
    project.cli("sync", capsys=capsys)
    with project.qdrant() as store:
        store.delete("notes", [point_id("more", "m.md", 0)])
    job = build_definitions(str(project.config_file)).resolve_job_def(VERIFY_JOB)
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                    raise_on_error=False)
    assert not result.success  # a point is missing: the verify run fails
    consistent = next(e for e in result.get_asset_check_evaluations()
                      if e.check_name == "consistent_with_source")
    assert consistent.metadata["sources"].value == "more, notes"
    assert consistent.metadata["checked"].value == 9 and consistent.metadata["missing"].value == 1
    assert [(r.data["source"], r.data["doc_id"]) for r in
            consistent.metadata["offenders"].value.records if r.data["problem"] == "missing"] \
        == [("more", "m.md")]

    wrong = job.execute_in_process(run_config={"sources": ["nots"]}, raise_on_error=False,
                                   instance=dg.DagsterInstance.ephemeral())
    assert not wrong.success
    [failure] = [e for e in wrong.all_events if e.is_step_failure]
    assert "unknown source(s) nots: the config names more, notes" in \
        failure.step_failure_data.error.message  # type: ignore[union-attr]


def _ledger_rows(project: Project) -> list[tuple]:
    with sqlite3.connect(project.root / "state" / "ledger.sqlite") as db:
        return sorted(db.execute("SELECT * FROM ledger").fetchall())


def _ledger_rows_from(content: bytes, project: Project) -> list[tuple]:
    copy = project.root / f"ledger-{uuid.uuid4().hex}.sqlite"
    copy.write_bytes(content)
    with sqlite3.connect(copy) as db:
        return sorted(db.execute("SELECT * FROM ledger").fetchall())


def test_a_run_of_the_repair_job_in_dagster_converges(project: Project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    with project.qdrant() as store:
        store.delete("notes", _ids("long.md", range(1, 2)))
    defs = build_definitions(str(project.config_file))
    result = defs.resolve_job_def(REPAIR_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key="notes")
    assert result.success
    applied = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                   if e.asset_key == dg.AssetKey("qdrant_notes"))
    assert applied["added"].value == 1 and applied["points_written"].value == 4
    code, found = _verify(project, capsys)
    assert code == 0 and found["missing"] == 0


def test_sampling_mode_checks_documents_by_point_id_and_counts_the_points(
        project: Project, capsys):
    _seed(project)
    project.cli("sync", capsys=capsys)
    with project.qdrant() as store:
        store.delete("notes", _ids("long.md", range(1, 2)))
        store.upsert("notes", [Point(point_id("notes", "ghost.md", 0), [0.1] * 384,
                                     {"source": "notes", "doc_id": "ghost.md", "chunk_index": 0})])
    code, report = project.cli("verify", "--sample", "1.0", capsys=capsys)
    found = report["collections"]["notes"]["sources"]["notes"]
    assert code == 1 and found["missing"] == 1
    assert found["points"] == found["points_expected"]  # one lost, one ghost: the same count
    assert "8 of 8 documents by point id" in found["sampled"]
    with project.qdrant() as store:
        store.upsert("notes", [Point(point_id("notes", "long.md", 1), [0.1] * 384,
                                     {"source": "notes", "doc_id": "long.md", "chunk_index": 1})])
    code, report = project.cli("verify", "--sample", "0.5", capsys=capsys)
    found = report["collections"]["notes"]["sources"]["notes"]
    assert code == 1 and found["points"] - found["points_expected"] == 1  # ghost.md: counted


def test_sources_and_collections_the_config_dropped_are_reported_and_pruned_only_on_request(
        project: Project, capsys):
    _seed(project)
    write_note(project.root / "old", "a.md", "# Old\n\nA note of a source about to go.\n")
    project.config["sources"]["old"] = {"kind": "markdown", "path": "old",
                                        "collections": ["notes", "retired"]}
    project.config["collections"]["retired"] = {"embed": ["body"]}
    project.save()
    code, _ = project.cli("sync", capsys=capsys)
    assert code == 0
    notes_points = {p.id for p in _scroll(project, "notes") if p.payload["source"] == "notes"}
    with project.qdrant() as store:
        store.upsert("notes", [Point(str(uuid.uuid4()), [0.1] * 384, {"doc_id": "by-hand"})])
    del project.config["sources"]["old"], project.config["collections"]["retired"]
    project.save()

    code, report = project.cli("verify", capsys=capsys)
    assert code == 1 and not report["ok"]
    assert {(u["collection"], u["source"], u["points"]) for u in report["unmanaged"]} == {
        ("retired", None, 1), ("notes", "old", 1), ("notes", None, 1)}
    code, report = project.cli("repair", capsys=capsys)  # without --prune: reported, kept
    assert code == 1 and len(report["unmanaged"]) == 3
    assert len(_scroll(project, "notes")) == len(notes_points) + 2

    code, report = project.cli("repair", "--prune", capsys=capsys)
    assert code == 0 and report["ok"] and report["unmanaged"] == []
    with project.qdrant() as store:
        assert store.collections() == ["notes"]
    assert {p.id for p in _scroll(project, "notes")} == notes_points
    with sqlite3.connect(project.root / "state" / "ledger.sqlite") as db:
        assert db.execute("SELECT count(*) FROM ledger WHERE source = 'old'").fetchone()[0] == 0
    code, _ = project.cli("verify", capsys=capsys)
    assert code == 0


def _scroll(project: Project, collection: str) -> list:
    with project.qdrant() as store:
        return list(store.scroll(collection, None))
