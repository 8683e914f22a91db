"""The jobs, and what a run for one source selects.

Every sync is a run of an asset job over one source partition, selecting only the snapshot
and the chains of the collections that source feeds, plus their mass-delete guards (never
the slower consistency checks). The CLI, the sensors and the launchpad all run it so.
"""

from __future__ import annotations

import dagster as dg

from vector_sync.core.settings import VectorSyncConfig

SYNC_JOB = "sync"  # the sync assets of one source partition, with the mass-delete guard
SYNC_PENDING_JOB = "sync_all_pending"  # the same, reading only rows not synced
VERIFY_JOB = "verify"  # the consistency checks of one source partition
GUARD = "mass_delete_guard"
STAGES = ("changes", "embeddings", "qdrant")
SNAPSHOT = dg.AssetKey("source_snapshot")


def guard_key(collection: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey(["changes", collection]), GUARD)


def sync_assets(config: VectorSyncConfig, source: str) -> list[dg.AssetKey]:
    """What a sync of `source` materializes: its snapshot and the chains it feeds."""
    return [SNAPSHOT, *(dg.AssetKey([stage, collection])
                        for collection in config.sources[source].collections
                        for stage in STAGES)]


def sync_checks(config: VectorSyncConfig, source: str) -> list[dg.AssetCheckKey]:
    return [guard_key(collection) for collection in config.sources[source].collections]


def build_jobs(config: VectorSyncConfig) -> list[dg.UnresolvedAssetJobDefinition]:
    guards = [guard_key(c) for c in config.collections]
    qdrant = [dg.AssetKey(["qdrant", c]) for c in config.collections]
    sync_selection = dg.AssetSelection.all().without_checks() | dg.AssetSelection.checks(*guards)
    return [
        dg.define_asset_job(
            SYNC_JOB, selection=sync_selection,
            description="Sync the chosen source (partition): snapshot, diff, embed, apply, with "
            "the mass-delete guard. Run config of source_snapshot: `full` (ignore version "
            "hints), `doc_ids` (re-sync only these documents), `retry_due` (only failed "
            "documents whose retry is due), `pending` (every document not synced), `repair` "
            "(first rewrite the ledger from what Qdrant holds). Collections the source does "
            "not feed are skipped."),
        dg.define_asset_job(
            SYNC_PENDING_JOB, selection=sync_selection,
            config={"ops": {"source_snapshot": {"config": {"pending": True}}}},
            description="Sync every document of the chosen source(s) with a pending, stale or "
            "failed row, whether or not its retry is due (a backfill over all partitions "
            "does every source)."),
        dg.define_asset_job(
            VERIFY_JOB, selection=dg.AssetSelection.checks_for_assets(*qdrant),
            description="Verify Qdrant against the source as it is now and against the ledger "
            "(reads only; `vector-sync repair` or a sync run with `repair: true` fixes)."),
    ]
