"""Dagster entry point: `dagster dev -m vector_sync.definitions` (see workspace.yaml).

The asset graph is built from the config found via $VECTOR_SYNC_CONFIG or ./vector_sync.yaml:
one partition per source, one changes/embeddings/qdrant asset chain per collection.
"""

from __future__ import annotations

import dagster as dg

from vector_sync.config import VectorSyncConfig, config_path, load_config
from vector_sync.defs.assets import collection_assets, source_snapshot_asset
from vector_sync.defs.resources import VectorSyncResource


def build_assets(config: VectorSyncConfig) -> list[dg.AssetsDefinition]:
    partitions = dg.StaticPartitionsDefinition(list(config.sources))
    assets = [source_snapshot_asset(partitions)]
    for collection in config.collections:
        assets.extend(collection_assets(collection, partitions))
    return assets


def build_definitions(path: str | None = None) -> dg.Definitions:
    file = config_path(path).resolve()
    config = load_config(file)
    return dg.Definitions(
        assets=build_assets(config),
        resources={"vector_sync": VectorSyncResource(config_path=str(file))},
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
