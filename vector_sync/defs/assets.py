"""The asset graph, partitioned by source:

[prepare_repair ->] source_snapshot -> changes_<collection> -> embeddings_<collection>
-> qdrant_<collection>

(one group per collection). Assets hand Parquet files to each other under the state dir
(paths derived from the partition), so each step is inspectable, and `qdrant_<collection>`
is the only one that writes Qdrant in a sync. The work itself is in the core's stage
modules; these wrappers add Dagster's view of it. A collection's chain materializes only for
the sources that feed it. `prepare_repair` is the repair job's first step (repair.py); the
other jobs leave it out.
"""


from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from vector_sync.core import faults
from vector_sync.core.ledger import LedgerUnavailable, open_ledger
from vector_sync.core.locks import SourceBusy, source_lock
from vector_sync.core.pipeline import apply, diff, embed, snapshot
from vector_sync.core.pipeline.apply import QdrantTransientError
from vector_sync.core.settings import RetryConfig, SensorsConfig, VectorSyncConfig
from vector_sync.core.source import SourceUnavailable
from vector_sync.core.stats import throughput
from vector_sync.core.store import CollectionMismatch, QdrantUnavailable
from vector_sync.defs import reports
from vector_sync.defs.jobs import (
    FAILED,
    PLAIN,
    PRESETS,
    RESYNC_JOB,
    SYNC_JOB,
    TAG_DOCUMENTS,
    TAG_SOURCE,
    TAG_TRIGGER,
    Names,
    group_of,
)
from vector_sync.defs.resources import VectorSyncResource

Context = dg.AssetExecutionContext | dg.OpExecutionContext | dg.AssetCheckExecutionContext

QDRANT_POOL = "qdrant"  # embedded Qdrant admits one process at a time
TAGGED = 10  # documents named in a targeted run's tag; the rest are counted
# a run launched by Dagster itself carries one of these; one with none was launched in the UI
LAUNCHED_BY = {"dagster/backfill": "backfill", "dagster/schedule_name": "schedule",
               "dagster/sensor_name": "sensor"}


class SnapshotConfig(dg.Config):
    full: bool = False  # read every document, ignoring the cheap version hints
    doc_ids: list[str] = []  # re-sync only these documents; the rest stay as they are
    # unset: as the job says (true in the job of the same name, false elsewhere)
    retry_due: bool | None = None  # only the failed documents whose backoff has expired
    pending: bool | None = None  # only the documents with a row not synced (due or not)

    def for_job(self, job: str) -> "SnapshotConfig":
        """The values the run config leaves unset taken from the job's preset: a
        `retry_due` run retries only what is due however it was launched (a launchpad whose
        editor was filled before a partition was picked, `dg launch`, a GraphQL client
        sending no config)."""
        preset = PRESETS.get(job, {})
        return self.model_copy(update={key: preset.get(key, False) for key in (
            "retry_due", "pending") if getattr(self, key) is None})

    def targets(self, settings: VectorSyncConfig, source: str) -> set[str] | None:
        """The documents a targeted run reads, or None for a whole-source sync."""
        if not (self.doc_ids or self.retry_due or self.pending):
            return None
        with open_ledger(settings.state) as ledger:
            return {*self.doc_ids,
                    *(snapshot.due_for_retry(ledger, source) if self.retry_due else ()),
                    *(snapshot.pending_documents(ledger, source) if self.pending else ())}


def resource(context: Context, names: Names) -> VectorSyncResource:
    """The vector_sync resource of these definitions (its key carries the prefix, so each
    configuration in a code location has its own)."""
    found: VectorSyncResource = getattr(context.resources, names.resource_key)
    return found


def partitions_for(config: VectorSyncConfig) -> dg.StaticPartitionsDefinition:
    """One partition per source. Dagster runs one partitions definition per run, so every
    collection has them all; a run for a source selects only the chains it feeds."""
    return dg.StaticPartitionsDefinition(list(config.sources))


