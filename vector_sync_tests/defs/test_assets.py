"""The Dagster layer itself: definitions load from a config, assets materialize per source
partition with the metadata the UI plots, and Qdrant writers share one concurrency pool."""

from __future__ import annotations

import dagster as dg

from vector_sync.definitions import build_definitions
from vector_sync.defs.assets import QDRANT_POOL
from vector_sync.defs.jobs import SYNC_JOB
from vector_sync_tests.support import Project


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
    assert keys == {"prepare_repair", "source_snapshot",
                    "changes_notes", "embeddings_notes", "qdrant_notes",
                    "changes_other_notes", "embeddings_other_notes", "qdrant_other_notes"}
    snapshot = graph.get(dg.AssetKey("source_snapshot"))
    assert snapshot.partitions_def.get_partition_keys() == ["notes", "other"]
    qdrant = defs.get_assets_def(dg.AssetKey("qdrant_notes"))
    assert qdrant.op.pool == QDRANT_POOL
    assert graph.get(dg.AssetKey("qdrant_notes")).parent_keys == {
        dg.AssetKey("embeddings_notes")}


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
    applied = by_key["qdrant_notes"]
    assert applied["added"].value == 1 and applied["failed"].value == 0
    assert applied["points_written"].value == 1 and "points_per_s" in applied
    assert by_key["embeddings_notes"]["chunks_embedded"].value == 1
    assert by_key["source_snapshot"]["documents"].value == 1
    # the other source's collection is not fed by "notes": its chain is skipped, nothing
    # of it is materialized for this partition
    assert {"changes_other_notes", "embeddings_other_notes", "qdrant_other_notes"}.isdisjoint(
        by_key)
    assert set(project.points("notes")) == {"a.md"}
    assert project.points("other_notes") == {}


