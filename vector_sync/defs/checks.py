"""Asset checks: Qdrant verified against the source (never against our own bookkeeping
alone), and the guard that refuses a mass delete."""

import json
from typing import Any

import dagster as dg

from vector_sync.core import stages
from vector_sync.core.state_files import StateFiles
from vector_sync.core.verify import Verification
from vector_sync.defs.assets import QDRANT_POOL
from vector_sync.defs.resources import VectorSyncResource
from vector_sync.sources import SourceUnavailable

CONSISTENT = "consistent_with_source"
VECTORS = "vectors_match_config"
LEDGER = "ledger_matches_qdrant"
GUARD = "mass_delete_guard"
RETRIES = "retries_not_exhausted"


def _offenders(result: Verification) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"problem": p, "doc_id": d}) for p, d in result.offenders()],
        schema=dg.TableSchema(columns=[dg.TableColumn("problem", "string"),
                                       dg.TableColumn("doc_id", "string")]),
    )


def consistency_checks(collection: str,
                       partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    qdrant_key = dg.AssetKey(["qdrant", collection])
    specs = [
        dg.AssetCheckSpec(CONSISTENT, asset=qdrant_key, partitions_def=partitions,
                          description="Every document of the source has exactly its chunks "
                          "in Qdrant, with current content and payload; nothing else is there."),
        dg.AssetCheckSpec(VECTORS, asset=qdrant_key, partitions_def=partitions,
                          description="Vector size, distance and model of the collection "
                          "match the config."),
        dg.AssetCheckSpec(LEDGER, asset=qdrant_key, partitions_def=partitions,
                          description="The ledger agrees with what Qdrant holds; where it "
                          "does not, it is rewritten from Qdrant so the next sync fixes it."),
        dg.AssetCheckSpec(RETRIES, asset=qdrant_key, partitions_def=partitions,
                          description="No document has failed so often that its retries "
                          "stopped (retry.max_retries); those stay failed until fixed."),
    ]

    @dg.multi_asset_check(specs=specs, name=f"verify_{collection}", pool=QDRANT_POOL)
    def verify(context: dg.AssetCheckExecutionContext,
               vector_sync: VectorSyncResource) -> Any:
        settings = vector_sync.load()
        source = context.partition_key
        if collection not in settings.sources[source].collections:
            for spec in specs:
                yield dg.AssetCheckResult(check_name=spec.name, passed=True,
                                          metadata={"fed_by_source": False})
            return
        result = stages.verify(settings, source, collection)
        counts = {k: v for k, v in result.summary().items() if isinstance(v, int | float)}
        yield dg.AssetCheckResult(
            check_name=CONSISTENT, severity=dg.AssetCheckSeverity.ERROR,
            passed=not (result.missing or result.orphans or result.stale),
            metadata={**counts, "offenders": _offenders(result)})
        yield dg.AssetCheckResult(
            check_name=VECTORS, severity=dg.AssetCheckSeverity.ERROR,
            passed=not result.config_problems,
            metadata={"problems": "; ".join(result.config_problems) or "none"})
        repaired = stages.reconcile(settings, result) if result.ledger_disagrees else 0
        yield dg.AssetCheckResult(
            check_name=LEDGER, severity=dg.AssetCheckSeverity.WARN,
            passed=not result.ledger_disagrees,
            metadata={"disagreements": len(result.ledger_disagrees),
                      "ledger_rows_rewritten": repaired})
        yield _retries_check(settings, source, collection)

    return verify


def _retries_check(settings: Any, source: str, collection: str) -> dg.AssetCheckResult:
    with stages.open_ledger(settings) as ledger:
        rows = ledger.failed(source, limit=10_000, given_up_only=True, collection=collection)
    return dg.AssetCheckResult(
        check_name=RETRIES, severity=dg.AssetCheckSeverity.WARN, passed=not rows,
        metadata={"documents_given_up": len(rows), "documents": dg.MetadataValue.table(
            records=[dg.TableRecord({"doc_id": r.doc_id, "attempts": r.attempts,
                                     "error": r.last_error or ""}) for r in rows[:100]],
            schema=dg.TableSchema(columns=[dg.TableColumn("doc_id", "string"),
                                           dg.TableColumn("attempts", "int"),
                                           dg.TableColumn("error", "string")]))})


class GuardConfig(dg.Config):
    allow_mass_delete: bool = False  # set true to let this run delete that much


def guard_check(collection: str, partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["changes", collection]), name=GUARD, blocking=True,
        partitions_def=partitions,
        description="Stops the run before anything is deleted when a source that had "
        "documents yields none, or deletions exceed its max_delete_fraction.",
    )
    def mass_delete_guard(context: dg.AssetCheckExecutionContext, config: GuardConfig,
                          vector_sync: VectorSyncResource) -> dg.AssetCheckResult:
        settings = vector_sync.load()
        source = context.partition_key
        if collection not in settings.sources[source].collections:
            return dg.AssetCheckResult(passed=True, metadata={"fed_by_source": False})
        counts = json.loads(
            StateFiles(settings.state.dir).change_counts(collection, source).read_text())
        problem = stages.mass_delete(counts, settings.sources[source].max_delete_fraction)
        metadata = {"deleted": counts["deleted"], "allowed_by_run_config": config.allow_mass_delete}
        if problem and not config.allow_mass_delete:
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
                description=f"{problem}; nothing was deleted. If this is intended, run "
                f"`vector-sync sync --source {source} --allow-mass-delete`, or launch this run "
                f"with the run config ops.{context.op_def.name}.config.allow_mass_delete: true")
        return dg.AssetCheckResult(passed=True, metadata=metadata)

    return mass_delete_guard


class RepairConfig(dg.Config):
    sources: list[str] = []  # empty: every source
    allow_mass_delete: bool = False


@dg.op(pool=QDRANT_POOL, description="Make Qdrant match the sources: verify, rewrite the "
       "ledger from what Qdrant holds, sync (only what differs is rewritten), verify again.")
def repair_sources(context: dg.OpExecutionContext, config: RepairConfig,
                   vector_sync: VectorSyncResource) -> dg.Output[None]:
    settings = vector_sync.load()

    def sync_here(source: str) -> str | None:
        try:
            counts = stages.sync(settings, source, allow_mass_delete=config.allow_mass_delete)
        except (stages.MassDeleteRefused, SourceUnavailable) as error:
            return str(error)
        context.log.info("repaired %s: %s", source, counts)
        return None

    results, errors = stages.repair(settings, config.sources or list(settings.sources),
                                    sync_here)
    if errors:
        raise dg.Failure(description=f"could not repair: {errors}")
    inconsistent = [f"{r.source}/{r.collection}" for r in results if not r.consistent]
    if inconsistent:
        raise dg.Failure(description=f"still inconsistent after repair: {inconsistent}")
    return dg.Output(None, metadata={f"{r.source}/{r.collection}": dg.MetadataValue.json(
        r.summary()) for r in results})


@dg.job(description="Repair: rewrite only what differs between the sources and Qdrant.")
def repair() -> None:
    repair_sources()
