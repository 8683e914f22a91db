"""The asset graph, partitioned by source:

source_snapshot -> changes/<collection> -> embeddings/<collection> -> qdrant/<collection>

Assets exchange Parquet files under the state dir (paths derived from the partition), so
each step is inspectable, and `qdrant/<collection>` is the only one that writes Qdrant.
"""

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from vector_sync.config import VectorSyncConfig
from vector_sync.core import engine
from vector_sync.core.embedder import Embedder
from vector_sync.core.ledger import Ledger
from vector_sync.core.state_files import (
    CHANGES,
    EMBEDDINGS,
    SNAPSHOT,
    StateFiles,
    read_rows,
    write_rows,
)
from vector_sync.core.store import open_store
from vector_sync.defs.resources import VectorSyncResource
from vector_sync.sources import SourceUnavailable, build_source

QDRANT_POOL = "qdrant"  # embedded Qdrant admits one process at a time

class SnapshotConfig(dg.Config):
    full: bool = False  # read every document, ignoring the cheap version hints

@contextmanager
def open_ledger(config: VectorSyncConfig) -> Iterator[Ledger]:
    ledger = Ledger(config.state.ledger_sqlalchemy_url())
    try:
        yield ledger
    finally:
        ledger.close()

def _throughput(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0

def _skip(context: dg.AssetExecutionContext, collection: str) -> dg.MaterializeResult:
    context.log.info("source %s does not feed collection %s", context.partition_key, collection)
    return dg.MaterializeResult(metadata={"fed_by_source": False})

def source_snapshot_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key="source_snapshot", partitions_def=partitions, group_name="sync", kinds={"parquet"},
        description="Every document of the source with its version hint; documents whose hint "
        "is unchanged since they were synced are listed but not read.",
    )
    def source_snapshot(
        context: dg.AssetExecutionContext, config: SnapshotConfig,
        vector_sync: VectorSyncResource,
    ) -> dg.MaterializeResult:
        settings = vector_sync.load()
        name = context.partition_key
        source = build_source(name, settings.sources[name])
        path = StateFiles(settings.state.dir).snapshot(name)
        started = time.perf_counter()
        states: Counter[str] = Counter()

        def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for row in rows:
                states[row["state"]] += 1
                yield row

        with open_ledger(settings) as ledger:
            specs = engine.collection_specs(settings, name)
            try:
                write_rows(path, SNAPSHOT, counted(
                    engine.snapshot_rows(source, ledger, specs, full=config.full)))
            except SourceUnavailable as error:
                raise dg.Failure(description=str(error)) from None
        seconds = engine.timed(started)
        total = sum(states.values())
        context.log.info("snapshot of %s: %d documents (%d read, %d unchanged hint, %d failed)"
                         " in %.2f s", name, total, states["read"], states["skipped"],
                         states["failed"], seconds)
        return dg.MaterializeResult(metadata={
            "documents": total, "read": states["read"], "skipped_unchanged": states["skipped"],
            "failed": states["failed"], "duration_s": seconds,
            "documents_per_s": _throughput(total, seconds),
            "path": dg.MetadataValue.path(str(path)),
        })

    return source_snapshot

