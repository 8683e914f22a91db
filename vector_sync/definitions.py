"""Dagster entry point: `dg dev` ([tool.dg] in pyproject.toml), or `dagster dev -m
vector_sync.definitions`.

The asset graph is built from the config found via $VECTOR_SYNC_CONFIG or ./vector_sync.yaml:
one partition per source, one changes/embeddings/qdrant asset chain (and group) per
collection.
"""

from __future__ import annotations

import warnings

import dagster as dg

from vector_sync.config import config_path, load_config
from vector_sync.core.settings import ConfigError, ExecutionConfig, VectorSyncConfig
from vector_sync.defs.assets import collection_assets, source_snapshot_asset
from vector_sync.defs.checks import consistency_checks, guard_check
from vector_sync.defs.jobs import SYNC_JOB, build_jobs, sync_assets, sync_checks
from vector_sync.defs.resources import VectorSyncResource
from vector_sync.defs.sensors import build_sensors

# the mass-delete guard runs per source partition: a preview feature in Dagster 1.13
warnings.filterwarnings("ignore", category=dg.PreviewWarning,
                        message=".*partitions_def on an AssetCheckSpec.*")


def partitions_for(config: VectorSyncConfig) -> dg.StaticPartitionsDefinition:
    """One partition per source. Dagster runs one partitions definition per run, so every
    collection has them all; a run for a source selects only the chains it feeds."""
    return dg.StaticPartitionsDefinition(list(config.sources))


def build_definitions(path: str | None = None) -> dg.Definitions:
    file = config_path(path).resolve()
    config = load_config(file)
    partitions = partitions_for(config)
    return dg.Definitions(
        assets=[source_snapshot_asset(partitions), *(
            asset for collection in config.collections
            for asset in collection_assets(collection, partitions, config))],
        asset_checks=[check for collection in config.collections for check in (
            consistency_checks(collection), guard_check(collection, partitions))],
        jobs=build_jobs(config),
        sensors=build_sensors(config),
        resources={"vector_sync": VectorSyncResource(config_path=str(file))},
        executor=executor_for(config.execution),
    )


def executor_for(execution: ExecutionConfig) -> dg.ExecutorDefinition:
    """The executor is a deployment choice (`execution` in the config), not code."""
    if execution.executor == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"max_concurrent": execution.max_concurrent})
    if execution.executor == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError:
            raise ConfigError("execution.executor: celery needs dagster-celery: install "
                              "vector_sync with its `deploy` extra") from None
        return celery_executor.configured({"broker": execution.broker.get_secret_value(),
                                           "backend": execution.backend})
    return dg.in_process_executor


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()


def sync_job(config_file: str) -> dg.JobDefinition:
    """The sync job of a config file. By module path and argument, this is what a process
    that runs one step of a run (a multiprocess or Celery worker) rebuilds."""
    return build_definitions(config_file).resolve_job_def(SYNC_JOB)


def reconstructable_sync(config_file: str, source: str) -> dg.ReconstructableJob:
    """A sync of `source` for `dg.execute_job` through an instance with any executor: the
    job selected as the CLI and the sensors select it (the source's chains and their
    checks), rebuilt by every step's process from the config file."""
    config = load_config(config_file)
    job = dg.build_reconstructable_job(__name__, sync_job.__name__,
                                       reconstructable_args=(config_file,))
    return job.get_subset(asset_selection=set(sync_assets(config, source)),
                          asset_check_selection=set(sync_checks(config, source)))
