"""Sync events in Dagster: the `events_delivered` check on every `qdrant_<collection>` asset
(WARN: events its sinks have not taken yet, per sink, and the oldest one's age), the
`events_drain` sensor that delivers what a sync left in the outbox (a sink was down), and the
run-status sensors that record how a run ended (`sync.finished`, `guard.tripped`,
`collection.inconsistent`, `collection.repaired`, and the figures the metrics read). The CLI
records its own in-process runs through `record_finished_run` too; a run recorded twice
changes nothing.

Only a config with `events.sinks` gets these: without sinks, the figures of the CLI's own
runs are still recorded (by the CLI).
"""


import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from vector_sync.core.events import outbox
from vector_sync.core.events.publisher import deliver_events
from vector_sync.core.events.runs import Finding, FinishedRun, record_run
from vector_sync.core.ledger import LedgerUnavailable, open_ledger
from vector_sync.core.pipeline.rows import OUTCOMES
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.defs.assets import resource
from vector_sync.defs.jobs import (
    EVENTS_DELIVERED,
    GUARD,
    PLAIN,
    TAG_SOURCE,
    TAG_TRIGGER,
    VERIFY_CHECKS,
    Names,
)

log = logging.getLogger(__name__)
CHECK = EVENTS_DELIVERED
CONSISTENT = VERIFY_CHECKS[0]
PARTITION_TAG = "dagster/partition"


def _value(metadata: dict[str, Any], key: str, default: Any = 0) -> Any:
    value = metadata.get(key)
    return getattr(value, "value", value) if value is not None else default


def finished_run(config: VectorSyncConfig, events: Iterable[dg.DagsterEvent], run_id: str,
                 tags: dict[str, str], success: bool, duration_s: float, error: str | None,
                 names: Names = PLAIN) -> FinishedRun | None:
    """What a run did, from its event log; None for a run that wrote or checked none of
    this config's collections."""
    stages = {names.asset(stage, c): (stage, c) for c in config.collections
              for stage in ("qdrant", "embeddings")}
    run = FinishedRun(source=tags.get(TAG_SOURCE) or tags.get(PARTITION_TAG) or "",
                      run_id=run_id, trigger=tags.get(TAG_TRIGGER, "operator"),
                      success=success, duration_s=duration_s, error=error,
                      repaired=tags.get(TAG_TRIGGER) == "repair")  # the CLI's repair
    ours = False
    embedded: dict[str, dict[str, int]] = {}
    for event in events:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
            if materialization.asset_key == names.prepare_repair:
                run.repaired = True
            found = stages.get(materialization.asset_key)
            if found is None:
                continue
            ours = True
            stage, collection = found
            metadata = dict(materialization.metadata)
            if stage == "qdrant":
                run.collections[collection] = {
                    **{k: int(_value(metadata, k)) for k in OUTCOMES},
                    "points_written": int(_value(metadata, "points_written")),
                    "points_deleted": int(_value(metadata, "points_deleted"))}
            else:
                embedded[collection] = {k: int(_value(metadata, k))
                                        for k in ("chunks_embedded", "chunks_reused")}
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            checked = _collection_of(config, evaluation.asset_key, names)
            if checked is None:
                continue
            ours = True
            if evaluation.check_name == GUARD and not evaluation.passed:
                run.guard_tripped[checked] = evaluation.description or "mass delete"
            elif evaluation.check_name == CONSISTENT:
                run.findings.append(_finding(checked, dict(evaluation.metadata)))
    for collection, counts in run.collections.items():
        counts.update(embedded.get(collection, {"chunks_embedded": 0, "chunks_reused": 0}))
    return run if ours else None


def _collection_of(config: VectorSyncConfig, key: dg.AssetKey, names: Names) -> str | None:
    for collection in config.collections:
        if key in (names.asset("qdrant", collection), names.asset("changes", collection)):
            return collection
    return None


def _finding(collection: str, metadata: dict[str, Any]) -> Finding:
    finding = Finding(collection, checked=int(_value(metadata, "checked")),
                      counts={k: int(_value(metadata, k)) for k in ("missing", "orphans",
                                                                      "stale")})
    offenders = metadata.get("offenders")
    for record in getattr(getattr(offenders, "value", None), "records", None) or []:
        data = record.data
        kind = {"missing": finding.missing, "orphan": finding.orphans,
                "stale": finding.stale}.get(str(data.get("problem")))
        if kind is not None:
            kind.append(str(data.get("doc_id")))
    return finding


def record_finished_run(config: VectorSyncConfig, run: FinishedRun | None) -> None:
    """Record a finished run's figures and events, and deliver them; never raises (a run's
    outcome does not depend on it)."""
    if run is None:
        return
    try:
        with open_ledger(config.state) as ledger:
            if record_run(ledger, run, config.events.enabled) and config.events.enabled:
                deliver_events(config, ledger)
    except Exception as error:  # noqa: BLE001 - bookkeeping after the run
        log.warning("could not record how run %s ended: %s: %s", run.run_id,
                    type(error).__name__, error)


