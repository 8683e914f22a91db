"""Dagster entry point: `dagster dev -m vector_sync.definitions` (see workspace.yaml).

The asset graph is built from the config found via $VECTOR_SYNC_CONFIG or ./vector_sync.yaml:
one partition per source, one changes/embeddings/qdrant asset chain per collection.
"""

from __future__ import annotations

import warnings

import dagster as dg

from vector_sync.config import VectorSyncConfig, config_path, load_config
from vector_sync.defs.assets import collection_assets, source_snapshot_asset
from vector_sync.defs.checks import GUARD, consistency_checks, guard_check, repair
from vector_sync.defs.jobs import SYNC_JOB, VERIFY_JOB
from vector_sync.defs.operator_jobs import OPERATOR_JOBS
from vector_sync.defs.resources import VectorSyncResource
from vector_sync.defs.sensors import build_sensors

# checks run per source partition: a preview feature in Dagster 1.13, and the one that fits
warnings.filterwarnings("ignore", category=dg.PreviewWarning,
                        message=".*partitions_def on an AssetCheckSpec.*")


def partitions_for(config: VectorSyncConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(config.sources))


def build_assets(config: VectorSyncConfig) -> list[dg.AssetsDefinition]:
    partitions = partitions_for(config)
    assets = [source_snapshot_asset(partitions)]
    for collection in config.collections:
        assets.extend(collection_assets(collection, partitions, config))
    return assets


def build_checks(config: VectorSyncConfig) -> list[dg.AssetChecksDefinition]:
    partitions = partitions_for(config)
    return [check for collection in config.collections for check in (
        consistency_checks(collection, partitions), guard_check(collection, partitions))]


def build_jobs(config: VectorSyncConfig) -> list[dg.UnresolvedAssetJobDefinition]:
    guards = [dg.AssetCheckKey(dg.AssetKey(["changes", c]), GUARD) for c in config.collections]
    qdrant = [dg.AssetKey(["qdrant", c]) for c in config.collections]
    return [
        dg.define_asset_job(
            SYNC_JOB,
            selection=dg.AssetSelection.all().without_checks() | dg.AssetSelection.checks(*guards),
            description="Sync the chosen source (partition): snapshot, diff, embed, apply; "
            "the mass-delete guard runs, the slower consistency checks do not."),
        dg.define_asset_job(
            VERIFY_JOB,
            selection=dg.AssetSelection.checks_for_assets(*qdrant),
            description="Verify Qdrant against the source and the ledger (writes nothing to "
            "Qdrant; rewrites ledger rows that disagree with Qdrant)."),
    ]


def build_definitions(path: str | None = None) -> dg.Definitions:
    file = config_path(path).resolve()
    config = load_config(file)
    return dg.Definitions(
        assets=build_assets(config),
        asset_checks=build_checks(config),
        jobs=[*build_jobs(config), repair, *OPERATOR_JOBS],
        sensors=build_sensors(config),
        resources={"vector_sync": VectorSyncResource(config_path=str(file))},
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
