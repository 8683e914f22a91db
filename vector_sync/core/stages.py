"""The four sync stages as Dagster-free functions over the state dir's Parquet files.

The Dagster assets are thin wrappers around these; anything else that has to run a sync
outside an asset materialization (the repair job, benchmarks) calls the same functions.
Each returns the metadata its asset reports.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vector_sync.config import VectorSyncConfig
from vector_sync.core import engine
from vector_sync.core.embedder import Embedder
from vector_sync.core.ledger import Ledger
from vector_sync.core.state_files import (
    CHANGES,
    EMBEDDINGS,
    SNAPSHOT,
    StateFiles,
    read_expected,
    read_rows,
    write_expected,
    write_rows,
)
from vector_sync.core.store import open_store
from vector_sync.sources import build_source

log = logging.getLogger(__name__)


class ChunkBudgetError(Exception):
    """Chunks would be longer than the model reads: they would be silently truncated."""


@contextmanager
def open_ledger(config: VectorSyncConfig) -> Iterator[Ledger]:
    ledger = Ledger(config.state.ledger_sqlalchemy_url())
    try:
        yield ledger
    finally:
        ledger.close()


def spec_for(config: VectorSyncConfig, source: str, collection: str) -> engine.CollectionSpec:
    return next(s for s in engine.collection_specs(config, source) if s.name == collection)


def throughput(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def snapshot(config: VectorSyncConfig, source_name: str, full: bool = False) -> dict[str, Any]:
    """Raises SourceUnavailable (before replacing the previous snapshot) if the source is
    down."""
    source = build_source(source_name, config.sources[source_name])
    path = StateFiles(config.state.dir).snapshot(source_name)
    started = time.perf_counter()
    states: Counter[str] = Counter()

    def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            states[row["state"]] += 1
            yield row

    files = StateFiles(config.state.dir)
    with open_ledger(config) as ledger:
        specs = engine.collection_specs(config, source_name)
        expected = known_everywhere(files, source_name, specs)
        write_rows(path, SNAPSHOT, counted(
            engine.snapshot_rows(source, ledger, specs, full, expected)))
    seconds = engine.timed(started)
    total = sum(states.values())
    log.info("snapshot of %s: %d documents (%d read, %d unchanged hint, %d failed) in %.2f s",
             source_name, total, states["read"], states["skipped"], states["failed"], seconds)
    return {"documents": total, "read": states["read"], "skipped_unchanged": states["skipped"],
            "failed": states["failed"], "duration_s": seconds,
            "documents_per_s": throughput(total, seconds), "path": str(path)}


def known_everywhere(files: StateFiles, source: str,
                      specs: list[engine.CollectionSpec]) -> set[str]:
    """Documents with an expected state in every collection: only these may go unread."""
    known: set[str] | None = None
    for spec in specs:
        ids = set(read_expected(files.expected(spec.name, source)))
        known = ids if known is None else known & ids
    return known or set()


def changes(config: VectorSyncConfig, source: str, collection: str) -> dict[str, Any]:
    spec = spec_for(config, source, collection)
    files = StateFiles(config.state.dir)
    started = time.perf_counter()
    embedder = Embedder(config.embedding_for(collection))
    limit = embedder.max_tokens()
    if spec.chunking.max_tokens > limit:
        raise ChunkBudgetError(
            f"collections.{collection}.chunking.max_tokens is {spec.chunking.max_tokens} but "
            f"model {spec.model} reads at most {limit} tokens"
        )
    diff = engine.Diff()
    with open_ledger(config) as ledger:
        rows = ledger.rows(source, collection)
    differ = engine.Differ(spec, embedder.count_tokens(),
                           read_expected(files.expected(collection, source)))
    write_rows(files.changes(collection, source), CHANGES,
               differ.changes(read_rows(files.snapshot(source)), rows, diff))
    files.change_counts(collection, source).write_text(json.dumps(diff.as_dict()))
    write_expected(files.expected(collection, source), differ.expected)
    log.info("changes for %s from %s: %s", collection, source, diff.as_dict())
    return {**diff.as_dict(), "duration_s": engine.timed(started)}


def embeddings(config: VectorSyncConfig, source: str, collection: str) -> dict[str, Any]:
    files = StateFiles(config.state.dir)
    path = files.embeddings(collection, source)
    reusable = engine.reusable_vectors(read_rows(path)) if path.exists() else {}
    embedder = Embedder(config.embedding_for(collection))
    stats: Counter[str] = Counter()
    started = time.perf_counter()
    write_rows(path, EMBEDDINGS, engine.embedding_rows(
        read_rows(files.changes(collection, source)), embedder.embed, reusable, stats))
    seconds = engine.timed(started)
    embedded = stats["chunks_embedded"]
    log.info("embedded %d chunks (%d reused) for %s in %.1f s", embedded,
             stats["chunks_reused"], collection, seconds)
    return {"chunks_embedded": embedded, "chunks_reused": stats["chunks_reused"],
            "duration_s": seconds, "chunks_per_s": throughput(embedded, seconds),
            "model": config.embedding_for(collection).model}


def apply(config: VectorSyncConfig, source: str, collection: str) -> engine.ApplyReport:
    files = StateFiles(config.state.dir)
    spec = spec_for(config, source, collection)
    started = time.perf_counter()
    vectors = read_rows(files.embeddings(collection, source))
    first = next(read_rows(files.embeddings(collection, source), ["vector"]), None)
    dimension = len(first["vector"]) if first else None
    with open_ledger(config) as ledger, open_store(config.qdrant, config.state) as store:
        applier = engine.Applier(store, ledger, source, spec,
                                 batch_points=config.qdrant.batch_size)
        report = applier.apply(read_rows(files.changes(collection, source)), vectors, dimension)
        planned = json.loads(files.change_counts(collection, source).read_text())
        report.counts["unchanged"] = planned["unchanged"]
        # every document now matches this config in the ledger, or is marked failed
        ledger.set_state(source, engine.config_state_key(collection), spec.fingerprint)
    report.seconds = engine.timed(started)
    for doc_id, reason in report.failures[:20]:
        log.warning("failed %s/%s: %s", source, doc_id, reason)
    return report


def sync(config: VectorSyncConfig, source: str, full: bool = False) -> dict[str, Any]:
    """All four stages for one source, in order (what one Dagster run does)."""
    snapshot(config, source, full)
    counts: dict[str, Any] = {}
    for collection in config.sources[source].collections:
        changes(config, source, collection)
        embedded = embeddings(config, source, collection)
        report = apply(config, source, collection)
        counts[collection] = {**{k: report.counts[k] for k in engine.OUTCOMES},
                              "chunks_embedded": embedded["chunks_embedded"]}
    return counts
