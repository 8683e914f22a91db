"""Sensors: request sync runs for sources that changed and for failed rows now due.

Sensors stay cheap: a watcher takes the cheap look its source kind offers (a stat
fingerprint of a vault, a MongoDB change stream, a Git branch head) and asks the Dagster
instance how its last run ended; the retry sensor only queries the ledger. None reads a
document or opens Qdrant storage. Every run they request selects one source's snapshot and
the chains of the collections it feeds.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from vector_sync.core.hashing import digest, stable_json
from vector_sync.core.ledger import LedgerUnavailable, open_ledger
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.source import SourceConfig, SourceUnavailable
from vector_sync.defs.jobs import (
    PLAIN,
    SYNC_JOB,
    TAG_DOCUMENTS,
    TAG_SOURCE,
    TAG_TRIGGER,
    Names,
    sync_assets,
    sync_checks,
)

RETRY_INTERVAL_S = 30
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
             dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def retry_run_config(names: Names = PLAIN) -> dict[str, Any]:
    """What a retry request runs: only the failed rows whose backoff has expired."""
    return {"ops": {names.op(names.snapshot): {"config": {"retry_due": True}}}}


RETRY_RUN_CONFIG = retry_run_config()
# a watched change whose run failed or was canceled is requested again after 40 s, then
# 80, 160, and every 300 s while runs keep failing
RERUN_FIRST_S, RERUN_MAX_S = 40, 300
ENDED_BADLY = {dg.DagsterRunStatus.FAILURE: "failed", dg.DagsterRunStatus.CANCELED: "was canceled"}
RUNS_LOOKED_AT = 20  # the newest sync runs of a source a tick reads to find how its own ended


def now() -> datetime:
    """The sensors' clock; tests replace it."""
    return datetime.now(UTC)


def _ours(run: dg.DagsterRun, names: Names) -> bool:
    """A run of these definitions: one of their jobs, or a selection holding their snapshot
    (the UI's Materialize, a backfill). Another configuration in the code location may have
    a source of the same name: its runs are not this one's."""
    return run.job_name in names.jobs or names.snapshot in (run.asset_selection or ())


def run_in_flight(instance: dg.DagsterInstance, source: str, names: Names = PLAIN) -> bool:
    """A run for `source` is queued or running (whichever job or UI action launched it):
    requesting another would only pile up."""
    return any(_ours(record.dagster_run, names) for record in instance.get_run_records(
        dg.RunsFilter(statuses=IN_FLIGHT, tags={"dagster/partition": source}),
        limit=RUNS_LOOKED_AT))


def sync_request(config: VectorSyncConfig, source: str, trigger: str, run_key: str,
                 run_config: dict[str, Any] | None = None,
                 names: Names = PLAIN) -> dg.RunRequest:
    """A run of the sync job for `source` that touches only what `source` feeds."""
    return dg.RunRequest(
        run_key=run_key[:80], partition_key=source, run_config=run_config or {},
        asset_selection=sync_assets(config, source, names),
        asset_check_keys=sync_checks(config, source, names),
        tags={TAG_SOURCE: source, TAG_TRIGGER: trigger})


def _cursor(text: str | None) -> dict[str, Any]:
    """{"state": the look's own state, "requested_at": ISO time of the last request, and
    while a request awaits a successful run: "after" (the newest sync run of the source
    when it was made: a run after it is the request's, or one that does its work),
    "failures" (how many such runs failed in a row), "retry_at" and "failed" (when to ask
    again, and what failed)}; a cursor that is not ours (an older format) starts over."""
    try:
        cursor = json.loads(text) if text else {}
    except ValueError:
        return {}
    return cursor if isinstance(cursor, dict) and "state" in cursor else {}


def _resync_due(cursor: dict[str, Any], moment: datetime, every_s: int) -> bool:
    """No run requested for `every_s` (or ever): sync anyway. That heals what a look may
    miss but the version hints catch (an in-place edit a count-and-latest poll cannot see),
    and keeps freshness honest. (An edit that kept a file's mtime and size is seen only by
    `sync --full`.)"""
    requested = cursor.get("requested_at")
    return requested is None or moment - datetime.fromisoformat(requested) >= timedelta(
        seconds=every_s)


def _sync_runs(source: str, names: Names) -> dg.RunsFilter:
    return dg.RunsFilter(job_name=names.job(SYNC_JOB), tags={"dagster/partition": source})


def _last_run_number(instance: dg.DagsterInstance, source: str, names: Names = PLAIN) -> int:
    """Where the history of `source`'s sync runs stands: runs made later have a higher
    number (their storage id)."""
    newest = instance.get_run_records(_sync_runs(source, names), limit=1)
    return newest[0].storage_id if newest else 0


def _newest_run(instance: dg.DagsterInstance, source: str, after: int,
                names: Names = PLAIN) -> dg.RunRecord | None:
    """The newest run of the sync job for `source` made after the run numbered `after`
    that syncs the whole source (a targeted run, e.g. a retry of failed rows, does not
    stand for a watched change)."""
    for record in instance.get_run_records(_sync_runs(source, names), limit=RUNS_LOOKED_AT):
        if record.storage_id <= after:
            break
        tags = record.dagster_run.tags
        if TAG_DOCUMENTS not in tags and tags.get(TAG_TRIGGER) != "retry":
            return record
    return None


