"""The repair job's first step: `prepare_repair`, upstream of source_snapshot.

A repair is what `vector-sync repair` does for a source: rewrite the ledger from what Qdrant
holds (and rebuild a collection whose vectors do not fit the config, and with `prune`
first delete what the config no longer names), then sync. In the repair job this asset does
the first half with the same core functions as the CLI, and the same run then syncs the
source through the same assets as any sync. Whole-graph runs select it too (*Materialize
all*, a backfill of every asset): there it repairs nothing, so that only a run named
`repair` ever rewrites the ledger, drops a collection or prunes.
"""

import dagster as dg

from vector_sync.core.consistency import repair, unmanaged
from vector_sync.core.store import QdrantUnavailable
from vector_sync.defs.assets import resource, source_step
from vector_sync.defs.jobs import PLAIN, REPAIR_JOB, Names


class RepairConfig(dg.Config):
    # first delete every source's points and collections the config no longer names
    prune: bool = False


def prepare_repair_asset(partitions: dg.PartitionsDefinition,
                         names: Names = PLAIN) -> dg.AssetsDefinition:
    repair_job, op = names.job(REPAIR_JOB), names.op(names.prepare_repair)

    @dg.asset(
        key=names.prepare_repair, partitions_def=partitions, group_name=names.sources_group,
        required_resource_keys={names.resource_key},
        description="The repair job's first step, for the chosen source: verify its "
        "collections against the source and Qdrant, rewrite the ledger rows found wrong from "
        "what Qdrant holds, delete points under ids vector_sync never computes, and drop a "
        "collection whose vectors do not fit the config; `prune: true` first deletes what "
        "the config no longer names. The same run then syncs the source. In any other run "
        "(Materialize all) it does nothing: launch the repair job to repair.",
    )
    def prepare_repair(context: dg.AssetExecutionContext,
                       config: RepairConfig) -> dg.MaterializeResult:
        if context.job_name != repair_job:
            if config.prune:
                raise dg.Failure(
                    description=f"prune is done by the {repair_job} job only: launch it for "
                    f"this source (Jobs > {repair_job} > Launchpad) with "
                    f"ops.{op}.config.prune: true", allow_retries=False)
            context.log.info("not the repair job: nothing repaired, the run syncs")
            return dg.MaterializeResult(metadata={"repaired": False})
        settings, source = resource(context, names).load(), context.partition_key
        try:
            with source_step(context, settings):
                if config.prune:
                    unmanaged.prune(settings, unmanaged.find_unmanaged(settings))
                others = sorted(repair.prepare_repair(settings, source) - {source})
        except QdrantUnavailable as error:
            raise dg.Failure(description=str(error)) from None
        if others:
            context.log.warning("a rebuilt collection is also fed by %s: repair or sync them "
                                "too", ", ".join(others))
        return dg.MaterializeResult(metadata={
            "repaired": True, "pruned": config.prune,
            "sources_to_sync_too": ", ".join(others) or "none"})

    return prepare_repair
