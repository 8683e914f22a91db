"""The `migrate` operator job and the cleanup schedule, as someone at the launchpad uses
them: start builds the new generation (progress in the run's log and on a
`generation_<collection>` materialization), switch moves the pointer after the gate and
reports its figures, a refused switch fails the run with the reason, and the schedule runs
the cleanup."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from vector_sync.definitions import build_definitions
from vector_sync.defs.migration import CLEANUP_SCHEDULE, MIGRATE_JOB, MIGRATE_OP
from vector_sync_tests.support import Project, long_note


def _migrate(project: Project, instance: dg.DagsterInstance, action: str,
             collection: str = "notes") -> dg.ExecuteInProcessResult:
    job = build_definitions(str(project.config_file)).resolve_job_def(MIGRATE_JOB)
    return job.execute_in_process(
        run_config={"ops": {MIGRATE_OP: {"config": {"action": action,
                                                   "collection": collection}}}},
        instance=instance, raise_on_error=False)


def _generation(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey("generation_notes")]
    return {k: v.value for k, v in
            event.materialization.metadata.items()}  # type: ignore[union-attr]


def test_start_and_switch_from_the_launchpad(project: Project,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        project.note(f"long{i}.md", long_note(f"Long {i}", sections=2))
    assert project.cli("sync", capsys=capsys)[0] == 0
    project.config["collections"]["notes"]["chunking"] = {"max_tokens": 128,
                                                          "overlap_tokens": 16}
    project.save()
    instance = dg.DagsterInstance.ephemeral()

    started = _migrate(project, instance, "start")
    assert started.success
    building = _generation(started)
    assert building["state"] == "ready" and building["building"].startswith("notes__")
    assert (building["documents_done"], building["documents_total"]) == (3, 3)
    logs = [e.message for e in instance.all_logs(started.run_id) if e.message]
    assert any("chunks/s, ETA" in line for line in logs)

    switched = _migrate(project, instance, "switch")
    assert switched.success
    served = _generation(switched)
    assert served["serving"] == building["building"] and served["state"] == "serving"
    assert served["gate_overlap"] >= 0.5 and served["gate_canaries"] > 0

    refused = _migrate(project, instance, "switch")  # nothing being built: nothing to do
    assert refused.success and not refused.get_asset_materialization_events()
    rolled = _migrate(project, instance, "rollback")
    assert rolled.success and _generation(rolled)["state"] == "pending"
    unknown = _migrate(project, instance, "start", collection="nope")
    assert not unknown.success


def test_the_cleanup_schedule_runs_the_cleanup_action(project: Project) -> None:
    defs = build_definitions(str(project.config_file))
    schedule = defs.resolve_schedule_def(CLEANUP_SCHEDULE)
    assert schedule.job_name == MIGRATE_JOB
    with dg.build_schedule_context() as context:
        [request] = list(schedule.evaluate_tick(context).run_requests or [])
    assert request.run_config["ops"][MIGRATE_OP]["config"]["action"] == "cleanup"
