"""The jobs, and what a run for one source selects.

Every sync is a run of an asset job over one source partition, selecting only the snapshot
and the chains of the collections that source feeds, with their checks (the mass-delete
guard, failed documents, the verification of that source). The CLI, the sensors, the
launchpad's operator jobs and the catalog's Materialize button all run it so, and the
Checks tab shows the same checks whoever started the run.
"""

from __future__ import annotations

import re

import dagster as dg

from vector_sync.core.settings import VectorSyncConfig

SYNC_JOB = "sync"  # one source partition: its assets, the mass-delete guard, the checks
SYNC_PENDING_JOB = "sync_all_pending"  # the same, reading only rows not synced
RETRY_JOB = "retry_due"  # the same, reading only failed rows whose retry is due
RESYNC_JOB = "resync_documents"  # the same, reading only the named documents
REPAIR_JOB = "repair"  # prepare_repair (the ledger rewritten from Qdrant), then the same
VERIFY_JOB = "verify"  # the consistency checks, for every source or the ones named
TAG_SOURCE, TAG_TRIGGER = "vector_sync/source", "vector_sync/trigger"
TAG_DOCUMENTS = "vector_sync/documents"  # what a targeted run reads
OPERATOR = {TAG_TRIGGER: "operator"}  # a sensor's or the CLI's own tags win

# what an operator job's snapshot does without being told (the run config can still say
# otherwise); resync_documents needs its ids
PRESETS: dict[str, dict[str, bool]] = {RETRY_JOB: {"retry_due": True},
                                       SYNC_PENDING_JOB: {"pending": True}}

GUARD = "mass_delete_guard"
FAILED = "failed_documents"
VERIFY_CHECKS = ("consistent_with_source", "vectors_match_config", "ledger_matches_qdrant")
STAGES = ("changes", "embeddings", "qdrant")
SNAPSHOT = dg.AssetKey("source_snapshot")
PREPARE_REPAIR = dg.AssetKey("prepare_repair")  # the repair job's first step
# every job but repair: a sync never repairs (nor prunes)
SYNC_SELECTION = dg.AssetSelection.all() - dg.AssetSelection.assets(PREPARE_REPAIR)
SOURCES_GROUP = "sources"


def asset_key(stage: str, collection: str) -> dg.AssetKey:
    """`qdrant_notes`: one part, because the UI labels a box by a key's last part, and a
    box must say both its stage and its collection."""
    return dg.AssetKey(f"{stage}_{collection}")


def group_of(collection: str) -> str:
    """Each collection's chain is a group of its own (group names are letters, digits, _)."""
    return re.sub(r"\W", "_", collection)


def verify_op(collection: str) -> str:
    """The op of a collection's consistency checks (the verify job configures it)."""
    return f"verify_{group_of(collection)}"