def test_cli_sync_runs_in_the_instance_with_every_check_of_the_chain(
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
    assert evaluated == {"mass_delete_guard", "failed_documents", "consistent_with_source",
                         "vectors_match_config", "ledger_matches_qdrant"}


def test_qdrant_assets_carry_the_step_retry_policy_and_freshness_from_the_config(project):
    project.config["retry"] = {"step_retries": 4, "step_delay_s": 0.5}
    project.config["sensors"] = {"resync_every_s": 600}
    project.save()
    defs = build_definitions(str(project.config_file))
    qdrant = defs.get_assets_def(dg.AssetKey("qdrant_notes"))
    policy = qdrant.op.retry_policy
    assert policy is not None and (policy.max_retries, policy.delay, policy.backoff) == (
        4, 0.5, dg.Backoff.EXPONENTIAL)
    freshness = qdrant.specs_by_key[dg.AssetKey("qdrant_notes")].freshness_policy
    assert freshness is not None
    assert (freshness.fail_window.to_timedelta().total_seconds(),
            freshness.warn_window.to_timedelta().total_seconds()) == (1200, 900)


def _what_the_run_did(instance: dg.DagsterInstance, run_id: str) -> dict[str, object]:
    """Which assets a run materialized (with which metadata keys) and which checks it ran."""
    materialized: dict[str, frozenset[str]] = {}
    checks: dict[str, bool] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
            assert materialization.partition == "notes"
            materialized[materialization.asset_key.to_user_string()] = frozenset(
                materialization.metadata)
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data  # type: ignore[union-attr]
            checks[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = \
                evaluation.passed
    return {"materialized": materialized, "checks": checks}


def test_cli_launchpad_and_sensor_syncs_are_the_same_run_of_the_same_assets(
        project, capsys, monkeypatch, tmp_path):
    _two_sources(project)
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # CLI runs land in this instance
    instance = dg.DagsterInstance.get()
    defs = build_definitions(str(project.config_file))

    code, _ = project.cli("sync", "--source", "notes", capsys=capsys)
    assert code == 0
    project.note("a.md", "# Apples\n\nApples grow on trees, in orchards.\n")
    launched = defs.resolve_job_def(SYNC_JOB).execute_in_process(  # the launchpad's sync now
        partition_key="notes", instance=instance)
    project.note("a.md", "# Apples\n\nApples grow on trees, in old orchards.\n")
    tick = defs.resolve_sensor_def("watch_notes")(dg.build_sensor_context(
        instance=instance, definitions=defs))
    [request] = tick.run_requests  # type: ignore[union-attr]
    sensed = defs.resolve_job_def(SYNC_JOB).get_subset(
        asset_selection=set(request.asset_selection or ()),
        asset_check_selection=set(request.asset_check_keys or ()),
    ).execute_in_process(partition_key=request.partition_key, run_config=request.run_config,
                         tags=request.tags, instance=instance)

    cli_run = instance.get_run_records(dg.RunsFilter(tags={"vector_sync/trigger": "cli"}))[0]
    runs = [_what_the_run_did(instance, run_id) for run_id in (
        cli_run.dagster_run.run_id, launched.run_id, sensed.run_id)]
    expected_assets = {"source_snapshot", "changes_notes", "embeddings_notes", "qdrant_notes"}
    checks = {"changes_notes:mass_delete_guard", "qdrant_notes:failed_documents",
              "qdrant_notes:consistent_with_source", "qdrant_notes:vectors_match_config",
              "qdrant_notes:ledger_matches_qdrant"}
    for run in runs:  # only what "notes" feeds, and the same checks, all passed
        assert set(run["materialized"]) == expected_assets  # type: ignore[arg-type]
        assert run["checks"] == dict.fromkeys(checks, True)
    assert runs[0]["materialized"] == runs[1]["materialized"] == runs[2]["materialized"]
    assert {"updated", "points_written", "points_per_s", "duration_s"} <= \
        runs[1]["materialized"]["qdrant_notes"]  # type: ignore[index]
    assert "orchards" in project.points("notes")["a.md"][0]["text"]


def test_a_backfill_of_one_collection_over_every_partition_skips_sources_that_do_not_feed_it(
        project):
    _two_sources(project)
    defs = build_definitions(str(project.config_file))
    instance = dg.DagsterInstance.ephemeral()
    chain = {dg.AssetKey("changes_other_notes"), dg.AssetKey("embeddings_other_notes"),
             dg.AssetKey("qdrant_other_notes")}
    job = defs.resolve_implicit_global_asset_job_def()
    fed = job.get_subset(asset_selection={dg.AssetKey("source_snapshot"), *chain}) \
        .execute_in_process(partition_key="other", instance=instance)
    assert {e.asset_key for e in fed.get_asset_materialization_events()} >= chain
    for key in chain:  # each asset alone, for a source that does not feed it: nothing happens
        alone = job.get_subset(asset_selection={key}).execute_in_process(
            partition_key="notes", instance=instance)
        assert alone.success and not alone.get_asset_materialization_events()
    assert set(project.points("other_notes")) == {"x.md"}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    [failure] = [e for e in result.all_events if e.is_step_failure]
    return failure.step_failure_data.error.message  # type: ignore[union-attr]


def test_materializing_a_collections_group_without_the_snapshot_is_refused_not_synced_stale(
        project):
    project.note("a.md", "# Apples\n\nApples grow on trees.\n")
    defs = build_definitions(str(project.config_file))
    instance = dg.DagsterInstance.ephemeral()
    assert defs.resolve_job_def(SYNC_JOB).execute_in_process(
        partition_key="notes", instance=instance).success
    project.note("a.md", "# Apples\n\nApples grow on trees, in orchards.\n")

    # "Materialize all" on the collection's group: the UI runs Dagster's asset job with the
    # group's selection, which holds the chain but not source_snapshot (group `sources`)
    every_asset = defs.resolve_implicit_global_asset_job_def()
    group = dg.AssetSelection.groups("notes").resolve(defs.resolve_asset_graph())
    assert dg.AssetKey("source_snapshot") not in group
    stale = every_asset.get_subset(asset_selection=group).execute_in_process(
        partition_key="notes", instance=instance, raise_on_error=False)
    assert not stale.success
    message = _failure(stale)
    assert "changes_notes did not run" in message
    assert "launch the `sync` job for partition notes" in message
    assert not stale.get_asset_materialization_events()  # nothing diffed, nothing applied
    assert "orchards" not in project.points()["a.md"][0]["text"]
    # the Qdrant asset materialized alone would apply the last run's change set: refused too
    alone = every_asset.get_subset(asset_selection={dg.AssetKey("qdrant_notes")}) \
        .execute_in_process(partition_key="notes", instance=instance, raise_on_error=False)
    assert not alone.success and "qdrant_notes did not run" in _failure(alone)

    # the snapshot selected with the chain: a correct sync, tagged as the UI's
    fresh = every_asset.get_subset(
        asset_selection={*group, dg.AssetKey("source_snapshot")}).execute_in_process(
        partition_key="notes", instance=instance)
    assert fresh.success
    applied = [e.materialization.metadata for e in  # type: ignore[union-attr]
               fresh.get_asset_materialization_events() if e.asset_key.path == ["qdrant_notes"]]
    assert applied[0]["updated"].value == 1
    assert "orchards" in project.points()["a.md"][0]["text"]
    tags = instance.get_run_by_id(fresh.run_id).tags  # type: ignore[union-attr]
    assert (tags["vector_sync/source"], tags["vector_sync/trigger"]) == ("notes", "ui")


def test_a_run_re_executed_from_its_failed_diff_uses_the_snapshot_of_the_run_it_re_executes(
        project):
    from vector_sync.cli.runner import reconstructable_sync

    project.note("a.md", "# Apples\n\nApples grow on trees.\n")
    # the change set cannot be written (a directory where its file goes): the diff fails
    # after the snapshot succeeded
    blocked = project.root / "state" / "changes" / "notes" / "notes.parquet"
    (blocked / "in_the_way").mkdir(parents=True)
    job = reconstructable_sync(str(project.config_file), "notes")
    with dg.instance_for_test() as instance:
        with dg.execute_job(job, instance=instance, tags={"dagster/partition": "notes"},
                            raise_on_error=False) as failed:
            assert not failed.success
            assert {event.step_key for event in instance.all_logs(
                failed.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)} == {"changes_notes"}
        (blocked / "in_the_way").rmdir()
        blocked.rmdir()  # fixed: "re-execute from failure" takes the failed steps on
        with dg.execute_job(job, instance=instance, tags=failed.dagster_run.tags,
                            reexecution_options=dg.ReexecutionOptions.from_failure(
                                failed.run_id, instance)) as retried:
            assert retried.success
            rerun = {event.step_key for event in instance.all_logs(
                retried.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
    assert "source_snapshot" not in rerun and "changes_notes" in rerun
    assert set(project.points()) == {"a.md"}
