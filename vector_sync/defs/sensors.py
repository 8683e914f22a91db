"""Sensors: request `sync` runs for sources that changed and for failed rows now due.

Sensors stay cheap (DESIGN.md §2): a markdown watcher only lists and stats the vault, the
retry sensor only queries the ledger. Neither reads a document nor opens Qdrant storage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime

import dagster as dg

from vector_sync.config import MarkdownSourceConfig, VectorSyncConfig
from vector_sync.core.documents import SourceEntry
from vector_sync.core.ledger import Ledger, LedgerUnavailable
from vector_sync.defs.jobs import SYNC_JOB
from vector_sync.sources.base import SourceUnavailable
from vector_sync.sources.markdown import MarkdownSource

WATCH_INTERVAL_S = 15
RETRY_INTERVAL_S = 30
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
             dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def now() -> datetime:
    """The retry sensor's clock; tests replace it."""
    return datetime.now(UTC)


def fingerprint(entries: Iterable[SourceEntry]) -> str:
    """blake2b over the sorted (doc_id, version) pairs: changes when any note is added,
    removed, renamed or touched."""
    digest = hashlib.blake2b(digest_size=32)
    for doc_id, version in sorted((e.doc_id, e.version) for e in entries):
        digest.update(f"{doc_id}\0{version}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def run_in_flight(instance: dg.DagsterInstance, source: str) -> bool:
    """A sync run of `source` is queued or running: requesting another would only pile up."""
    return bool(instance.get_run_records(
        dg.RunsFilter(job_name=SYNC_JOB, statuses=IN_FLIGHT,
                      tags={"dagster/partition": source}),
        limit=1))


def _tags(source: str, trigger: str) -> dict[str, str]:
    return {"vector_sync/source": source, "vector_sync/trigger": trigger}


def watch_sensor(source: str, config: MarkdownSourceConfig) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"watch_{source}",
        job_name=SYNC_JOB,
        minimum_interval_seconds=WATCH_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Requests a sync of {source} when a note under {config.path} is added, "
        "removed or modified (lists and stats files only).",
    )
    def watch(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        previous = json.loads(context.cursor).get("fingerprint") if context.cursor else None
        try:
            current = fingerprint(MarkdownSource(source, config).scan())
        except SourceUnavailable as error:
            return dg.SkipReason(str(error))
        if current == previous:
            return dg.SkipReason(f"no change in {source}")
        if run_in_flight(context.instance, source):
            # cursor kept: the change is requested once the running sync has finished
            return dg.SkipReason(f"{source} changed, but a sync of it is queued or running")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{source}:{current[:16]}",
                                        partition_key=source, tags=_tags(source, "watch"))],
            cursor=json.dumps({"fingerprint": current}),
        )

    return watch


def retry_sensor(config: VectorSyncConfig) -> dg.SensorDefinition:
    @dg.sensor(
        name="retry_failed",
        job_name=SYNC_JOB,
        minimum_interval_seconds=RETRY_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests a sync of each source with failed rows whose backoff has expired.",
    )
    def retry_failed(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        moment = now()
        requests, skipped = [], []
        try:
            with Ledger(config.state.ledger_sqlalchemy_url()) as ledger:
                due = {source: ledger.due_for_retry(moment, source) for source in config.sources}
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
                tags=_tags(source, "retry")))
        if requests:
            return dg.SensorResult(run_requests=requests)
        if skipped:
            return dg.SkipReason(f"failed rows due, but a sync is in flight: {', '.join(skipped)}")
        return dg.SkipReason("no failed rows due for retry")

    return retry_failed


def build_sensors(config: VectorSyncConfig) -> list[dg.SensorDefinition]:
    watchers = [watch_sensor(name, source) for name, source in config.sources.items()
                if isinstance(source, MarkdownSourceConfig)]
    return [*watchers, retry_sensor(config)]