def source_snapshot_asset(partitions: dg.PartitionsDefinition,
                          names: Names = PLAIN) -> dg.AssetsDefinition:
    @dg.asset(
        key=names.snapshot, partitions_def=partitions, group_name=names.sources_group,
        kinds={"parquet"}, required_resource_keys={names.resource_key},
        deps=[names.prepare_repair],  # in the repair job, the ledger is rewritten first
        description="Every document of the source with its version hint; documents whose hint "
        "is unchanged since they were synced are listed but not read. It only lists and "
        "reads the source.",
    )
    def source_snapshot(context: dg.AssetExecutionContext,
                        config: SnapshotConfig) -> dg.MaterializeResult:
        settings, source = resource(context, names).load(), context.partition_key
        config = config.for_job(names.unprefixed(context.job_name))
        # not a whole-source sync
        if names.is_job(context.job_name, RESYNC_JOB) and not config.doc_ids:
            raise dg.Failure(description="resync_documents re-syncs named documents: list "
                             f"their ids in the run config, ops.{names.op(names.snapshot)}"
                             ".config.doc_ids "
                             "(`vector-sync status` shows the failed ones)")
        with source_step(context, settings):
            targets = config.targets(settings, source)
            _tag_run(context, source, targets)
            metadata = snapshot.snapshot(settings, source, config.full, targets)
        metadata["path"] = dg.MetadataValue.path(metadata["path"])
        return dg.MaterializeResult(metadata=metadata)

    return source_snapshot


@contextmanager
def source_step(context: dg.AssetExecutionContext | dg.OpExecutionContext,
          settings: VectorSyncConfig,
          locked: bool = True) -> Iterator[None]:
    """A step holds its source's lock (core/locks.py; when the run's steps share a process,
    VectorSyncResource already holds it from the first step to the last), and a fault
    vector_sync explains (the source or the ledger unreachable, the source busy, a chunk
    budget exceeded) fails the step with that message, not a stack trace. `locked=False`:
    the shards of one embedding, which run side by side and write only their own files."""
    faults.reached(f"step.{context.op_def.name}")
    lock = source_lock(settings.state, context.partition_key, settings.state.lock_wait_s) \
        if locked else nullcontext()
    try:
        with lock:
            yield
    except (SourceBusy, SourceUnavailable, LedgerUnavailable, diff.ChunkBudgetError,
            embed.ShardMismatch) as error:
        raise dg.Failure(description=str(error)) from None
    except CollectionMismatch as error:  # configuration, not a transient fault: no retry
        raise dg.Failure(description=str(error), allow_retries=False) from None


def _tag_run(context: dg.AssetExecutionContext, source: str, targets: set[str] | None) -> None:
    """Every run carries the tags the runs list is filtered by, whatever started it (the
    catalog's Materialize button and backfills launch runs without ours); a targeted run
    also says which documents it reads."""
    tags = context.run.tags
    new = {TAG_SOURCE: source, TAG_TRIGGER: next(
        (trigger for tag, trigger in LAUNCHED_BY.items() if tag in tags), "ui")}
    new = {tag: value for tag, value in new.items() if tag not in tags}
    if targets is not None:
        listed = sorted(targets)
        new[TAG_DOCUMENTS] = ", ".join(listed[:TAGGED]) + (
            f" and {len(listed) - TAGGED} more" if len(listed) > TAGGED else "") or "none"
    if new:
        context.instance.add_run_tags(context.run.run_id, new)


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


def _fed(context: dg.AssetExecutionContext | dg.OpExecutionContext, settings: VectorSyncConfig,
         collection: str) -> bool:
    """Whether the run's source feeds `collection`. When it does not (a launchpad run of the
    whole job, a backfill of one asset over every partition), the asset yields nothing: no
    materialization, and what depends on it in the run is skipped."""
    if collection in settings.sources[context.partition_key].collections:
        return True
    context.log.info("source %s does not feed collection %s", context.partition_key, collection)
    return False


def _run_and_its_ancestors(context: dg.AssetExecutionContext | dg.OpExecutionContext,
                           ) -> list[str]:
    """This run's id, and those of the runs it re-executes ("re-execute from failure" keeps
    the steps that had succeeded, the snapshot among them), back to the first."""
    run, ids = context.run, [context.run.run_id]
    while run.parent_run_id and run.parent_run_id not in ids:
        ids.append(run.parent_run_id)
        parent = context.instance.get_run_by_id(run.parent_run_id)
        if parent is None:  # deleted from the run history
            break
        run = parent
    return ids


