"""Migrations in Dagster: the `migrate` operator job (start, switch, rollback, cleanup from
the launchpad: an action and a collection), its progress in the run's logs and, per
collection, in the metadata of a `generation_<collection>` materialization (the serving and
building generations, documents done and total, chunks/s, ETA, the gate's figures); and the
`migration_cleanup` schedule that drops retired generations once `migration.keep_old` has
passed. The quality gate blocks the switch: a failing gate (or verify) fails the run with
the reason and moves nothing (docs/migrations.md).
"""


import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import dagster as dg

from vector_sync.core.generations import engine, report
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.defs.assets import QDRANT_POOL, resource
from vector_sync.defs.jobs import OPERATOR, PLAIN, Names

MIGRATE_JOB = "migrate"
MIGRATE_OP = "migration_step"  # an op may not share the job's name
CLEANUP_SCHEDULE = "migration_cleanup"


class MigrateConfig(dg.Config):
    action: Literal["start", "switch", "rollback", "cleanup"] = "start"
    collection: str = ""  # empty: every collection (start/switch: those with one to do)


class _ToDagster(logging.Handler):
    """The migration's progress lines (documents, chunks/s, ETA) into the run's log."""

    def __init__(self, context: dg.OpExecutionContext) -> None:
        super().__init__(logging.INFO)
        self.context = context

    def emit(self, record: logging.LogRecord) -> None:
        self.context.log.info(record.getMessage())


@contextmanager
def _progress_in(context: dg.OpExecutionContext) -> Iterator[None]:
    logger = logging.getLogger("vector_sync.core.generations")
    handler = _ToDagster(context)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _act(config: VectorSyncConfig, action: str, collection: str) -> dict[str, Any] | None:
    state = report.status(config, [collection])["collections"][collection]
    if action == "cleanup":
        return {"dropped": engine.cleanup(config, collection)}
    if action == "start":
        if state["state"] not in ("pending", "building", "ready"):
            return None
        built = engine.start(config, collection)
        return {"building": built.physical}
    if action == "switch":
        if state["building"] is None and state["state"] != "switching":
            return None
        return engine.switch(config, collection)
    return engine.rollback(config, collection)


def _metadata(config: VectorSyncConfig, collection: str,
              result: dict[str, Any]) -> dict[str, Any]:
    state = report.status(config, [collection])["collections"][collection]
    metadata: dict[str, Any] = {k: state[k] for k in (
        "serving", "state", "documents_done", "documents_total", "chunks_per_s",
        "chunks_embedded", "chunks_reused")}
    metadata["building"] = state["building"] or ""
    metadata["eta_s"] = state["eta_s"] if state["eta_s"] is not None else -1
    gate = result.get("gate")
    if gate:
        metadata.update({"gate_overlap": gate["overlap"], "gate_recall": gate["recall"] or 0,
                         "gate_canaries": gate["canaries"], "gate_seconds": gate["seconds"]})
    return metadata


def migration_definitions(config: VectorSyncConfig, names: Names = PLAIN) -> dg.Definitions:
    @dg.op(name=names.name(MIGRATE_OP), pool=QDRANT_POOL,
           required_resource_keys={names.resource_key})
    def migrate(context: dg.OpExecutionContext, config: MigrateConfig) -> None:
        vector_sync = resource(context, names)
        # as configured (not as served: the migration builds what the config asks for)
        settings = vector_sync.overridden(vector_sync.load(overrides=False))
        action = config.action
        collections = [config.collection] if config.collection else list(settings.collections)
        for collection in collections:
            if collection not in settings.collections:
                raise dg.Failure(description=f"unknown collection {collection!r}")
            try:
                with _progress_in(context):
                    result = _act(settings, action, collection)
            except engine.MigrationRefused as refused:
                raise dg.Failure(description=str(refused)) from None
            if result is None:
                context.log.info(f"{collection}: nothing to {action}")
                continue
            context.log_event(dg.AssetMaterialization(
                asset_key=names.key(f"generation_{collection}"),
                description=f"migrate {action}",
                metadata=_metadata(settings, collection, result)))

    @dg.job(name=names.job(MIGRATE_JOB), tags=OPERATOR,
            description="Blue-green rebuild of a collection after a model or chunker change: "
            "start (build the new generation), switch (catch up, verify, quality gate, "
            "atomic pointer change), rollback, cleanup")
    def migrate_job() -> None:
        migrate()

    cleanup = dg.ScheduleDefinition(
        name=names.name(CLEANUP_SCHEDULE), job=migrate_job, cron_schedule="17 * * * *",
        run_config=dg.RunConfig(ops={names.name(MIGRATE_OP): MigrateConfig(action="cleanup")}),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="drops retired generations once migration.keep_old has passed")
    return dg.Definitions(jobs=[migrate_job], schedules=[cleanup])
