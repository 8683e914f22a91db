"""Sensors: request `sync` runs for sources that changed and for failed rows now due.

Sensors stay cheap (DESIGN.md §2): a watcher takes one cheap look at its source (a stat
fingerprint of a vault, a MongoDB change stream, a Git branch head), the retry sensor only
queries the ledger. None reads a document or opens Qdrant storage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from vector_sync.config import MarkdownSourceConfig, SourceConfig, VectorSyncConfig
from vector_sync.core.documents import SourceEntry
from vector_sync.core.hashing import digest, stable_json
from vector_sync.core.ledger import Ledger, LedgerUnavailable
from vector_sync.defs.jobs import SYNC_JOB
from vector_sync.sources.base import ChangeCheck, SourceUnavailable

RETRY_INTERVAL_S = 30
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
             dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
RETRY_RUN_CONFIG = {"ops": {"source_snapshot": {"config": {"retry_due": True}}}}

Look = Callable[[dict[str, Any] | None], ChangeCheck]  # state kept last time -> what changed


def now() -> datetime:
    """The sensors' clock; tests replace it."""
    return datetime.now(UTC)


def fingerprint(entries: Iterable[SourceEntry]) -> str:
    """blake2b over the sorted (doc_id, version) pairs: changes when any note is added,
    removed, renamed or touched."""
    hasher = hashlib.blake2b(digest_size=32)
    for doc_id, version in sorted((e.doc_id, e.version) for e in entries):
        hasher.update(f"{doc_id}\0{version}\n".encode("utf-8", "surrogateescape"))
    return hasher.hexdigest()


def run_in_flight(instance: dg.DagsterInstance, source: str) -> bool:
    """A sync run of `source` is queued or running: requesting another would only pile up."""
    return bool(instance.get_run_records(
        dg.RunsFilter(job_name=SYNC_JOB, statuses=IN_FLIGHT,
                      tags={"dagster/partition": source}),
        limit=1))


def _tags(source: str, trigger: str) -> dict[str, str]:
    return {"vector_sync/source": source, "vector_sync/trigger": trigger}


def _cursor(text: str | None) -> dict[str, Any]:
    """{"state": the look's own state, "requested_at": ISO time of the last request}; a
    cursor that is not ours (an older format) starts over."""
    try:
        cursor = json.loads(text) if text else {}
    except ValueError:
        return {}
    return cursor if isinstance(cursor, dict) and "state" in cursor else {}


def _resync_due(cursor: dict[str, Any], moment: datetime, every_s: int) -> bool:
    """No run requested for `every_s` (or ever): sync anyway. That heals what a look cannot
    see (an edit that kept a file's mtime, a run that failed) and keeps freshness honest."""
    requested = cursor.get("requested_at")
    return requested is None or moment - datetime.fromisoformat(requested) >= timedelta(
        seconds=every_s)


def watch_sensor(source: str, description: str, look: Look,
                 settings: VectorSyncConfig) -> dg.SensorDefinition:
    """`watch_<source>`: one run request when `look` sees a change (or a resync is due),
    never while a sync of the source is queued or running."""
    every_s = settings.sensors.resync_every_s

    @dg.sensor(name=f"watch_{source}", job_name=SYNC_JOB,
               minimum_interval_seconds=settings.sensors.interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING, description=description)
    def watch(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        cursor = _cursor(context.cursor)
        try:
            check = look(cursor.get("state"))
        except SourceUnavailable as error:
            return dg.SkipReason(str(error))  # cursor kept: looked at again next tick
        moment = now()
        if not check.changed and not _resync_due(cursor, moment, every_s):
            # the state still moves on (a fresh change-stream token stays in the oplog)
            return dg.SensorResult(skip_reason=check.summary,
                                   cursor=stable_json({**cursor, "state": check.new_state}))
        if run_in_flight(context.instance, source):
            # cursor kept from before this look: the change is requested once the sync ends
            return dg.SkipReason(f"{check.summary}; a sync of {source} is queued or running")
        trigger = "watch" if check.changed else "resync"
        # deterministic: the same look from the same cursor asks for the same run
        run_key = f"{source}:{trigger}:{digest(stable_json([context.cursor, check.new_state]))}"
        new_cursor = stable_json({"state": check.new_state, "requested_at": moment.isoformat()})
        context.log.info("%s: %s", source, check.summary if check.changed else
                         f"no change seen for {every_s} s: periodic resync")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=run_key[:80], partition_key=source,
                                        tags=_tags(source, trigger))],
            cursor=new_cursor)

    return watch


def markdown_look(source: str, config: MarkdownSourceConfig) -> Look:
    from vector_sync.sources.markdown import MarkdownSource

    def look(state: dict[str, Any] | None) -> ChangeCheck:
        current = fingerprint(MarkdownSource(source, config).scan())
        changed = (state or {}).get("fingerprint") != current
        return ChangeCheck(changed, f"notes under {config.path} " + (
            "were added, removed or modified" if changed else "unchanged"),
            {"fingerprint": current})

    return look


def look_for(source: str, config: SourceConfig) -> tuple[Look, str]:
    """The cheap look of a source kind, and a description for the UI."""
    if config.kind == "mongodb":
        from vector_sync.sources.mongo_watch import poll_changes

        return (lambda state: poll_changes(source, config, state),
                f"Requests a sync of {source} when documents of {config.database}."
                f"{config.collection} are inserted, updated, replaced or deleted (its change "
                "stream; a count and latest-update poll where the server has none).")
    if config.kind == "git":
        from vector_sync.sources.git import head_look, masked

        return (lambda state: head_look(source, config, state),
                f"Requests a sync of {source} when branch {config.branch} of "
                f"{masked(config.repo)} has a new head commit.")
    return (markdown_look(source, config),
            f"Requests a sync of {source} when a note under {config.path} is added, removed "
            "or modified (lists and stats files only).")


def retry_sensor(settings: VectorSyncConfig) -> dg.SensorDefinition:
    @dg.sensor(
        name="retry_failed",
        job_name=SYNC_JOB,
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
            with Ledger(settings.state.ledger_sqlalchemy_url()) as ledger:
                due = {source: ledger.due_for_retry(moment, source)
                       for source in settings.sources}
        except LedgerUnavailable as error:
            return dg.SkipReason(str(error))
        for source, rows in due.items():
            if not rows:
                continue
            if run_in_flight(context.instance, source):
                skipped.append(source)
                continue
            latest = max(row.next_attempt_at for row in rows if row.next_attempt_at)
            requests.append(dg.RunRequest(
                run_key=f"retry:{source}:{latest.isoformat()}", partition_key=source,
                run_config=RETRY_RUN_CONFIG, tags=_tags(source, "retry")))
            context.log.info("%s: %d failed document(s) due for retry", source, len(rows))
        if requests:
            return dg.SensorResult(run_requests=requests)
        if skipped:
            return dg.SkipReason(f"failed rows due, but a sync is in flight: {', '.join(skipped)}")
        return dg.SkipReason("no failed rows due for retry")

    return retry_failed


def build_sensors(settings: VectorSyncConfig) -> list[dg.SensorDefinition]:
    watchers = [watch_sensor(name, description, look, settings)
                for name, config in settings.sources.items()
                for look, description in [look_for(name, config)]]
    return [*watchers, retry_sensor(settings)]
