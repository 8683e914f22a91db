"""The asset graph, partitioned by source:

source_snapshot -> changes/<collection> -> embeddings/<collection> -> qdrant/<collection>

Assets exchange Parquet files under the state dir (paths derived from the partition), so
each step is inspectable, and `qdrant/<collection>` is the only one that writes Qdrant.
The work itself is in `vector_sync.core.stages`; these wrappers add Dagster's view of it.
"""

from datetime import timedelta
from typing import Any

import dagster as dg

from vector_sync.config import RetryConfig, SensorsConfig, VectorSyncConfig
from vector_sync.core import stages
from vector_sync.core.engine import QdrantTransientError
from vector_sync.core.store import CollectionMismatch, QdrantUnavailable
from vector_sync.defs.resources import VectorSyncResource
from vector_sync.sources import SourceUnavailable

QDRANT_POOL = "qdrant"  # embedded Qdrant admits one process at a time


class SnapshotConfig(dg.Config):
    full: bool = False  # read every document, ignoring the cheap version hints
    # targeted runs: read only these documents, keep every other as the ledger has it
    doc_ids: list[str] = []
    retry_due: bool = False  # the failed documents whose backoff has expired

    def targets(self, settings: VectorSyncConfig, source: str) -> list[str] | None:
        """The documents a targeted run reads, or None for a whole-source sync."""
        if not (self.doc_ids or self.retry_due):
            return None
        due = stages.due_for_retry(settings, source) if self.retry_due else []
        return sorted({*self.doc_ids, *due})


def _not_fed(context: dg.AssetExecutionContext, settings: Any, collection: str) -> bool:
    if collection in settings.sources[context.partition_key].collections:
        return False
    context.log.info("source %s does not feed collection %s", context.partition_key, collection)
    return True


def source_snapshot_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key="source_snapshot", partitions_def=partitions, group_name="sync", kinds={"parquet"},
        description="Every document of the source with its version hint; documents whose hint "
        "is unchanged since they were synced are listed but not read.",
    )
    def source_snapshot(
        context: dg.AssetExecutionContext, config: SnapshotConfig,
        vector_sync: VectorSyncResource,
    ) -> dg.MaterializeResult:
        settings, source = vector_sync.load(), context.partition_key
        try:
            metadata = stages.snapshot(settings, source, config.full,
                                       config.targets(settings, source))
        except SourceUnavailable as error:
            raise dg.Failure(description=str(error)) from None
        metadata["path"] = dg.MetadataValue.path(metadata["path"])
        return dg.MaterializeResult(metadata=metadata)

    return source_snapshot


def step_retry_policy(retry: RetryConfig) -> dg.RetryPolicy:
    """Qdrant unreachable or failing a request: the Qdrant step is re-run (what was
    acknowledged is not written again) before its documents are marked failed."""
    return dg.RetryPolicy(max_retries=retry.step_retries, delay=retry.step_delay_s,
                          backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def freshness_policy(sensors: SensorsConfig) -> dg.FreshnessPolicy:
    """Sensors sync every source at least every resync_every_s: a collection not
    materialized for twice that has fallen behind (runs failing, daemon stopped)."""
    every = timedelta(seconds=sensors.resync_every_s)
    return dg.FreshnessPolicy.time_window(fail_window=2 * every,
                                          warn_window=every + timedelta(minutes=5))


def collection_assets(collection: str, partitions: dg.PartitionsDefinition,
                      settings: VectorSyncConfig) -> list[dg.AssetsDefinition]:
    changes_key = dg.AssetKey(["changes", collection])
    embeddings_key = dg.AssetKey(["embeddings", collection])
    common: dict[str, Any] = {"partitions_def": partitions, "group_name": "sync"}
    not_fed: dg.MaterializeResult[Any] = dg.MaterializeResult(metadata={"fed_by_source": False})

    @dg.asset(
        key=changes_key, deps=["source_snapshot"], kinds={"parquet"}, **common,
        description=f"What must change in Qdrant collection {collection!r} (the dry-run "
        "preview: added, updated, payload-only, deleted), with the chunks to embed.",
    )
    def changes(context: dg.AssetExecutionContext,
                vector_sync: VectorSyncResource) -> dg.MaterializeResult:
        settings = vector_sync.load()
        if _not_fed(context, settings, collection):
            return not_fed
        try:
            metadata = stages.changes(settings, context.partition_key, collection)
        except stages.ChunkBudgetError as error:
            raise dg.Failure(description=str(error)) from None
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(
        key=embeddings_key, deps=[changes_key], kinds={"parquet"}, **common,
        description=f"Vectors for the changed chunks of {collection!r} only; vectors of an "
        "identical earlier version are reused instead of re-embedded.",
    )
    def embeddings(context: dg.AssetExecutionContext,
                   vector_sync: VectorSyncResource) -> dg.MaterializeResult:
        settings = vector_sync.load()
        if _not_fed(context, settings, collection):
            return not_fed
        return dg.MaterializeResult(
            metadata=stages.embeddings(settings, context.partition_key, collection))

    @dg.asset(
        key=dg.AssetKey(["qdrant", collection]), deps=[embeddings_key], kinds={"qdrant"},
        pool=QDRANT_POOL, retry_policy=step_retry_policy(settings.retry),
        freshness_policy=freshness_policy(settings.sensors), **common,
        description=f"The Qdrant collection {collection!r}: applies the change set "
        "(upsert, set_payload, delete) and records each acknowledged write in the ledger.",
    )
    def qdrant(context: dg.AssetExecutionContext,
               vector_sync: VectorSyncResource) -> dg.MaterializeResult:
        settings = vector_sync.load()
        if _not_fed(context, settings, collection):
            return not_fed
        last_attempt = context.retry_number >= settings.retry.step_retries
        try:
            report = stages.apply(settings, context.partition_key, collection,
                                  may_retry_step=not last_attempt)
        except CollectionMismatch as error:  # configuration, not a transient fault
            raise dg.Failure(description=str(error), allow_retries=False) from None
        except (QdrantTransientError, QdrantUnavailable) as error:
            context.log.warning("Qdrant step attempt %d failed (%s)%s", context.retry_number + 1,
                                error, "" if last_attempt else "; retrying the step")
            raise
        return dg.MaterializeResult(metadata={
            **report.as_dict(), "duration_s": report.seconds,
            "points_per_s": stages.throughput(report.points_written, report.seconds),
        })

    return [changes, embeddings, qdrant]
