"""Asset checks: Qdrant verified against the source as it is now (never against our own
bookkeeping alone), and the guard that refuses a mass delete. Checks only report; `repair`
is what writes."""


from collections.abc import Iterator
from typing import Any

import dagster as dg

from vector_sync.core.diff import mass_delete
from vector_sync.core.ledger import open_ledger
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.source import SourceUnavailable
from vector_sync.core.state_files import StateFiles, read_summary
from vector_sync.core.verify import Verification, verify_source
from vector_sync.defs.assets import QDRANT_POOL
from vector_sync.defs.jobs import GUARD
from vector_sync.defs.resources import VectorSyncResource

CONSISTENT = "consistent_with_source"
VECTORS = "vectors_match_config"
LEDGER = "ledger_matches_qdrant"
RETRIES = "retries_not_exhausted"
LISTED = 100  # rows shown in a check's table; the counts cover every row


def _table(records: list[dict[str, Any]], columns: dict[str, str]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord(record) for record in records],
        schema=dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in columns.items()]))


def _offenders(result: Verification) -> dg.TableMetadataValue:
    return _table([{"problem": p, "doc_id": d} for p, d in result.offenders()],
                  {"problem": "string", "doc_id": "string"})


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
                          description="The ledger agrees with what Qdrant holds (where it does "
                          "not, `repair` rewrites it so the next sync fixes Qdrant)."),
        dg.AssetCheckSpec(RETRIES, asset=qdrant_key, partitions_def=partitions,
                          description="No document has failed so often that its retries "
                          "stopped (retry.max_retries); those stay failed until fixed."),
    ]

    @dg.multi_asset_check(specs=specs, name=f"verify_{collection}", pool=QDRANT_POOL)
    def verify(context: dg.AssetCheckExecutionContext,
               vector_sync: VectorSyncResource) -> Iterator[dg.AssetCheckResult]:
        settings = vector_sync.load()
        source = context.partition_key
        if collection not in settings.sources[source].collections:
            for spec in specs:
                yield dg.AssetCheckResult(check_name=spec.name, passed=True,
                                          metadata={"fed_by_source": False})
            return
        try:
            [result] = verify_source(settings, source, [collection])
        except SourceUnavailable as error:
            raise dg.Failure(description=str(error)) from None
        counts = {k: v for k, v in result.summary().items() if isinstance(v, int | float)}
        yield dg.AssetCheckResult(
            check_name=CONSISTENT, severity=dg.AssetCheckSeverity.ERROR,
            passed=not (result.missing or result.orphans or result.stale),
            metadata={**counts, "offenders": _offenders(result)})
        yield dg.AssetCheckResult(
            check_name=VECTORS, severity=dg.AssetCheckSeverity.ERROR,
            passed=not result.config_problems,
            metadata={"problems": "; ".join(result.config_problems) or "none"})
        yield dg.AssetCheckResult(
            check_name=LEDGER, severity=dg.AssetCheckSeverity.WARN,
            passed=not result.ledger_disagrees,
            metadata={"disagreements": len(result.ledger_disagrees)})
        yield _retries_check(settings, source, collection)

    return verify


def _retries_check(settings: VectorSyncConfig, source: str,
                   collection: str) -> dg.AssetCheckResult:
    with open_ledger(settings.state) as ledger:
        given_up = ledger.count_given_up(source, collection)
        rows = ledger.failed(source, limit=LISTED, given_up_only=True, collection=collection)
    return dg.AssetCheckResult(
        check_name=RETRIES, severity=dg.AssetCheckSeverity.WARN, passed=not given_up,
        metadata={"documents_given_up": given_up, "documents": _table(
            [{"doc_id": r.doc_id, "attempts": r.attempts, "error": r.last_error or ""}
             for r in rows], {"doc_id": "string", "attempts": "int", "error": "string"})})


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
        counts = read_summary(StateFiles(settings.state.dir).changes(collection, source))
        problem = mass_delete(counts, settings.sources[source].max_delete_fraction)
        metadata = {"deleted": counts["deleted"], "documents_before": counts["documents_before"],
                    "documents_now": counts["documents_now"],
                    "allowed_by_run_config": config.allow_mass_delete}
        if problem and not config.allow_mass_delete:
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
                description=f"{problem}; nothing was deleted. If this is intended, run "
                f"`vector-sync sync --source {source} --allow-mass-delete`, or launch this run "
                f"with the run config ops.{context.op_def.name}.config.allow_mass_delete: true")
        return dg.AssetCheckResult(passed=True, metadata=metadata)

    return mass_delete_guard
