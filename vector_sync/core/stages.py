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
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from vector_sync.config import DEFAULT_MODEL, VectorSyncConfig
from vector_sync.core import engine
from vector_sync.core.embedder import Embedder
from vector_sync.core.ledger import Ledger
from vector_sync.core.model_files import DIMENSION
from vector_sync.core.state_files import (
    CHANGES,
    EMBEDDINGS,
    SNAPSHOT,
    StateFiles,
    expected_ids,
    read_expected,
    read_rows,
    write_expected,
    write_rows,
)
from vector_sync.core.store import QdrantUnavailable, open_store
from vector_sync.core.verify import Verification, Verifier, reconcile_ledger
from vector_sync.sources import SourceUnavailable, build_source, source_fields

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


def snapshot(config: VectorSyncConfig, source_name: str, full: bool = False,
             only: Collection[str] | None = None) -> dict[str, Any]:
    """`only`: read exactly these documents and keep the rest as the ledger has them (see
    engine.targeted_snapshot_rows). Raises SourceUnavailable (before replacing the previous
    snapshot) if the source is down."""
    source = build_source(source_name, config.sources[source_name],
                          source_fields(config, source_name))
    files = StateFiles(config.state.dir)
    path = files.snapshot(source_name)
    started = time.perf_counter()
    states: Counter[str] = Counter()

    def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            states[row["state"]] += 1
            yield row

    with open_ledger(config) as ledger:
        specs = engine.collection_specs(config, source_name)
        expected = known_everywhere(files, source_name, specs)
        rows = engine.snapshot_rows(source, ledger, specs, full, expected) if only is None \
            else engine.targeted_snapshot_rows(source, ledger, only)
        write_rows(path, SNAPSHOT, counted(rows))
        detection = engine.note_checkpoint(ledger, source)
    seconds = engine.timed(started)
    total = sum(states.values())
    log.info("snapshot of %s: %d documents (%d read, %d unchanged hint, %d failed) in %.2f s",
             source_name, total, states["read"], states["skipped"], states["failed"], seconds)
    return {"documents": total, "read": states["read"], "skipped_unchanged": states["skipped"],
            "targeted": only is not None,
            "failed": states["failed"], "duration_s": seconds,
            "documents_per_s": throughput(total, seconds), "path": str(path), **detection}


def due_for_retry(config: VectorSyncConfig, source: str) -> list[str]:
    """Documents of `source` with a failed row whose backoff has expired."""
    with open_ledger(config) as ledger:
        rows = ledger.due_for_retry(datetime.now(UTC), source)
    return sorted({row.doc_id for row in rows})


def pending_documents(config: VectorSyncConfig, source: str) -> list[str]:
    """Documents of `source` with any row not synced (pending, stale or failed, due or not)."""
    with open_ledger(config) as ledger:
        return sorted({row.doc_id for row in ledger.source_rows(source)
                       if row.status != "synced"})


def known_everywhere(files: StateFiles, source: str,
                      specs: list[engine.CollectionSpec]) -> set[str]:
    """Documents with an expected state in every collection: only these may go unread."""
    known: set[str] | None = None
    for spec in specs:
        ids = expected_ids(files.expected(spec.name, source))
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


QDRANT_WRITES = ("added", "updated", "deleted", "payload_updated")


def apply(config: VectorSyncConfig, source: str, collection: str,
          may_retry_step: bool = False) -> engine.ApplyReport:
    """`may_retry_step`: raise engine.QdrantTransientError on a Qdrant error (the caller
    retries the whole step; what was acknowledged is not written again) instead of marking
    the documents failed."""
    files = StateFiles(config.state.dir)
    spec = spec_for(config, source, collection)
    started = time.perf_counter()
    planned = json.loads(files.change_counts(collection, source).read_text())
    vectors = read_rows(files.embeddings(collection, source))
    first = next(read_rows(files.embeddings(collection, source), ["vector"]), None)
    dimension = len(first["vector"]) if first else None
    # opening embedded Qdrant loads every stored point: not for a run with nothing to write
    needs_qdrant = any(planned[k] for k in QDRANT_WRITES)
    with open_ledger(config) as ledger, ExitStack() as opened:
        store, unavailable = None, None
        if needs_qdrant:
            try:
                store = opened.enter_context(open_store(config.qdrant, config.state))
            except QdrantUnavailable as error:
                if may_retry_step:
                    raise
                unavailable = str(error)  # last attempt: the documents are marked failed
        applier = engine.Applier(store, ledger, source, spec,
                                 batch_points=config.qdrant.batch_size, retry=config.retry,
                                 may_retry_step=may_retry_step, unavailable=unavailable)
        report = applier.apply(read_rows(files.changes(collection, source)), vectors, dimension)
        report.counts["unchanged"] = planned["unchanged"]
        # every document now matches this config in the ledger, or is marked failed
        ledger.set_state(source, engine.config_state_key(collection), spec.fingerprint)
        engine.record_checkpoint(ledger, source, collection)
        write_back(config, source, collection, ledger)
    report.seconds = engine.timed(started)
    for doc_id, reason in report.failures[:20]:
        log.warning("failed %s/%s: %s", source, doc_id, reason)
    return report


class MassDeleteRefused(Exception):
    """The mass-delete guard stopped a sync before anything was deleted."""


