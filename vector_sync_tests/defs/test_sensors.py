"""Sensors request one sync run per changed source and per due retry, skip otherwise, and
never pile a run on top of one already queued or running."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from vector_sync import definitions
from vector_sync.config import load_config
from vector_sync.core.ledger import Ledger, LedgerRow
from vector_sync.defs import sensors
from vector_sync_tests.support import Project

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    moment = [T0]
    monkeypatch.setattr(sensors, "now", lambda: moment[0])
    return moment


def _defs(project: Project) -> dg.Definitions:
    return definitions.build_definitions(str(project.config_file))


def _tick(project: Project, instance: dg.DagsterInstance, name: str,
          cursor: str | None = None) -> dg.SensorResult | dg.SkipReason:
    defs = _defs(project)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return defs.resolve_sensor_def(name)(context)


def _requests(result: dg.SensorResult | dg.SkipReason) -> list[dg.RunRequest]:
    assert isinstance(result, dg.SensorResult), result
    return list(result.run_requests or [])


def _touch(path: os.PathLike[str], seconds_later: int) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds_later * 1_000_000_000))


def _start_sync(instance: dg.DagsterInstance, source: str) -> None:
    """Record a sync run of `source` as started, as the daemon would while it runs."""
    instance.add_run(dg.DagsterRun(job_name=sensors.SYNC_JOB,
                                   status=dg.DagsterRunStatus.STARTED,
                                   tags={"dagster/partition": source}))


def _skip_message(result: dg.SensorResult | dg.SkipReason) -> str | None:
    """A skipped tick's message (None if runs were requested); a skip may move the cursor."""
    if isinstance(result, dg.SkipReason):
        return result.skip_message or ""
    assert not result.run_requests, result.run_requests
    return result.skip_reason.skip_message if result.skip_reason else ""


def test_sensors_are_defined_on_by_default_for_the_sync_job(project):
    project.config["sensors"] = {"interval_s": 5}
    project.save()
    defs = _defs(project)
    dg.Definitions.validate_loadable(defs)
    for name, interval in (("watch_notes", 5), ("retry_failed", sensors.RETRY_INTERVAL_S)):
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.minimum_interval_seconds == interval
        assert sensor.job_name == sensors.SYNC_JOB


def test_a_touched_note_requests_one_sync_then_nothing_until_the_next_change(project, instance):
    note = project.note("a.md", "# Apples\n")
    project.note("sub/b.md", "# Bananas\n")
    result = _tick(project, instance, "watch_notes")
    first = _requests(result)
    assert [(r.partition_key, r.tags["vector_sync/trigger"]) for r in first] == [("notes", "watch")]
    cursor = result.cursor  # type: ignore[union-attr]
    assert cursor is not None and json.loads(cursor)["state"]["fingerprint"]

    # the cursor survives into a fresh context: nothing changed, nothing requested
    assert "unchanged" in (_skip_message(_tick(project, instance, "watch_notes", cursor)) or "")

    _touch(note, 5)
    touched = _requests(_tick(project, instance, "watch_notes", cursor))
    assert len(touched) == 1 and touched[0].partition_key == "notes"
    assert touched[0].run_key and touched[0].run_key.startswith("notes:")
    assert touched[0].run_key != first[0].run_key


def test_a_tree_renamed_back_to_an_earlier_state_is_still_requested(project, instance, clock):
    note = project.note("a.md", "# Apples\n")
    first = _tick(project, instance, "watch_notes")
    clock[0] = T0 + timedelta(seconds=15)
    note.rename(project.vault / "b.md")
    second = _tick(project, instance, "watch_notes", first.cursor)  # type: ignore[union-attr]
    clock[0] = T0 + timedelta(seconds=30)
    (project.vault / "b.md").rename(note)  # the same (path, mtime, size) as the first tick
    third = _tick(project, instance, "watch_notes", second.cursor)  # type: ignore[union-attr]
    keys = [_requests(r)[0].run_key for r in (first, second, third)]
    assert len(set(keys)) == 3  # a repeated run key would make Dagster drop the request


def test_a_change_during_a_sync_is_requested_after_it(project, instance):
    project.note("a.md", "# Apples\n")
    cursor = _tick(project, instance, "watch_notes").cursor  # type: ignore[union-attr]
    project.note("b.md", "# Bananas\n")
    _start_sync(instance, "other")  # another source's run does not hold this one back
    _start_sync(instance, "notes")
    busy = _tick(project, instance, "watch_notes", cursor)
    assert isinstance(busy, dg.SkipReason) and "queued or running" in (busy.skip_message or "")

    for record in instance.get_run_records(dg.RunsFilter(job_name=sensors.SYNC_JOB)):
        instance.report_run_canceled(record.dagster_run)
    assert len(_requests(_tick(project, instance, "watch_notes", cursor))) == 1


