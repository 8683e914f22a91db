"""Repair: make the ledger tell the truth about what Qdrant holds, so that the next sync
rewrites exactly what differs.

Verification finds the offending documents; their ledger rows are rewritten from what
Qdrant really holds (stale, no hint: the next snapshot reads them again). A collection whose
vectors the config cannot produce (size, distance, model) is dropped and rebuilt by every
source that feeds it; a collection another deployment made is never dropped nor written
(ownership.py). The sync itself is an ordinary run of the asset job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from vector_sync.core.consistency.compare import Verification
from vector_sync.core.consistency.verify import verify_source
from vector_sync.core.ledger import LedgerRow, open_ledger
from vector_sync.core.pipeline import checkpoints
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.source import SourceUnavailable
from vector_sync.core.store import NotThisDeployments, open_store
from vector_sync.core.store.ownership import deployment_of

log = logging.getLogger(__name__)


def prepare_repair(config: VectorSyncConfig, source: str) -> set[str]:
    """Verify the source's collections and rewrite what the ledger gets wrong; drop the
    collections whose vectors do not fit the config. Returns the sources that must now be
    synced (the source, and every other source feeding a dropped collection)."""
    to_sync = {source}
    for result in verify_source(config, source):
        delete_foreign_points(config, result)
        if result.config_problems:
            drop_collection(config, result.collection)
            to_sync.update(config.sources_feeding(result.collection))
        elif not result.consistent or result.ledger_disagrees:
            fixed = reconcile(config, result)
            log.info("repair %s/%s: %d ledger row(s) rewritten from what Qdrant holds",
                     source, result.collection, fixed)
    return to_sync


def repair(config: VectorSyncConfig, sources: list[str],
           sync_source: Callable[[str], str | None]) -> tuple[list[Verification], dict[str, str]]:
    """Make Qdrant match `sources`: prepare every source, sync every affected source with
    `sync_source` (a run of the asset job; it returns an error or None), verify again.
    Returns the final verifications and the sources that could not be repaired, with why."""
    to_sync: set[str] = set()
    errors: dict[str, str] = {}
    for source in sources:
        try:
            to_sync |= prepare_repair(config, source)
        except (SourceUnavailable, NotThisDeployments) as error:
            errors[source] = str(error)
    for source in sorted(to_sync - set(errors)):
        failure = sync_source(source)
        if failure:
            errors[source] = failure
    results = [result for source in sources if source not in errors
               for result in verify_source(config, source)]
    return results, errors


def delete_foreign_points(config: VectorSyncConfig, result: Verification) -> None:
    """Points claiming a document under ids vector_sync never computes: no sync would ever
    address them, so repair deletes exactly the ids Qdrant holds."""
    foreign = [i for held in result.held.values() for i in held.foreign]
    if not foreign:
        return
    with open_ledger(config.state) as ledger, open_store(config.qdrant, config.state) as store:
        store.claim(result.collection, deployment_of(config, ledger, create=True))
        store.delete(result.collection, foreign)
    log.warning("repair %s/%s: deleted %d point(s) under ids vector_sync does not compute",
                result.source, result.collection, len(foreign))


def reconcile(config: VectorSyncConfig, verification: Verification) -> int:
    """Rewrite the ledger rows of every offending document from what Qdrant holds."""
    with open_ledger(config.state) as ledger:
        rows = ledger.rows(verification.source, verification.collection)
        fixed = reconcile_ledger(rows, verification, verification.source,
                                 verification.collection)
        ledger.upsert(fixed)
    return len(fixed)


def drop_collection(config: VectorSyncConfig, collection: str) -> None:
    log.warning("dropping collection %s to rebuild it with %s", collection,
                config.embedding_for(collection).model)
    with open_ledger(config.state) as ledger, open_store(config.qdrant, config.state) as store:
        store.claim(collection, deployment_of(config, ledger, create=True))
        store.drop(collection)
        for source in config.sources_feeding(collection):
            ledger.delete(source, collection, list(ledger.rows(source, collection)))
            checkpoints.forget_config(ledger, source, collection)


def reconcile_ledger(rows: dict[str, LedgerRow], result: Verification,
                     source: str, collection: str) -> list[LedgerRow]:
    """Ledger rows rewritten from what Qdrant truly holds, for every document found wrong.

    Each becomes "stale" with no version hint, so the next sync re-reads it and rewrites
    exactly what differs: an incomplete or stale document is re-applied, chunks beyond the
    source's count and documents the source no longer has are deleted."""
    suspects = set(result.missing) | set(result.orphans) | set(result.stale) | set(
        result.ledger_disagrees)
    upserts = []
    for doc_id in sorted(suspects):
        held = result.held.get(doc_id)
        if held is not None and not held.indexes:
            held = None  # only foreign points, deleted already
        if held is None and doc_id not in rows:
            continue  # nothing anywhere: the next sync simply adds it
        if held is None:
            chash, phash, count = None, None, 0
        else:
            count = max(held.indexes) + 1  # every index that may exist gets cleaned up
            first = held.chunks.get(0)
            uniform = first is not None and held.matches(first, range(count))
            chash, phash = (first[0], first[1]) if uniform and first else (None, None)
        previous = rows.get(doc_id) or LedgerRow(source, collection, doc_id, "stale")
        upserts.append(replace(
            previous, status="stale", source_version=None, content_hash=chash,
            payload_hash=phash, chunk_count=count, error_code="reconciled",
            last_error="consistency check: ledger rewritten from what Qdrant holds"))
    return upserts