def _made_in_this_run(context: dg.AssetExecutionContext | dg.OpExecutionContext,
                      upstream: dg.AssetKey, stage: dg.AssetKey, names: Names) -> None:
    """Each stage reads the file its upstream asset's latest materialization (for the run's
    source) wrote. A run that selects a stage without what comes before it (the "Materialize
    all" of a collection's group, which holds the chain but not source_snapshot; one asset
    materialized alone) would work from an old look at the source and report nothing of
    the edits since: it is refused, saying what to launch instead."""
    selected = context.run.asset_selection
    if selected and upstream in selected:  # it ran before this step, in this run: no query
        return
    source = context.partition_key
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=upstream, asset_partitions=[source]), limit=1).records
    if records and records[0].run_id in _run_and_its_ancestors(context):
        return
    first, sync = names.snapshot.to_user_string(), names.job(SYNC_JOB)
    name, made = upstream.to_user_string(), "it was never materialized" if not records else (
        f"its latest materialization is from run {records[0].run_id[:8]}, "
        f"{datetime.fromtimestamp(records[0].timestamp, UTC):%Y-%m-%d %H:%M:%S} UTC")
    raise dg.Failure(
        description=f"{stage.to_user_string()} did not run: this run does not materialize "
        f"{name} for source {source!r} ({name} is not selected), and {made}: working from "
        f"it would miss every change to {source} since. To sync {source}, launch the `{sync}` "
        f"job for partition {source} (Jobs > {sync} > Launchpad), or materialize "
        f"{first} together with this chain (in the graph, select "
        f"{first} and its downstream assets, then Materialize).",
        allow_retries=False)


