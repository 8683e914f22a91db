"""Dagster entry point: `dg dev` ([tool.dg] in pyproject.toml), or `dagster dev -m
vector_sync.definitions`.

The asset graph is built from the config found via $VECTOR_SYNC_CONFIG or ./vector_sync.yaml:
one partition per source, one changes/embeddings/qdrant asset chain (and group) per
collection. The pieces are made in `vector_sync.defs`; this module only puts them together.
"""

from __future__ import annotations

import warnings

import dagster as dg

from vector_sync.config import config_path, load_config
from vector_sync.defs.assets import collection_assets, partitions_for, source_snapshot_asset
from vector_sync.defs.checks import consistency_checks, guard_check
from vector_sync.defs.executors import executor_for
from vector_sync.defs.jobs import build_jobs
from vector_sync.defs.repair import prepare_repair_asset
from vector_sync.defs.resources import VectorSyncResource
from vector_sync.defs.sensors import build_sensors

# the mass-delete guard runs per source partition: a preview feature in Dagster 1.13
warnings.filterwarnings("ignore", category=dg.PreviewWarning,
                        message=".*partitions_def on an AssetCheckSpec.*")


def build_definitions(path: str | None = None) -> dg.Definitions:
    file = config_path(path).resolve()
    config = load_config(file)
    partitions = partitions_for(config)
    return dg.Definitions(
        assets=[prepare_repair_asset(partitions), source_snapshot_asset(partitions), *(
            asset for collection in config.collections
            for asset in collection_assets(collection, partitions, config))],
        asset_checks=[check for collection in config.collections for check in (
            consistency_checks(collection), guard_check(collection, partitions))],
        jobs=build_jobs(config),
        sensors=build_sensors(config),
        resources={"vector_sync": VectorSyncResource(config_path=str(file))},
        executor=executor_for(config.execution),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