def _from_instance(config: VectorSyncConfig, context: dg.RunStatusSensorContext,
                   names: Names) -> None:
    run = context.dagster_run
    stats = context.instance.get_run_stats(run.run_id)
    duration = (stats.end_time or 0) - (stats.start_time or 0) if stats.start_time else 0.0
    events = [entry.dagster_event for entry in context.instance.all_logs(run.run_id)
              if entry.dagster_event is not None]
    failure = context.dagster_event.event_specific_data if not run.is_success else None
    error = getattr(getattr(failure, "error", None), "message", None)
    record_finished_run(config, finished_run(
        config, events, run.run_id, dict(run.tags), run.is_success, max(duration, 0.0),
        error or (None if run.is_success else "the run failed"), names))


def run_sensors(config: VectorSyncConfig, names: Names = PLAIN) -> list[dg.SensorDefinition]:
    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS,
                          name=names.name("events_run_succeeded"),
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description="Records a finished sync's figures (the metrics) and, "
                          "with events configured, its sync.finished event.")
    def succeeded(context: dg.RunStatusSensorContext) -> None:
        _from_instance(config, context, names)

    @dg.run_failure_sensor(name=names.name("events_run_failed"),
                           default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Records a failed sync (the metrics; sync.finished "
                           "with success false, guard.tripped when the guard stopped it).")
    def failed(context: dg.RunFailureSensorContext) -> None:
        _from_instance(config, context, names)

    return [succeeded, failed]


def _age(oldest: datetime | None) -> float:
    return 0.0 if oldest is None else max((datetime.now(UTC) - oldest).total_seconds(), 0.0)


def backlog_report(settings: VectorSyncConfig, collection: str
                   ) -> tuple[bool, str | None, dict[str, Any]]:
    """(passed, description, metadata) of `events_delivered` for one collection."""
    sinks = [s.sink_name for s in settings.events.sinks]
    try:
        with open_ledger(settings.state) as ledger:
            found = outbox.backlog(ledger.engine, sinks, collection)
    except LedgerUnavailable as error:
        return False, f"not checked: {error}", {}
    waiting = {s: b for s, b in found.items() if b.events or b.failed}
    metadata: dict[str, Any] = {}
    for sink, backlog in found.items():
        metadata[f"{sink}_pending"] = backlog.events
        metadata[f"{sink}_oldest_age_s"] = round(_age(backlog.oldest), 1)
        metadata[f"{sink}_failed"] = backlog.failed
        if backlog.last_error and backlog.events:
            metadata[f"{sink}_last_error"] = backlog.last_error
    description = None if not waiting else "; ".join(
        f"{s}: {b.events} waiting (oldest {_age(b.oldest):.0f} s)"
        + (f", {b.failed} refused" if b.failed else "")
        + (f": {b.last_error}" if b.last_error and b.events else "")
        for s, b in waiting.items())
    return not waiting, description, metadata


def events_check(collection: str, names: Names = PLAIN) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=names.asset("qdrant", collection), name=CHECK,
                    required_resource_keys={names.resource_key},
                    description="Every sync event of this collection was taken by every "
                    "sink (WARN: some wait in the outbox, e.g. a sink is down; they are "
                    "delivered by the next drain). Also reported by each `events_drain` tick.")
    def events_delivered(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        passed, description, metadata = backlog_report(resource(context, names).load(),
                                                       collection)
        return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN,
                                   description=description, metadata=metadata)

    return events_delivered


def drain_sensor(config: VectorSyncConfig, names: Names = PLAIN) -> dg.SensorDefinition:
    @dg.sensor(name=names.name("events_drain"), minimum_interval_seconds=(
        config.events.drain_interval_s), default_status=dg.DefaultSensorStatus.RUNNING,
        description="Delivers sync events left in the outbox (a sink was down during a "
        "sync), each sink within its timeout; prunes delivered ones after events.retention; "
        "records each collection's `events_delivered` check.")
    def events_drain(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        settings = config  # as loaded with these definitions
        with open_ledger(settings.state) as ledger:
            drained = deliver_events(settings, ledger)
        summary = ", ".join(f"{sink}: {d.delivered} delivered"
                            + (f", {d.refused} refused" if d.refused else "")
                            + (f" ({d.error})" if d.error else "")
                            for sink, d in drained.items())
        evaluations = []
        for collection in settings.collections:
            passed, description, metadata = backlog_report(settings, collection)
            evaluations.append(dg.AssetCheckEvaluation(
                asset_key=names.asset("qdrant", collection), check_name=CHECK, passed=passed,
                severity=dg.AssetCheckSeverity.WARN, description=description,
                metadata=metadata))
        return dg.SensorResult(skip_reason=summary or "nothing to deliver",
                               asset_events=evaluations)

    return events_drain


def events_definitions(config: VectorSyncConfig, names: Names = PLAIN) -> dg.Definitions:
    """The events' sensors and checks of one configuration: none without sinks (the CLI
    still records the figures of its own runs)."""
    if not config.events.enabled:
        return dg.Definitions()
    return dg.Definitions(
        sensors=[*run_sensors(config, names), drain_sensor(config, names)],
        asset_checks=[events_check(c, names) for c in config.collections])
