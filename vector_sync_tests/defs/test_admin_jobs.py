"""What a person running vector_sync from the Dagster UI gets from a run: the collection's
status and failed documents on the materialization, a warning check while any document is
failed, the run tags whoever launched it, and the operator jobs of the launchpad."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from vector_sync.core.hashing import point_id
from vector_sync.definitions import build_definitions
from vector_sync.defs.jobs import REPAIR_JOB, RESYNC_JOB, SNAPSHOT, SYNC_JOB, VERIFY_JOB
from vector_sync_tests.support import Project

BROKEN = "---\ntitle: [never closed\n---\n# Broken\n\nThe front matter above is not YAML.\n"


def _run(project: Project, job: str, instance: dg.DagsterInstance, partition: str | None = "notes",
         run_config: dict[str, Any] | None = None,
         tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    defs = build_definitions(str(project.config_file))
    job_def = defs.resolve_implicit_global_asset_job_def() if job == "ui" else \
        defs.resolve_job_def(job)
    return job_def.execute_in_process(partition_key=partition, run_config=run_config or {},
                                      tags=tags, instance=instance, raise_on_error=False)


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey(key)]
    return {k: v.value for k, v in
            event.materialization.metadata.items()}  # type: ignore[union-attr]


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_a_failed_document_is_listed_on_the_materialization_and_raises_a_warning_check(
        project: Project):
    project.note("good.md", "# Good\n\nA note that syncs.\n")
    project.note("broken.md", BROKEN)
    instance = dg.DagsterInstance.ephemeral()
    result = _run(project, SYNC_JOB, instance)
    assert result.success  # the rest was applied; the failure is a warning, not a red run
    applied = _metadata(result, "qdrant_notes")
    assert (applied["documents_synced"], applied["documents_failed"]) == (1, 1)
    [row] = [r.data for r in applied["failed_documents"].records]
    assert (row["source"], row["doc_id"], row["error_code"]) == (
        "notes", "broken.md", "bad_frontmatter")
    assert "YAML" in row["error"] or "yaml" in row["error"]
    check = _check(result, "failed_documents")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description is not None and "1 document(s) failed" in check.description

    project.note("broken.md", "# Mended\n\nNow it syncs.\n")
    resynced = _run(project, RESYNC_JOB, instance,
                    run_config={"ops": {"source_snapshot": {"config": {"doc_ids": ["broken.md"]}}}})
    assert resynced.success and _check(resynced, "failed_documents").passed
    assert _metadata(resynced, "qdrant_notes")["documents_failed"] == 0
    tags = instance.get_run_by_id(resynced.run_id).tags  # type: ignore[union-attr]
    assert (tags["vector_sync/trigger"], tags["vector_sync/source"],
            tags["vector_sync/documents"]) == ("operator", "notes", "broken.md")
    assert set(project.points()) == {"good.md", "broken.md"}


def test_runs_the_ui_or_a_backfill_launched_carry_source_and_trigger_tags(project: Project):
    project.note("a.md", "# A\n\nA note.\n")
    instance = dg.DagsterInstance.ephemeral()
    materialized = _run(project, "ui", instance)  # the catalog's Materialize button
    backfilled = _run(project, "ui", instance, tags={"dagster/backfill": "abcdef"})
    for result, trigger in ((materialized, "ui"), (backfilled, "backfill")):
        tags = instance.get_run_by_id(result.run_id).tags  # type: ignore[union-attr]
        assert (tags["vector_sync/source"], tags["vector_sync/trigger"]) == ("notes", trigger)
        assert "vector_sync/documents" not in tags  # not a targeted run


def test_throughput_is_recorded_only_for_runs_that_did_something(project: Project):
    project.note("a.md", "# A\n\nA note.\n")
    instance = dg.DagsterInstance.ephemeral()
    first, again = _run(project, SYNC_JOB, instance), _run(project, SYNC_JOB, instance)
    assert _metadata(first, "qdrant_notes")["points_per_s"] > 0
    assert _metadata(first, "embeddings_notes")["chunks_per_s"] > 0
    assert "points_per_s" not in _metadata(again, "qdrant_notes")  # nothing written: no rate
    assert "chunks_per_s" not in _metadata(again, "embeddings_notes")
    assert _metadata(again, "qdrant_notes")["documents_synced"] == 1  # the status still is


def test_resync_documents_without_ids_fails_saying_what_to_type(project: Project):
    project.note("a.md", "# A\n\nA note.\n")
    result = _run(project, RESYNC_JOB, dg.DagsterInstance.ephemeral())
    assert not result.success and not project.points()  # no whole-source sync instead
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "ops.source_snapshot.config.doc_ids" in \
        failure.step_failure_data.error.message  # type: ignore[union-attr]


def _a_source_removed_from_the_config(project: Project, capsys) -> None:
    """Points of source `old` in collection notes, and a config that no longer names it."""
    project.note("a.md", "# A\n\nA note.\n")
    project.config["sources"]["old"] = {"kind": "markdown", "path": "old",
                                        "collections": ["notes"]}
    project.save()
    (project.root / "old").mkdir()
    (project.root / "old" / "o.md").write_text("# Old\n\nAn old note.\n")
    project.cli("sync", capsys=capsys)
    assert {p[0]["source"] for p in project.points().values()} == {"notes", "old"}
    del project.config["sources"]["old"]
    project.save()


def test_the_repair_job_prunes_a_source_the_config_no_longer_names(project: Project, capsys):
    _a_source_removed_from_the_config(project, capsys)
    instance = dg.DagsterInstance.ephemeral()
    kept = _run(project, REPAIR_JOB, instance)  # prune is off by default: nothing deleted
    assert kept.success and "o.md" in project.points()
    pruned = _run(project, REPAIR_JOB, instance, run_config={
        "ops": {"prepare_repair": {"config": {"prune": True}}}})
    assert pruned.success and set(project.points()) == {"a.md"}
    assert _metadata(pruned, "prepare_repair")["pruned"] is True


def test_a_snapshot_run_config_asking_for_repair_or_prune_is_refused_and_deletes_nothing(
        project: Project, capsys):
    """Materializing a source's snapshot only lists and reads it: a run config that asks it
    to repair or prune is refused by the config check, before any step runs."""
    _a_source_removed_from_the_config(project, capsys)
    defs = build_definitions(str(project.config_file))
    snapshot_alone = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={SNAPSHOT})  # the catalog's Materialize on source_snapshot
    for job in (defs.resolve_job_def(SYNC_JOB), snapshot_alone):
        for key in ("repair", "prune"):
            with pytest.raises(dg.DagsterInvalidConfigError,
                               match=f'unexpected config entry "{key}"'):
                job.execute_in_process(
                    partition_key="notes", instance=dg.DagsterInstance.ephemeral(),
                    run_config={"ops": {"source_snapshot": {"config": {key: True}}}})
    assert {p[0]["source"] for p in project.points().values()} == {"notes", "old"}


def test_only_the_repair_job_repairs_materialize_all_syncs(project: Project, capsys):
    """Materialize all on the whole graph selects prepare_repair too: it repairs nothing
    there (the run syncs), and asking it to prune is refused with what to launch instead."""
    _a_source_removed_from_the_config(project, capsys)
    with project.qdrant() as store:  # a point lost behind vector_sync's back
        store.delete("notes", [point_id("notes", "a.md", 0)])
    instance = dg.DagsterInstance.ephemeral()
    synced = _run(project, "ui", instance)
    assert synced.success and _metadata(synced, "prepare_repair")["repaired"] is False
    # a sync trusts the ledger: the lost point stays lost, nothing was pruned
    assert set(project.points()) == {"o.md"}
    refused = _run(project, "ui", instance, run_config={
        "ops": {"prepare_repair": {"config": {"prune": True}}}})
    assert not refused.success and set(project.points()) == {"o.md"}
    [failure] = [e for e in refused.all_events if e.is_step_failure]
    assert "the repair job" in failure.step_failure_data.error.message  # type: ignore[union-attr]


def test_every_sync_spot_checks_qdrant_and_the_verify_job_names_the_offender(project: Project):
    for i in range(30):
        project.note(f"n{i}.md", f"# Note {i}\n\nNote number {i}.\n")
    instance = dg.DagsterInstance.ephemeral()
    assert _check(_run(project, SYNC_JOB, instance), "consistent_with_source").passed
    with project.qdrant() as store:  # a point lost behind vector_sync's back
        store.delete("notes", [point_id("notes", "n7.md", 0)])

    spot = _check(_run(project, SYNC_JOB, instance), "consistent_with_source")
    assert not spot.passed and (spot.metadata["points"].value,  # the lost point, counted
                                spot.metadata["points_expected"].value) == (29, 30)
    assert "20 of 30 documents by point id" in spot.metadata["sampled"].value  # type: ignore
    complete = _check(_run(project, VERIFY_JOB, instance, partition=None),
                      "consistent_with_source")
    assert not complete.passed and complete.metadata["sampled"].value == "no: every document"
    assert [(r.data["problem"], r.data["doc_id"]) for r in
            complete.metadata["offenders"].value.records] == [  # type: ignore[union-attr]
        ("missing", "n7.md"), ("ledger", "n7.md")]


def test_a_check_can_be_executed_alone_as_its_page_does(project: Project):
    project.note("a.md", "# A\n\nA note.\n")
    instance = dg.DagsterInstance.ephemeral()
    _run(project, SYNC_JOB, instance)
    key = dg.AssetCheckKey(dg.AssetKey("qdrant_notes"), "consistent_with_source")
    job = build_definitions(str(project.config_file)).resolve_implicit_global_asset_job_def()
    alone = job.get_subset(asset_selection=set(), asset_check_selection={key}) \
        .execute_in_process(instance=instance)
    assert [(e.check_name, e.passed) for e in alone.get_asset_check_evaluations()] == [
        ("consistent_with_source", True)]
    assert not alone.get_asset_materialization_events()


def test_the_cli_sync_warns_when_its_spot_check_finds_qdrant_wrong(project: Project, capsys):
    for i in range(3):
        project.note(f"n{i}.md", f"# Note {i}\n\nNote number {i}.\n")
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and report["sources"]["notes"]["warnings"] == []
    with project.qdrant() as store:
        store.delete("notes", [point_id("notes", "n1.md", 0)])
    code, report = project.cli("sync", capsys=capsys)  # nothing changed in the source
    assert code == 0  # the sync itself did what it had to
    warnings = report["sources"]["notes"]["warnings"]
    assert [w.split(":")[0] for w in warnings] == [  # the lost point, and the ledger's claim
        "qdrant_notes consistent_with_source", "qdrant_notes ledger_matches_qdrant"]
    assert "Qdrant differs from the source" in warnings[0]
    from vector_sync.cli import main

    main(["sync", "--config", str(project.config_file)])
    assert "warning: Qdrant spot check: qdrant_notes consistent_with_source" in \
        capsys.readouterr().out


def test_a_verify_run_that_finds_qdrant_wrong_fails_naming_it_and_a_consistent_one_succeeds(
        project: Project):
    for i in range(3):
        project.note(f"n{i}.md", f"# Note {i}\n\nNote number {i}.\n")
    instance = dg.DagsterInstance.ephemeral()
    assert _run(project, SYNC_JOB, instance).success
    consistent = _run(project, VERIFY_JOB, instance, partition=None)
    assert consistent.success and _check(consistent, "consistent_with_source").passed

    with project.qdrant() as store:  # a point lost behind vector_sync's back
        store.delete("notes", [point_id("notes", "n1.md", 0)])
    # a sync's spot check finds it too, and only reports it: the sync did its own work
    spot = _run(project, SYNC_JOB, instance)
    assert spot.success and not _check(spot, "consistent_with_source").passed

    verified = _run(project, VERIFY_JOB, instance, partition=None)
    assert not verified.success
    run = instance.get_run_by_id(verified.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE  # a red run
    [failure] = [e for e in verified.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert "qdrant_notes consistent_with_source: Qdrant differs from the source" in message
    assert "missing n1.md" in message
    # the checks were still recorded, with the offenders the check's page lists
    check = _check(verified, "consistent_with_source")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert ("missing", "n1.md") in [(r.data["problem"], r.data["doc_id"]) for r in
                                    check.metadata["offenders"].value.records]  # type: ignore
    recorded = {(event.dagster_event.event_specific_data.check_name,  # type: ignore[union-attr]
                 event.dagster_event.event_specific_data.passed)  # type: ignore[union-attr]
                for event in instance.all_logs(
                    verified.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)}
    assert ("consistent_with_source", False) in recorded


def test_a_failed_document_the_retries_gave_up_on_turns_its_check_to_an_error(
        project: Project):
    project.config["retry"] = {"max_retries": 1}  # the first failure is the last one allowed
    project.save()
    project.note("good.md", "# Good\n\nA note that syncs.\n")
    project.note("broken.md", BROKEN)
    result = _run(project, SYNC_JOB, dg.DagsterInstance.ephemeral())
    assert result.success  # the rest was applied
    check = _check(result, "failed_documents")
    # an ERROR check (not a WARN one) is what turns the asset's box red in the UI's graph
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description is not None
    assert check.description.startswith("1 document(s) failed, retries exhausted for 1")
    assert _metadata(result, "qdrant_notes")["documents_given_up"] == 1
