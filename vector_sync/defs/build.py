"""The one builder of vector_sync's definitions, for both of its entry points: the code
location of a config file (`vector_sync.definitions`) and the component a Dagster project
declares in a `defs.yaml` (`vector_sync.VectorSyncComponent`).

Everything made here is named through `Names`: with a key prefix, the asset keys, checks,
jobs, sensors, ops, groups and the resource key of one configuration differ from another's,
so two configurations (two teams' vaults) share a code location.
"""

from __future__ import annotations

import warnings

import dagster as dg

from vector_sync.config import VectorSyncConfig, config_path
from vector_sync.defs.assets import collection_assets, partitions_for, source_snapshot_asset
from vector_sync.defs.checks import consistency_checks, guard_check
from vector_sync.defs.events import events_definitions
from vector_sync.defs.executors import executor_for
from vector_sync.defs.jobs import Names, build_jobs
from vector_sync.defs.migration import migration_definitions
from vector_sync.defs.repair import prepare_repair_asset
from vector_sync.defs.resources import VectorSyncResource
from vector_sync.defs.sensors import build_sensors

# the mass-delete guard runs per source partition: a preview feature in Dagster 1.13
warnings.filterwarnings("ignore", category=dg.PreviewWarning,
                        message=".*partitions_def on an AssetCheckSpec.*")


def build_definitions(config_file: str | None = None, prefix: str | None = None,
                      group: str | None = None,
                      resource: VectorSyncResource | None = None,
                      config: VectorSyncConfig | None = None,
                      default_executor: bool = False) -> dg.Definitions:
    """The definitions of one configuration: `config_file`, or a `resource` that names it
    (the component's, with its inline config and a deployment's overrides) together with the
    `config` it loads. The executor the config asks for is set on every job; it is the code
    location's default (what the UI's Materialize runs with) only with `default_executor`:
    a project holding these definitions among its own keeps its own default."""
    if resource is None:
        resource = VectorSyncResource(config_path=str(config_path(config_file).resolve()))
    # the config as written decides the graph's shape; a deployment's overrides (and the
    # environment variables they name) apply when a step loads it
    config = config or resource.load(overrides=False)
    names = Names(prefix=prefix, group=group)
    partitions = partitions_for(config)
    executor = executor_for(config.execution)
    return dg.Definitions.merge(events_definitions(config, names),
                                migration_definitions(config, names), dg.Definitions(
        assets=[prepare_repair_asset(partitions, names), source_snapshot_asset(partitions, names),
                *(asset for collection in config.collections
                  for asset in collection_assets(collection, partitions, config, names))],
        asset_checks=[check for collection in config.collections for check in (
            consistency_checks(collection, names), guard_check(collection, partitions, names))],
        jobs=build_jobs(config, names, executor),
        sensors=build_sensors(config, names),
        resources={names.resource_key: resource},
        executor=executor if default_executor else None,
    ))