def guard_key(collection: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(asset_key("changes", collection), GUARD)


def sync_assets(config: VectorSyncConfig, source: str) -> list[dg.AssetKey]:
    """What a sync of `source` materializes: its snapshot and the chains it feeds."""
    return [SNAPSHOT, *(asset_key(stage, collection)
                        for collection in config.sources[source].collections
                        for stage in STAGES)]


def collection_checks(collection: str) -> list[dg.AssetCheckKey]:
    """Every check of a collection's chain; a sync of a source feeding it runs them all."""
    qdrant = asset_key("qdrant", collection)
    return [guard_key(collection), *(dg.AssetCheckKey(qdrant, name)
                                     for name in (FAILED, *VERIFY_CHECKS))]


def sync_checks(config: VectorSyncConfig, source: str) -> list[dg.AssetCheckKey]:
    return [key for collection in config.sources[source].collections
            for key in collection_checks(collection)]


def sync_job_for(defs: dg.Definitions, config: VectorSyncConfig,
                 source: str) -> dg.JobDefinition:
    """The sync job as a run for `source` selects it (the CLI, the sensors' requests): the
    snapshot, the chains of the collections the source feeds, and their checks."""
    return defs.resolve_job_def(SYNC_JOB).get_subset(
        asset_selection=set(sync_assets(config, source)),
        asset_check_selection=set(sync_checks(config, source)))


def _operator_job(name: str, description: str, op_config: dict[str, dict[str, object]],
                  selection: dg.AssetSelection = SYNC_SELECTION,
                  ) -> dg.UnresolvedAssetJobDefinition:
    """A sync job for the launchpad, which does what its name says. Dagster does not show a
    partitioned job's run config on its launchpad until a partition is picked (the editor
    starts from the defaults of source_snapshot's config, which every job shares): the
    snapshot takes the job's preset (PRESETS) itself, so an unset value means "as the job
    says", and `op_config` (by op: the preset, and the values a person may edit) is what
    picking a partition writes into the editor."""
    return dg.define_asset_job(
        name, selection=selection, description=description, tags=OPERATOR,
        config={"ops": {op: {"config": values} for op, values in op_config.items()}})


def _snapshot_preset(job: str, **values: object) -> dict[str, dict[str, object]]:
    return {SNAPSHOT.path[-1]: {**PRESETS.get(job, {}), **values}}


def build_jobs(config: VectorSyncConfig) -> list[dg.UnresolvedAssetJobDefinition]:
    qdrant = [asset_key("qdrant", c) for c in config.collections]
    verify_ops = [verify_op(c) for c in config.collections]
    return [
        dg.define_asset_job(
            SYNC_JOB, selection=SYNC_SELECTION, tags=OPERATOR,
            description="Sync now: the chosen source (partition; a backfill over every "
            "partition syncs them all): snapshot, diff, embed, apply, then the checks. The "
            "sensors and the CLI run this job too. Optional run config of source_snapshot: "
            "`full` (ignore version hints), `doc_ids`, `retry_due`, `pending`. "
            "Collections the source does not feed are skipped."),
        _operator_job(
            RETRY_JOB, "Retry what is due: the failed documents of the chosen source(s) whose "
            "backoff has expired, and only those (their stored vectors are reused).",
            _snapshot_preset(RETRY_JOB)),
        _operator_job(
            SYNC_PENDING_JOB, "Sync every document of the chosen source(s) with a pending, "
            "stale or failed row, whether or not its retry is due.",
            _snapshot_preset(SYNC_PENDING_JOB)),
        _operator_job(
            RESYNC_JOB, "Re-sync named documents of the chosen source: read them again and "
            "apply what changed; the rest stay as they are. Run config: the ids under "
            "ops.source_snapshot.config.doc_ids, as `vector-sync status` and the "
            "failed_documents table show them.", _snapshot_preset(RESYNC_JOB, doc_ids=[])),
        _operator_job(
            REPAIR_JOB, "Repair the chosen source: prepare_repair rewrites the ledger from "
            "what Qdrant holds (and rebuilds a collection whose vectors do not fit the "
            "config), then the same run syncs the source, so Qdrant matches it. Run config: "
            "`prune: true` (ops.prepare_repair.config) first deletes points of sources and "
            "collections the config no longer names.",
            {PREPARE_REPAIR.path[-1]: {"prune": False}}, selection=dg.AssetSelection.all()),
        dg.define_asset_job(
            VERIFY_JOB, selection=dg.AssetSelection.checks(
                *(dg.AssetCheckKey(q, name) for q in qdrant for name in VERIFY_CHECKS)),
            tags=OPERATOR,
            config=dg.ConfigMapping(
                config_schema={"sources": dg.Field(
                    [str], default_value=[], description="sources to verify; [] for all")},
                config_fn=lambda config: {"ops": {op: {"config": {"sources": config["sources"]}}
                                                  for op in verify_ops}}),
            description="Verify Qdrant against every source as it is now and against the "
            "ledger (reads only). Config: `sources: [name, ...]` to verify only those. "
            "`vector-sync repair` or the repair job fixes what it finds."),
    ]