def write_back(config: VectorSyncConfig, source: str, collection: str, ledger: Ledger) -> None:
    """Sources that record sync status in their own documents (MongoDB's write_back)."""
    settings = config.sources[source]
    if settings.kind != "mongodb" or not settings.write_back:
        return
    from vector_sync.sources.mongodb import outcomes_from_ledger, write_back_status

    changed = (row["doc_id"] for row in read_rows(
        StateFiles(config.state.dir).changes(collection, source), ["doc_id"]))
    try:
        write_back_status(source, settings, outcomes_from_ledger(
            collection, changed, ledger.rows(source, collection)))
    except SourceUnavailable as error:  # Qdrant and the ledger are right already
        log.warning("could not write sync status back to %s: %s", source, error)


def sync(config: VectorSyncConfig, source: str, full: bool = False,
         allow_mass_delete: bool = False, only: Collection[str] | None = None) -> dict[str, Any]:
    """All four stages for one source, in order (what one Dagster run does); `only` as in
    `snapshot`."""
    snapshot(config, source, full, only)
    counts: dict[str, Any] = {}
    for collection in config.sources[source].collections:
        planned = changes(config, source, collection)
        problem = mass_delete(planned, config.sources[source].max_delete_fraction)
        if problem and not allow_mass_delete:
            raise MassDeleteRefused(f"{source}/{collection}: {problem}; nothing was deleted")
        embedded = embeddings(config, source, collection)
        report = apply(config, source, collection)
        counts[collection] = {**{k: report.counts[k] for k in engine.OUTCOMES},
                              "chunks_embedded": embedded["chunks_embedded"]}
    return counts


def model_dimension(config: VectorSyncConfig, collection: str) -> int:
    """The configured model's vector size, without loading the default model."""
    embedding = config.embedding_for(collection)
    if embedding.model == DEFAULT_MODEL and embedding.model_path is None:
        return DIMENSION
    return Embedder(embedding).dimension


def verify(config: VectorSyncConfig, source: str, collection: str,
           sample: float | None = None) -> Verification:
    """Qdrant against the expected state of the last diff, and against the ledger."""
    files = StateFiles(config.state.dir)
    spec = spec_for(config, source, collection)
    expected = read_expected(files.expected(collection, source))
    with open_ledger(config) as ledger, open_store(config.qdrant, config.state) as store:
        try:
            return Verifier(store, source, spec).verify(
                expected, ledger.rows(source, collection), model_dimension(config, collection),
                sample)
        except (ResponseHandlingException, UnexpectedResponse) as error:
            raise QdrantUnavailable(f"Qdrant could not be read: {error}") from None


def reconcile(config: VectorSyncConfig, verification: Verification) -> int:
    """Rewrite the ledger rows of every offending document from what Qdrant holds."""
    with open_ledger(config) as ledger:
        rows = ledger.rows(verification.source, verification.collection)
        fixed = reconcile_ledger(rows, verification, verification.source,
                                 verification.collection)
        ledger.upsert(fixed)
    return len(fixed)


def mass_delete(counts: dict[str, int], max_fraction: float) -> str | None:
    """Why a change set's deletions look like an accident (an unmounted vault, an emptied
    collection, a filter gone wrong), or None."""
    deleted, before = counts["deleted"], counts["documents_before"]
    if deleted and counts["documents_now"] == 0:
        return f"the source now yields no documents, but {before} were synced before"
    if before and deleted > max_fraction * before:
        return (f"{deleted} of {before} documents would be deleted, more than "
                f"max_delete_fraction {max_fraction}")
    return None


def refresh_expected(config: VectorSyncConfig, source: str) -> None:
    """A fresh snapshot and diff, so verification compares with the source as it is now
    (writes the state dir's Parquet files; neither Qdrant nor the ledger)."""
    snapshot(config, source)
    for collection in config.sources[source].collections:
        changes(config, source, collection)


def prepare_repair(config: VectorSyncConfig, source: str) -> set[str]:
    """Verify the source's collections and make the ledger tell the truth about Qdrant, so
    that a following sync rewrites exactly what differs. Collections whose vectors the
    config cannot produce (size, distance, model) are dropped, with the ledger rows of every
    source feeding them. Returns the sources that must be synced."""
    refresh_expected(config, source)
    to_sync = {source}
    for collection in config.sources[source].collections:
        result = verify(config, source, collection)
        if result.config_problems:
            drop_collection(config, collection)
            to_sync.update(config.sources_feeding(collection))
        elif not result.consistent or result.ledger_disagrees:
            reconcile(config, result)
    return to_sync


def repair(config: VectorSyncConfig, sources: list[str],
           sync_source: Callable[[str], str | None]) -> tuple[list[Verification], dict[str, str]]:
    """Make Qdrant match `sources`: prepare (verify, rebuild, reconcile the ledger), sync
    every affected source with `sync_source` (which returns an error or None), verify again.
    Returns the final verifications and the sources that could not be repaired, with why."""
    to_sync: set[str] = set()
    errors: dict[str, str] = {}
    for source in sources:
        try:
            to_sync |= prepare_repair(config, source)
        except SourceUnavailable as error:
            errors[source] = str(error)
    for source in sorted(to_sync - set(errors)):
        failure = sync_source(source)
        if failure:
            errors[source] = failure
    results = [verify(config, source, collection) for source in sources
               if source not in errors for collection in config.sources[source].collections]
    return results, errors


def drop_collection(config: VectorSyncConfig, collection: str) -> None:
    log.warning("dropping collection %s to rebuild it with %s", collection,
                config.embedding_for(collection).model)
    with open_ledger(config) as ledger, open_store(config.qdrant, config.state) as store:
        store.drop(collection)
        for source in config.sources_feeding(collection):
            ledger.delete(source, collection, list(ledger.rows(source, collection)))