def test_a_quiet_source_is_resynced_every_resync_every_s(project, instance, clock):
    project.config["sensors"] = {"resync_every_s": 600}
    project.save()
    project.note("a.md", "# Apples\n")
    cursor = _tick(project, instance, "watch_notes").cursor  # type: ignore[union-attr]
    clock[0] = T0 + timedelta(seconds=599)
    quiet = _tick(project, instance, "watch_notes", cursor)
    assert "unchanged" in (_skip_message(quiet) or "")
    clock[0] = T0 + timedelta(seconds=600)
    resync = _requests(_tick(project, instance, "watch_notes", cursor))
    assert [(r.partition_key, r.tags["vector_sync/trigger"]) for r in resync] == [
        ("notes", "resync")]


def test_a_missing_vault_is_skipped_with_the_reason_and_the_cursor_kept(project, instance):
    project.note("a.md", "# Apples\n")
    cursor = _tick(project, instance, "watch_notes").cursor  # type: ignore[union-attr]
    project.vault.rename(project.root / "unmounted")
    result = _tick(project, instance, "watch_notes", cursor)
    assert isinstance(result, dg.SkipReason) and "does not exist" in (result.skip_message or "")


# --- retry ---------------------------------------------------------------------------------


def _failed_row(project: Project, doc_id: str, next_attempt_at: datetime) -> None:
    config = load_config(project.config_file)
    with Ledger(config.state.ledger_sqlalchemy_url()) as ledger:
        ledger.upsert([LedgerRow(
            source="notes", collection="notes", doc_id=doc_id, status="failed",
            source_version="1:1", attempts=1, last_error="qdrant down", error_code="qdrant",
            last_attempt_at=next_attempt_at - timedelta(minutes=1),
            next_attempt_at=next_attempt_at)])


def test_no_failed_rows_no_retry(project, instance, clock):
    result = _tick(project, instance, "retry_failed")
    assert isinstance(result, dg.SkipReason) and "no failed rows" in (result.skip_message or "")


def test_a_due_failed_row_requests_one_sync_of_its_source(project, instance, clock):
    _failed_row(project, "a.md", T0 - timedelta(seconds=1))
    _failed_row(project, "b.md", T0 - timedelta(minutes=2))
    requests = _requests(_tick(project, instance, "retry_failed"))
    assert [(r.partition_key, r.tags["vector_sync/trigger"]) for r in requests] == [
        ("notes", "retry")]
    assert requests[0].run_key == f"retry:notes:{(T0 - timedelta(seconds=1)).isoformat()}"
    # a targeted run: only the due documents are read and re-applied
    assert requests[0].run_config == {"ops": {"source_snapshot": {"config": {"retry_due": True}}}}


def test_a_row_not_yet_due_is_retried_once_the_clock_passes_it(project, instance, clock):
    _failed_row(project, "a.md", T0 + timedelta(minutes=1))
    assert isinstance(_tick(project, instance, "retry_failed"), dg.SkipReason)
    clock[0] = T0 + timedelta(minutes=1, seconds=1)
    assert [r.partition_key for r in _requests(_tick(project, instance, "retry_failed"))] == [
        "notes"]


def test_no_retry_while_a_sync_of_the_source_is_in_flight(project, instance, clock):
    _failed_row(project, "a.md", T0 - timedelta(seconds=1))
    _start_sync(instance, "notes")
    result = _tick(project, instance, "retry_failed")
    assert isinstance(result, dg.SkipReason) and "notes" in (result.skip_message or "")


# --- git -----------------------------------------------------------------------------------


def test_the_git_watcher_requests_a_sync_per_new_commit_not_per_uncommitted_edit(
        project, instance, clock, tmp_path):
    from vector_sync_tests.support.git_repo import GitRepo

    repo = GitRepo(tmp_path / "docs")
    repo.commit(files={"a.md": "# A\n"})
    project.config["sources"]["docs"] = {"kind": "git", "repo": str(repo.path),
                                         "branch": "main", "collections": ["notes"]}
    project.save()
    first = _tick(project, instance, "watch_docs")
    assert [(r.partition_key, r.tags["vector_sync/trigger"]) for r in _requests(first)] == [
        ("docs", "watch")]
    cursor = first.cursor  # type: ignore[union-attr]

    repo.write("a.md", "# A, edited but not committed\n")
    assert "is still at" in (_skip_message(_tick(project, instance, "watch_docs", cursor)) or "")
    head = repo.commit("edit a")
    after = _tick(project, instance, "watch_docs", cursor)
    assert len(_requests(after)) == 1
    assert json.loads(after.cursor)["state"]["head"] == head  # type: ignore[union-attr]