def _follow_up(instance: dg.DagsterInstance, source: str, cursor: dict[str, Any],
               moment: datetime, names: Names = PLAIN) -> dict[str, Any]:
    """The cursor once the last request's run has ended: a success settles the request; a
    failure or a cancellation schedules the request again, later after each one in a row.
    A change counts as synced only once a run of the source succeeded after it."""
    if "after" not in cursor:  # nothing requested awaits its run
        return cursor
    record = _newest_run(instance, source, cursor["after"], names)
    if record is None:  # not launched yet, or no run of the sync job since the request
        return cursor
    status = record.dagster_run.status
    if status == dg.DagsterRunStatus.SUCCESS:
        return {key: cursor[key] for key in ("state", "requested_at") if key in cursor}
    if status not in ENDED_BADLY:  # still queued or running
        return cursor
    failures = cursor.get("failures", 0) + 1
    delay = min(RERUN_FIRST_S * 2 ** (failures - 1), RERUN_MAX_S)
    ended = datetime.fromtimestamp(record.end_time, UTC) if record.end_time else \
        record.update_timestamp
    return {**cursor, "after": record.storage_id, "failures": failures,
            "retry_at": (moment + timedelta(seconds=delay)).isoformat(),
            "failed": f"last run of {source} {ENDED_BADLY[status]} at {ended:%H:%M:%S} UTC"}


def watch_sensor(source: str, settings: VectorSyncConfig,
                 names: Names = PLAIN) -> dg.SensorDefinition:
    """`watch_<source>`: one run request when the source's look sees a change (or a resync
    is due), and again after a backoff while the runs it asked for fail; never while a run
    of the source is queued or running."""
    every_s = settings.sensors.resync_every_s
    source_config: SourceConfig = settings.sources[source]

    @dg.sensor(name=names.name(f"watch_{source}"), job_name=names.job(SYNC_JOB),
               minimum_interval_seconds=settings.sensors.interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Requests a sync of {source} when {source_config.where()} change, "
               f"and at least every {every_s} s; while its run fails or is canceled, again "
               f"after {RERUN_FIRST_S} s, doubling up to {RERUN_MAX_S} s.")
    def watch(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        cursor = _cursor(context.cursor)
        try:
            check = source_config.look(source, cursor.get("state"))
        except SourceUnavailable as error:
            return dg.SkipReason(str(error))  # cursor kept: looked at again next tick
        moment = now()
        cursor = _follow_up(context.instance, source, cursor, moment, names)
        retry_at = datetime.fromisoformat(cursor["retry_at"]) if "retry_at" in cursor else None
        rerun = retry_at is not None and moment >= retry_at
        if not check.changed and not rerun and not _resync_due(cursor, moment, every_s):
            # the state still moves on (a fresh change-stream token stays in the oplog)
            reason = check.summary if retry_at is None else f"{cursor['failed']}; retrying " \
                f"in {math.ceil((retry_at - moment).total_seconds())} s"
            return dg.SensorResult(skip_reason=reason,
                                   cursor=stable_json({**cursor, "state": check.new_state}))
        if run_in_flight(context.instance, source, names):
            # cursor kept from before this look: the change is requested once the run ends
            return dg.SkipReason(f"{check.summary}; a run of {source} is queued or running")
        trigger = "watch" if check.changed else "rerun" if rerun else "resync"
        # deterministic: the same look from the same cursor asks for the same run
        run_key = f"{source}:{trigger}:{digest(stable_json([context.cursor, check.new_state]))}"
        context.log.info("%s: %s", source, {
            "watch": check.summary, "rerun": f"{cursor.get('failed')}: requested again",
            "resync": f"no change seen for {every_s} s: periodic resync"}[trigger])
        return dg.SensorResult(
            run_requests=[sync_request(settings, source, trigger, run_key, names=names)],
            # until a run succeeds after this request, the failures in a row are kept
            cursor=stable_json({"state": check.new_state, "requested_at": moment.isoformat(),
                                "after": _last_run_number(context.instance, source, names),
                                "failures": cursor.get("failures", 0)}))

    return watch


def retry_sensor(settings: VectorSyncConfig, names: Names = PLAIN) -> dg.SensorDefinition:
    @dg.sensor(
        name=names.name("retry_failed"),
        job_name=names.job(SYNC_JOB),
        minimum_interval_seconds=RETRY_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Re-applies failed documents whose backoff has expired (only those; "
        f"their stored embeddings are reused). After {settings.retry.max_retries} attempts a "
        "document stays failed: see `vector-sync status`.",
    )
    def retry_failed(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        moment = now()
        requests, skipped = [], []
        try:
            with open_ledger(settings.state) as ledger:
                due = {source: ledger.due_for_retry(moment, source)
                       for source in settings.sources}
        except LedgerUnavailable as error:
            return dg.SkipReason(str(error))
        for source, rows in due.items():
            if not rows:
                continue
            if run_in_flight(context.instance, source, names):
                skipped.append(source)
                continue
            latest = max(row.next_attempt_at for row in rows if row.next_attempt_at)
            requests.append(sync_request(settings, source, "retry",
                                         f"retry:{source}:{latest.isoformat()}",
                                         retry_run_config(names), names))
            context.log.info("%s: %d failed document(s) due for retry", source, len(rows))
        if requests:
            return dg.SensorResult(run_requests=requests)
        if skipped:
            return dg.SkipReason(f"failed rows due, but a run is in flight: {', '.join(skipped)}")
        return dg.SkipReason("no failed rows due for retry")

    return retry_failed


def build_sensors(settings: VectorSyncConfig,
                  names: Names = PLAIN) -> list[dg.SensorDefinition]:
    return [*(watch_sensor(name, settings, names) for name in settings.sources),
            retry_sensor(settings, names)]
