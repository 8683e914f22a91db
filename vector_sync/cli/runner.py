"""Running the sync job for one source: in-process, as the CLI does (`sync_source`), or
rebuilt by every step's process, for an instance with any executor (`reconstructable_sync`).

It is the same run a sensor or the launchpad starts: the sync job, one source partition, the
assets and guards that source feeds. Runs land in the Dagster instance under $DAGSTER_HOME
when it is set, so CLI syncs show up in the UI's history next to the others.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from vector_sync.config import load_config
from vector_sync.core.locks import SourceBusy, source_lock
from vector_sync.core.pipeline.plan import read_only_ledger
from vector_sync.core.pipeline.rows import OUTCOMES
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.definitions import build_definitions
from vector_sync.defs.assets import SnapshotConfig
from vector_sync.defs.checks import GuardConfig
from vector_sync.defs.events import finished_run, record_finished_run
from vector_sync.defs.jobs import (
    TAG_SOURCE,
    TAG_TRIGGER,
    VERIFY_CHECKS,
    asset_key,
    guard_key,
    sync_job_for,
)

log = logging.getLogger(__name__)
KEPT_FAILING = "not attempted, Qdrant kept failing: "  # a document after the first refusals


def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else \
        dg.DagsterInstance.ephemeral()


def sync_source(config_file: Path, config: VectorSyncConfig, source: str, full: bool = False,
                allow_mass_delete: bool = False, trigger: str = "cli") -> dict[str, Any]:
    """{"collections": {name: counts}, "error": None or what failed, "warnings": [...]}.
    A collection the run did not get to apply has no counts (rather than zeros); a run that
    completed with documents Qdrant refused has the reason as its error."""
    defs = build_definitions(str(config_file))
    collections = config.sources[source].collections
    guard = GuardConfig(allow_mass_delete=allow_mass_delete)
    job = sync_job_for(defs, config, source)
    started = datetime.now(UTC)
    try:
        # one sync of a source at a time; the instance is disposed here because the CLI
        # exits without the interpreter's teardown
        with source_lock(config.state, source, config.state.lock_wait_s), \
                instance() as dagster_instance:
            result = job.execute_in_process(
                partition_key=source,
                instance=dagster_instance,
                run_config=dg.RunConfig(
                    ops={"source_snapshot": SnapshotConfig(full=full), **{
                        defs.get_asset_checks_def(guard_key(c)).op.name: guard
                        for c in collections}},
                    # progress and failures come from vector_sync's own logger and the
                    # report; Dagster's console would repeat each failure with its stack
                    # (an unexpected error's stack is logged by failure_message)
                    loggers={"console": {"config": {"log_level": "CRITICAL"}}},
                ),
                tags={TAG_SOURCE: source, TAG_TRIGGER: trigger},
                raise_on_error=False,
            )
    except SourceBusy as error:
        return {"collections": {}, "error": str(error), "warnings": []}
    counts = collection_counts(result, collections)
    failure = qdrant_failure(config, source, counts, started) if result.success \
        else failure_message(result)
    # the figures the metrics read, and with events configured the run's own events
    record_finished_run(config, finished_run(
        config, result.all_events, result.run_id, {TAG_SOURCE: source, TAG_TRIGGER: trigger},
        result.success, (datetime.now(UTC) - started).total_seconds(), failure))
    return {"collections": counts, "error": failure, "warnings": spot_check_warnings(result)}


def qdrant_failure(config: VectorSyncConfig, source: str, counts: dict[str, dict[str, int]],
                   since: datetime) -> str | None:
    """Why this run's documents could not be written, when Qdrant refused or was down: the
    run itself completes (the documents are recorded failed, to be retried), but the sync
    did not do its job. The ledger holds each document's reason."""
    refused: dict[str, int] = {}
    reason = ""
    with read_only_ledger(config) as ledger:
        for collection, applied in counts.items():
            if not applied["failed"]:
                continue
            # most recent first: this run's failures are among the first `failed` rows
            rows = [row for row in ledger.failed(source, limit=applied["failed"],
                                                 collection=collection)
                    if row.error_code == "qdrant_error" and row.last_attempt_at is not None
                    and row.last_attempt_at >= since]
            if rows:
                refused[collection] = len(rows)
                reason = reason or (rows[0].last_error or "").removeprefix(KEPT_FAILING)
    if not refused:
        return None
    return (f"Qdrant: {sum(refused.values())} document(s) not written ("
            + ", ".join(f"{n} in {c}" for c, n in refused.items())
            + f"; later syncs retry them): {reason}")


def spot_check_warnings(result: dg.ExecuteInProcessResult) -> list[str]:
    """What the run's spot check of Qdrant found wrong (the sync itself may have succeeded:
    a point lost behind vector_sync's back is not this run's failure). A spot check that
    could not read Qdrant says so once per collection, not once per check."""
    warnings: dict[str, None] = {}
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed or evaluation.check_name not in VERIFY_CHECKS:
            continue
        asset, description = evaluation.asset_key.to_user_string(), evaluation.description
        if description and description.startswith("not verified"):
            warnings[f"{asset}: {description}"] = None
        else:
            warnings[f"{asset} {evaluation.check_name}: {description or 'failed'}"] = None
    return list(warnings)


def collection_counts(result: dg.ExecuteInProcessResult,
                      collections: list[str]) -> dict[str, dict[str, int]]:
    metadata: dict[dg.AssetKey, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        if materialization is not None:
            metadata[materialization.asset_key] = {
                k: v.value for k, v in materialization.metadata.items()}
    counts = {}
    for collection in collections:
        applied = metadata.get(asset_key("qdrant", collection))
        if applied is None:  # the run stopped before this collection's Qdrant step
            continue
        embedded = metadata.get(asset_key("embeddings", collection), {})
        counts[collection] = {**{k: int(applied.get(k, 0)) for k in OUTCOMES},
                              **{k: int(embedded.get(k, 0))
                                 for k in ("chunks_embedded", "chunks_reused")}}
    return counts


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """Why the run failed: a failed blocking check's description, else the root cause of
    the first failed step, without Dagster's wrapping."""
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.blocking and not evaluation.passed and evaluation.description:
            return evaluation.description
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            if error is not None:
                if error.cls_name != "Failure":  # not an error vector_sync explained: a bug
                    log.error("step %s failed unexpectedly:\n%s", event.step_key,
                              error.to_string())
                message = error.message.strip()
                return message.split(": ", 1)[1] if ": " in message else message
    return "the run failed"


def sync_job(config_file: str, source: str) -> dg.JobDefinition:
    """The sync job of a config file as a run for `source` selects it. By module path and
    arguments, this is what a process that runs one step of a run (a multiprocess or Celery
    worker) rebuilds."""
    return sync_job_for(build_definitions(config_file), load_config(config_file), source)


def reconstructable_sync(config_file: str, source: str) -> dg.ReconstructableJob:
    """A sync of `source` for `dg.execute_job` through an instance with any executor (the
    distributed tests and the scale-out benchmark): the job the CLI and the sensors run,
    rebuilt by every step's process from the config file."""
    return dg.build_reconstructable_job(
        __name__, sync_job.__name__,
        reconstructable_kwargs={"config_file": config_file, "source": source})
