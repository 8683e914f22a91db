"""Jobs an operator launches from the UI: sync chosen sources now, sync everything pending,
re-sync named documents. Each syncs in-process through the same stages as the assets and
records a materialization of every qdrant/<collection> partition it touched, so the asset
view shows what changed and why.
"""

from collections import defaultdict
from collections.abc import Mapping

import dagster as dg

from vector_sync.config import VectorSyncConfig
from vector_sync.core import stages
from vector_sync.defs.assets import QDRANT_POOL
from vector_sync.defs.resources import VectorSyncResource
from vector_sync.sources import SourceUnavailable


class SyncNowConfig(dg.Config):
    sources: list[str] = []  # empty: every source
    full: bool = False  # read every document, ignoring the version hints
    allow_mass_delete: bool = False


class ResyncConfig(dg.Config):
    documents: list[str]  # "source/doc_id", e.g. "notes/recipes/bread.md"


Targets = Mapping[str, list[str] | None]  # source -> documents to read, None: the whole source


def _sync_targets(context: dg.OpExecutionContext, settings: VectorSyncConfig,
                  targets: Targets, full: bool = False,
                  allow_mass_delete: bool = False) -> dg.Output[None]:
    """Sync each source of `targets`; one source failing does not stop the others."""
    errors: dict[str, str] = {}
    for source, only in targets.items():
        what = "every document" if only is None else f"{len(only)} document(s)"
        context.log.info("syncing %s: %s", source, what)
        try:
            counts = stages.sync(settings, source, full, allow_mass_delete, only)
        except (stages.MassDeleteRefused, SourceUnavailable) as error:
            errors[source] = str(error)
            context.log.error("%s: %s", source, error)
            continue
        for collection, numbers in counts.items():
            context.log_event(dg.AssetMaterialization(
                asset_key=dg.AssetKey(["qdrant", collection]), partition=source,
                metadata={**numbers, "trigger": context.job_name}))
    if errors:
        raise dg.Failure(description=f"could not sync: {errors}")
    return dg.Output(None, metadata={"sources": ", ".join(targets) or "none"})


def _unknown(settings: VectorSyncConfig, sources: list[str]) -> None:
    unknown = sorted(set(sources) - set(settings.sources))
    if unknown:
        raise dg.Failure(description=f"unknown source(s) {unknown}; configured: "
                         f"{', '.join(settings.sources)}")


@dg.op(pool=QDRANT_POOL)
def sync_sources(context: dg.OpExecutionContext, config: SyncNowConfig,
                 vector_sync: VectorSyncResource) -> dg.Output[None]:
    settings = vector_sync.load()
    _unknown(settings, config.sources)
    chosen = config.sources or list(settings.sources)
    return _sync_targets(context, settings, dict.fromkeys(chosen), config.full,
                         config.allow_mass_delete)


@dg.op(pool=QDRANT_POOL)
def sync_pending_rows(context: dg.OpExecutionContext,
                      vector_sync: VectorSyncResource) -> dg.Output[None]:
    settings = vector_sync.load()
    targets: dict[str, list[str] | None] = {}
    for source in settings.sources:
        pending = stages.pending_documents(settings, source)
        if pending:
            targets[source] = pending
    if not targets:
        context.log.info("nothing pending: every ledger row is synced")
    return _sync_targets(context, settings, targets)


def parse_documents(documents: list[str], settings: VectorSyncConfig) -> dict[str, list[str]]:
    """"source/doc_id" strings grouped by source (doc_ids may contain '/')."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for entry in documents:
        source, _, doc_id = entry.partition("/")
        if not doc_id:
            raise dg.Failure(description=f"{entry!r} is not of the form source/doc_id")
        by_source[source].append(doc_id)
    _unknown(settings, list(by_source))
    return dict(by_source)


@dg.op(pool=QDRANT_POOL)
def resync_listed_documents(context: dg.OpExecutionContext, config: ResyncConfig,
                            vector_sync: VectorSyncResource) -> dg.Output[None]:
    settings = vector_sync.load()
    return _sync_targets(context, settings, parse_documents(config.documents, settings))


@dg.job(description="Sync now: the chosen sources (config `sources`; empty means all), "
        "reading only what changed unless `full`.")
def sync_now() -> None:
    sync_sources()


@dg.job(description="Sync all pending: every document with a pending, stale or failed row, "
        "in every source, whether or not its retry is due.")
def sync_all_pending() -> None:
    sync_pending_rows()


@dg.job(description="Re-sync these documents: config `documents` lists source/doc_id; each "
        "is read and rewritten where it differs, or deleted if the source no longer has it.")
def resync_documents() -> None:
    resync_listed_documents()


OPERATOR_JOBS = [sync_now, sync_all_pending, resync_documents]