def collection_assets(collection: str, partitions: dg.PartitionsDefinition,
                      ) -> list[dg.AssetsDefinition]:
    changes_key = dg.AssetKey(["changes", collection])
    embeddings_key = dg.AssetKey(["embeddings", collection])
    common: dict[str, Any] = {"partitions_def": partitions, "group_name": "sync"}

    @dg.asset(
        key=changes_key, deps=["source_snapshot"], kinds={"parquet"}, **common,
        description=f"What must change in Qdrant collection {collection!r} (the dry-run "
        "preview: added, updated, payload-only, deleted), with the chunks to embed.",
    )
    def changes(context: dg.AssetExecutionContext,
                vector_sync: VectorSyncResource) -> dg.MaterializeResult:
        settings = vector_sync.load()
        source = context.partition_key
        if collection not in settings.sources[source].collections:
            return _skip(context, collection)
        spec = next(s for s in engine.collection_specs(settings, source) if s.name == collection)
        files = StateFiles(settings.state.dir)
        started = time.perf_counter()
        embedder = Embedder(settings.embedding_for(collection))
        check_chunk_budget(spec, embedder)
        differ = engine.Differ(spec, embedder.count_tokens())
        diff = engine.Diff()
        with open_ledger(settings) as ledger:
            rows = ledger.rows(source, collection)
        write_rows(files.changes(collection, source), CHANGES,
                   differ.changes(read_rows(files.snapshot(source)), rows, diff))
        files.change_counts(collection, source).write_text(json.dumps(diff.as_dict()))
        seconds = engine.timed(started)
        context.log.info("changes for %s from %s: %s", collection, source, diff.as_dict())
        return dg.MaterializeResult(metadata={**diff.as_dict(), "duration_s": seconds})

    @dg.asset(
        key=embeddings_key, deps=[changes_key], kinds={"parquet"}, **common,
        description=f"Vectors for the changed chunks of {collection!r} only; vectors of an "
        "identical earlier version are reused instead of re-embedded.",
    )
    def embeddings(context: dg.AssetExecutionContext,
                   vector_sync: VectorSyncResource) -> dg.MaterializeResult:
        settings = vector_sync.load()
        source = context.partition_key
        if collection not in settings.sources[source].collections:
            return _skip(context, collection)
        files = StateFiles(settings.state.dir)
        path = files.embeddings(collection, source)
        reusable = engine.reusable_vectors(read_rows(path)) if path.exists() else {}
        embedder = Embedder(settings.embedding_for(collection))
        stats: Counter[str] = Counter()
        started = time.perf_counter()
        write_rows(path, EMBEDDINGS, engine.embedding_rows(
            read_rows(files.changes(collection, source)), embedder.embed, reusable, stats))
        seconds = engine.timed(started)
        embedded = stats["chunks_embedded"]
        context.log.info("embedded %d chunks (%d reused) for %s in %.1f s", embedded,
                         stats["chunks_reused"], collection, seconds)
        return dg.MaterializeResult(metadata={
            "chunks_embedded": embedded, "chunks_reused": stats["chunks_reused"],
            "duration_s": seconds, "chunks_per_s": _throughput(embedded, seconds),
            "model": settings.embedding_for(collection).model,
        })

    @dg.asset(
        key=dg.AssetKey(["qdrant", collection]), deps=[embeddings_key], kinds={"qdrant"},
        pool=QDRANT_POOL, **common,
        description=f"The Qdrant collection {collection!r}: applies the change set "
        "(upsert, set_payload, delete) and records each acknowledged write in the ledger.",
    )
    def qdrant(context: dg.AssetExecutionContext,
               vector_sync: VectorSyncResource) -> dg.MaterializeResult:
        settings = vector_sync.load()
        source = context.partition_key
        if collection not in settings.sources[source].collections:
            return _skip(context, collection)
        report = apply_collection(settings, source, collection)
        for doc_id, reason in report.failures[:20]:
            context.log.warning("failed %s/%s: %s", source, doc_id, reason)
        return dg.MaterializeResult(metadata={
            **report.as_dict(), "duration_s": report.seconds,
            "points_per_s": _throughput(report.points_written, report.seconds),
        })

    return [changes, embeddings, qdrant]

def check_chunk_budget(spec: engine.CollectionSpec, embedder: Embedder) -> None:
    limit = embedder.max_tokens()
    if spec.chunking.max_tokens > limit:
        raise dg.Failure(
            description=f"collections.{spec.name}.chunking.max_tokens is "
            f"{spec.chunking.max_tokens} but model {spec.model} reads at most {limit} tokens; "
            "longer chunks would be silently truncated"
        )

def apply_collection(settings: VectorSyncConfig, source: str,
                     collection: str) -> engine.ApplyReport:
    files = StateFiles(settings.state.dir)
    spec = next(s for s in engine.collection_specs(settings, source) if s.name == collection)
    started = time.perf_counter()
    vectors = read_rows(files.embeddings(collection, source))
    first = next(read_rows(files.embeddings(collection, source), ["vector"]), None)
    dimension = len(first["vector"]) if first else None
    with open_ledger(settings) as ledger, open_store(settings.qdrant, settings.state) as store:
        applier = engine.Applier(store, ledger, source, spec,
                                 batch_points=settings.qdrant.batch_size)
        report = applier.apply(read_rows(files.changes(collection, source)), vectors, dimension)
        planned = json.loads(files.change_counts(collection, source).read_text())
        report.counts["unchanged"] = planned["unchanged"]
        # every document now matches this config in the ledger, or is marked failed
        ledger.set_state(source, engine.config_state_key(collection), spec.fingerprint)
    report.seconds = engine.timed(started)
    return report