def collection_assets(collection: str, partitions: dg.PartitionsDefinition,
                      settings: VectorSyncConfig,
                      names: Names = PLAIN) -> list[dg.AssetsDefinition]:
    changes_key = names.asset("changes", collection)
    embeddings_key = names.asset("embeddings", collection)
    qdrant_key = names.asset("qdrant", collection)
    feeding = settings.sources_feeding(collection)
    common: dict[str, Any] = {"partitions_def": partitions,
                              "group_name": names.group_of(collection),
                              "metadata": {"fed_by": ", ".join(feeding)},
                              "output_required": False,
                              "required_resource_keys": {names.resource_key}}
    fed_by = f" Fed by: {', '.join(feeding)}."

    @dg.asset(
        key=changes_key, deps=[names.snapshot], kinds={"parquet"}, **common,
        description=f"What must change in Qdrant collection {collection!r} (the dry-run "
        "preview: added, updated, payload-only, deleted), with the chunks to embed." + fed_by,
    )
    def changes(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        settings = resource(context, names).load()
        if not _fed(context, settings, collection):
            return
        _made_in_this_run(context, names.snapshot, changes_key, names)
        with source_step(context, settings):
            metadata = diff.changes(settings, context.partition_key, collection)
        yield dg.MaterializeResult(metadata=metadata)

    embeddings_description = (
        f"Vectors for the changed chunks of {collection!r} only; vectors of an identical "
        "earlier version are reused instead of re-embedded." + fed_by)
    shards = settings.execution.embed_shards
    if shards > 1:
        embeddings = sharded_embeddings(collection, changes_key, shards, partitions,
                                        embeddings_description, settings, names)
    else:
        @dg.asset(key=embeddings_key, deps=[changes_key], kinds={"parquet"}, **common,
                  description=embeddings_description)
        def embeddings(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
            settings = resource(context, names).load()
            if _fed(context, settings, collection):
                _made_in_this_run(context, changes_key, embeddings_key, names)
                with source_step(context, settings):
                    metadata = embed.embeddings(settings, context.partition_key, collection)
                yield dg.MaterializeResult(metadata=metadata)

    @dg.asset(
        key=qdrant_key, deps=[embeddings_key], kinds={"qdrant"},
        pool=QDRANT_POOL, retry_policy=step_retry_policy(settings.retry),
        freshness_policy=freshness_policy(settings.sensors), **common,
        check_specs=[dg.AssetCheckSpec(
            FAILED, asset=qdrant_key,
            description="No document of the collection is failed (WARN: the rest was "
            "applied; failed documents are retried with backoff; ERROR once the retries gave "
            "up on one). Evaluated by every sync.")],
        description=f"The Qdrant collection {collection!r}: applies the change set "
        "(upsert, set_payload, delete) and records each acknowledged write in the ledger. "
        "Each materialization shows this run's counts, the collection's documents by status "
        "and the failed ones with their errors." + fed_by,
    )
    def qdrant(context: dg.AssetExecutionContext,
               ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        settings = resource(context, names).load()
        if not _fed(context, settings, collection):
            # no materialization, but the check is the collection's, whichever source
            with source_step(context, settings, locked=False):
                status = reports.collection_status(settings, collection)
            yield reports.failed_documents_check(status)
            return
        _made_in_this_run(context, embeddings_key, qdrant_key, names)
        last_attempt = context.retry_number >= settings.retry.step_retries
        try:
            with source_step(context, settings):
                report = apply.apply(settings, context.partition_key, collection,
                                     may_retry_step=not last_attempt)
                status = reports.collection_status(settings, collection)
        except (QdrantTransientError, QdrantUnavailable) as error:
            context.log.warning("Qdrant step attempt %d failed (%s)%s", context.retry_number + 1,
                                error, "" if last_attempt else "; retrying the step")
            raise
        yield dg.MaterializeResult(
            metadata={**report.as_dict(), "duration_s": report.seconds,
                      **throughput("points_per_s", report.points_written, report.seconds),
                      **status},
            check_results=[reports.failed_documents_check(status)])

    return [changes, embeddings, qdrant]


def sharded_embeddings(collection: str, changes_key: dg.AssetKey, shards: int,
                       partitions: dg.PartitionsDefinition, description: str,
                       settings: VectorSyncConfig, names: Names = PLAIN) -> dg.AssetsDefinition:
    """`embeddings_<collection>` as `shards` steps that a multi-process executor runs at
    once (execution.embed_shards): each embeds the documents a hash of their id gives it,
    into a file of its own, and a last step merges them into the embeddings file in
    change-set order. A shard re-run after a crash reuses what its file already holds."""
    # op names are letters, digits and _, as group names
    name, resources = names.name(group_of(collection)), {names.resource_key}

    @dg.op(name=f"plan_{name}_shards", ins={"changes": dg.In(dg.Nothing)},
           out=dg.DynamicOut(int, is_required=False), required_resource_keys=resources)
    def plan(context: dg.OpExecutionContext) -> Iterator[dg.DynamicOutput[int]]:
        if _fed(context, resource(context, names).load(), collection):
            _made_in_this_run(context, changes_key, names.asset("embeddings", collection),
                              names)
            for shard in range(shards):
                yield dg.DynamicOutput(shard, mapping_key=f"shard_{shard}")

    @dg.op(name=f"embed_{name}_shard", retry_policy=step_retry_policy(settings.retry),
           required_resource_keys=resources)
    def embed_shard(context: dg.OpExecutionContext, shard: int) -> dict[str, Any]:
        settings = resource(context, names).load()
        with source_step(context, settings, locked=False):
            return embed.embeddings(settings, context.partition_key, collection,
                                    (shard, shards))

    @dg.op(name=f"merge_{name}_shards", out=dg.Out(dg.Nothing, is_required=False),
           required_resource_keys=resources)
    def merge(context: dg.OpExecutionContext,
              shard_reports: list[dict[str, Any]]) -> Iterator[dg.Output[None]]:
        settings = resource(context, names).load()
        if not shard_reports:  # the source does not feed this collection: nothing planned
            return
        with source_step(context, settings):
            embed.merge_shards(settings, context.partition_key, collection, shards)
        embedded = sum(r["chunks_embedded"] for r in shard_reports)
        seconds = sum(r["duration_s"] for r in shard_reports)  # summed over the shards' steps
        yield dg.Output(None, metadata={
            "chunks_embedded": embedded,
            "chunks_reused": sum(r["chunks_reused"] for r in shard_reports),
            "shards": shards, "duration_s": seconds,
            "slowest_shard_s": max(r["duration_s"] for r in shard_reports),
            **throughput("chunks_per_s", embedded, seconds),
            "model": shard_reports[0]["model"]})

    @dg.graph_asset(key=names.asset("embeddings", collection), partitions_def=partitions,
                    group_name=names.group_of(collection), kinds={"parquet"},
                    description=description,
                    metadata={"fed_by": ", ".join(settings.sources_feeding(collection)),
                              "shards": shards},
                    ins={"changes": dg.AssetIn(changes_key, dagster_type=dg.Nothing)})
    def embeddings(changes: None) -> Any:
        return merge(plan(changes).map(embed_shard).collect())

    return embeddings
