"""The Dagster layer itself: definitions load from a config, assets materialize per source
partition with the metadata the UI plots, and Qdrant writers share one concurrency pool."""

from __future__ import annotations

import dagster as dg

from vector_sync.definitions import build_definitions
from vector_sync.defs.assets import QDRANT_POOL
from vector_sync_tests.conftest import Project


def _two_sources(project: Project) -> None:
    project.note("a.md", "# Apples\n\nApples grow on trees.\n")
    other = project.root / "other"
    other.mkdir()
    (other / "x.md").write_text("# Xylophones\n\nA xylophone is a percussion instrument.\n")
    project.config["sources"]["other"] = {"kind": "markdown", "path": "other",
                                          "collections": ["other_notes"]}
    project.config["collections"]["other_notes"] = {"embed": ["title", "body"]}
    project.save()


def test_definitions_build_one_partition_per_source_and_a_chain_per_collection(project):
    _two_sources(project)
    defs = build_definitions(str(project.config_file))
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"source_snapshot", "changes/notes", "embeddings/notes", "qdrant/notes",
                    "changes/other_notes", "embeddings/other_notes", "qdrant/other_notes"}
    snapshot = graph.get(dg.AssetKey("source_snapshot"))
    assert snapshot.partitions_def.get_partition_keys() == ["notes", "other"]
    qdrant = defs.get_assets_def(dg.AssetKey(["qdrant", "notes"]))
    assert qdrant.op.pool == QDRANT_POOL
    assert graph.get(dg.AssetKey(["qdrant", "notes"])).parent_keys == {
        dg.AssetKey(["embeddings", "notes"])}


def test_materializing_a_partition_reports_counts_durations_and_throughput(project):
    _two_sources(project)
    defs = build_definitions(str(project.config_file))
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(partition_key="notes", instance=instance)
    assert result.success
    by_key = {
        e.asset_key.to_user_string(): e.materialization.metadata  # type: ignore[union-attr]
        for e in result.get_asset_materialization_events()
        if e.materialization is not None  # type: ignore[union-attr]
    }
    applied = by_key["qdrant/notes"]
    assert applied["added"].value == 1 and applied["failed"].value == 0
    assert applied["points_written"].value == 1 and "points_per_s" in applied
    assert by_key["embeddings/notes"]["chunks_embedded"].value == 1
    assert by_key["source_snapshot"]["documents"].value == 1
    # the other source's collection is not fed by "notes": its chain is skipped, nothing
    # of it is materialized for this partition
    assert {"changes/other_notes", "embeddings/other_notes", "qdrant/other_notes"}.isdisjoint(
        by_key)
    assert set(project.points("notes")) == {"a.md"}
    assert project.points("other_notes") == {}


def test_cli_sync_runs_in_the_instance_with_the_guard_but_not_the_slow_checks(
        project, capsys, monkeypatch, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # CLI runs land in the UI's run history
    project.note("a.md", "# Apples\n\nApples grow on trees.\n")
    code, _ = project.cli("sync", capsys=capsys)
    assert code == 0
    instance = dg.DagsterInstance.get()
    runs = instance.get_run_records()
    assert len(runs) == 1 and runs[0].dagster_run.tags["vector_sync/source"] == "notes"
    evaluated = {
        event.dagster_event.event_specific_data.check_name  # type: ignore[union-attr]
        for event in instance.all_logs(runs[0].dagster_run.run_id)
        if event.dagster_event is not None
        and event.dagster_event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }
    assert evaluated == {"mass_delete_guard"}


def test_qdrant_assets_carry_the_step_retry_policy_and_freshness_from_the_config(project):
    project.config["retry"] = {"step_retries": 4, "step_delay_s": 0.5}
    project.config["sensors"] = {"resync_every_s": 600}
    project.save()
    defs = build_definitions(str(project.config_file))
    qdrant = defs.get_assets_def(dg.AssetKey(["qdrant", "notes"]))
    policy = qdrant.op.retry_policy
    assert policy is not None and (policy.max_retries, policy.delay, policy.backoff) == (
        4, 0.5, dg.Backoff.EXPONENTIAL)
    freshness = qdrant.specs_by_key[dg.AssetKey(["qdrant", "notes"])].freshness_policy
    assert freshness is not None
    assert (freshness.fail_window.to_timedelta().total_seconds(),
            freshness.warn_window.to_timedelta().total_seconds()) == (1200, 900)