# --- a requested run that failed -----------------------------------------------------------


def _execute(project: Project, instance: dg.DagsterInstance, request: dg.RunRequest,
             typo: bool = False) -> dg.ExecuteInProcessResult:
    """Run what the sensor requested, as the daemon would launch it: the sync job, the
    request's selection, partition, config and tags, recorded in `instance`. `typo`: the
    config file has a typo while the run runs (it reads the file when it starts); the
    typo is fixed afterwards."""
    job = _defs(project).resolve_job_def(sensors.SYNC_JOB).get_subset(
        asset_selection=set(request.asset_selection or ()),
        asset_check_selection=set(request.asset_check_keys or ()))
    good = project.config_file.read_text()
    if typo:
        project.config_file.write_text(good + "sensers: {interval_s: 5}\n")
    try:
        return _launch(job, instance, request)
    finally:
        project.config_file.write_text(good)


def _launch(job: dg.JobDefinition, instance: dg.DagsterInstance,
            request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return job.execute_in_process(
        partition_key=request.partition_key, run_config=request.run_config, instance=instance,
        tags={**request.tags, "dagster/sensor_name": "watch_notes"}, raise_on_error=False)


def test_a_change_whose_run_failed_is_requested_again_with_backoff_until_a_run_succeeds(
        project, instance, clock):
    project.note("a.md", "# Apples\n\nApples grow on trees.\n")
    first = _tick(project, instance, "watch_notes")
    [request] = _requests(first)
    # the config has a typo when the run starts: the run fails, nothing is synced; the user
    # fixes the typo afterwards (the vault does not change)
    assert not _execute(project, instance, request, typo=True).success

    cursor = first.cursor  # type: ignore[union-attr]
    waiting = _tick(project, instance, "watch_notes", cursor)
    assert re.fullmatch(r"last run of notes failed at \d\d:\d\d:\d\d UTC; retrying in 40 s",
                        _skip_message(waiting) or "")
    clock[0] = T0 + timedelta(seconds=39)
    later = _tick(project, instance, "watch_notes", waiting.cursor)  # type: ignore[union-attr]
    assert (_skip_message(later) or "").endswith("retrying in 1 s")
    clock[0] = T0 + timedelta(seconds=40)
    again = _tick(project, instance, "watch_notes", later.cursor)  # type: ignore[union-attr]
    [rerun] = _requests(again)
    assert (rerun.partition_key, rerun.tags["vector_sync/trigger"]) == ("notes", "rerun")
    assert rerun.run_key != request.run_key

    # broken again: the next request waits twice as long
    assert not _execute(project, instance, rerun, typo=True).success
    clock[0] = T0 + timedelta(seconds=50)
    doubled = _tick(project, instance, "watch_notes", again.cursor)  # type: ignore[union-attr]
    assert (_skip_message(doubled) or "").endswith("retrying in 80 s")
    clock[0] = T0 + timedelta(seconds=130)
    third = _tick(project, instance, "watch_notes", doubled.cursor)  # type: ignore[union-attr]
    [last] = _requests(third)
    assert not project.points()  # nothing synced so far

    assert _execute(project, instance, last).success
    assert set(project.points()) == {"a.md"}
    clock[0] = T0 + timedelta(seconds=500)  # long past any backoff: nothing more to ask
    settled = _tick(project, instance, "watch_notes", third.cursor)  # type: ignore[union-attr]
    assert "unchanged" in (_skip_message(settled) or "")


def test_a_canceled_run_is_requested_again_and_a_success_by_anyone_settles_it(
        project, instance, clock):
    project.note("a.md", "# Apples\n\nApples grow on trees.\n")
    first = _tick(project, instance, "watch_notes")
    [request] = _requests(first)
    run = instance.add_run(dg.DagsterRun(job_name=sensors.SYNC_JOB, tags={
        **request.tags, "dagster/partition": "notes"}, status=dg.DagsterRunStatus.STARTED))
    instance.report_run_canceled(run)  # stopped from the UI before it synced anything
    canceled = _tick(project, instance, "watch_notes", first.cursor)  # type: ignore[union-attr]
    assert "last run of notes was canceled at" in (_skip_message(canceled) or "")

    # a sync run launched by hand succeeds meanwhile: the change is synced, nothing to redo
    instance.add_run(dg.DagsterRun(job_name=sensors.SYNC_JOB, tags={"dagster/partition": "notes"},
                                   status=dg.DagsterRunStatus.SUCCESS))
    clock[0] = T0 + timedelta(seconds=60)
    done = _tick(project, instance, "watch_notes", canceled.cursor)  # type: ignore[union-attr]
    assert "unchanged" in (_skip_message(done) or "")
