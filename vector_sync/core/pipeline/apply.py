"""Stage 4, apply: one collection's change set and its embeddings written into Qdrant, then
recorded in the ledger (applier.py: how, so that a crash at any point leaves a state the next
run converges from); then the collection's config and checkpoint are recorded, the
embeddings file is emptied once every vector in it is applied, sources that keep each
document's sync status learn it (write_back.py), and the sync events recorded with the
ledger rows are delivered (each sink within its timeout). Qdrant is written only here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress

from vector_sync.core import faults
from vector_sync.core.events.publisher import deliver_events
from vector_sync.core.ledger import open_ledger
from vector_sync.core.pipeline import checkpoints
from vector_sync.core.pipeline.applier import Applier, ApplyReport, QdrantTransientError
from vector_sync.core.pipeline.rows import EMBEDS, WRITES_QDRANT, Change
from vector_sync.core.pipeline.state_files import (
    CHANGES,
    EMBEDDINGS,
    StateFiles,
    consume,
    consumed,
    read_rows,
    read_summary,
)
from vector_sync.core.pipeline.write_back import write_back
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.spec import spec_for
from vector_sync.core.stats import timed
from vector_sync.core.store import QdrantStore, QdrantUnavailable, open_store
from vector_sync.core.store.ownership import deployment_of

__all__ = ["ApplyReport", "QdrantTransientError", "apply"]

log = logging.getLogger(__name__)


def apply(config: VectorSyncConfig, source: str, collection: str,
          may_retry_step: bool = False) -> ApplyReport:
    """Apply `collection`'s change set and embeddings. `may_retry_step`: raise
    QdrantTransientError on a Qdrant error (the caller retries the whole step; what was
    acknowledged is not written again) instead of marking the documents failed."""
    files = StateFiles(config.state.dir)
    spec = spec_for(config, collection)
    started = time.perf_counter()
    planned = read_summary(files.changes(collection, source))
    embeddings = files.embeddings(collection, source)
    first = next(read_rows(embeddings, EMBEDDINGS, ["vector"]), None)
    dimension = len(first.vector) if first else None
    with open_ledger(config.state) as ledger, ExitStack() as opened:
        store, unavailable = None, None
        # opening embedded Qdrant loads every stored point: not for a run with nothing to write
        if any(planned[k] for k in WRITES_QDRANT):
            try:
                store = opened.enter_context(open_store(config.qdrant, config.state))
            except QdrantUnavailable as error:
                if may_retry_step:
                    raise
                unavailable = str(error)  # last attempt: the documents are marked failed
        # the ledger rows of the change set's documents are looked up a window at a time
        # (Applier.with_rows): a dict of them all would grow with the change set
        applier = Applier(store, ledger, source, spec, batch_points=config.qdrant.batch_size,
                          retry=config.retry, may_retry_step=may_retry_step,
                          unavailable=unavailable,
                          deployment=deployment_of(config, ledger, create=store is not None),
                          events=config.events.enabled)
        changes = read_rows(files.changes(collection, source), CHANGES)
        if consumed(embeddings) is not None:  # a step re-run after this change set applied
            changes = _without_consumed(applier.with_rows(changes), applier)
        report = applier.apply(changes, read_rows(embeddings, EMBEDDINGS), dimension)
        report.counts["unchanged"] = planned["unchanged"]
        checkpoints.record_config(ledger, source, spec)
        checkpoints.record_checkpoint(ledger, source, collection)
        faults.reached("apply.checkpoint_recorded")
        _consume_vectors(files, source, collection, report)
        write_back(config, source, collection, ledger, (  # read only by such a source
            row.doc_id for row in read_rows(files.changes(collection, source), CHANGES,
                                            ["doc_id"])))
        if config.events.enabled:
            deliver_events(config, ledger)
        if store is not None:
            _index(store, collection)
    report.seconds = timed(started)
    for doc_id, reason in report.failures[:20]:
        log.warning("failed %s/%s: %s", source, doc_id, reason)
    return report


def _index(store: QdrantStore, collection: str) -> None:
    """Embedded storage builds its search index (HNSW) only when asked: past a size
    threshold, once, then as segments fill up (a server indexes by itself). A build that
    fails costs nothing but speed: search stays exact over the same points."""
    try:
        store.optimize(collection)
    except Exception as error:  # noqa: BLE001 - the sync itself is done and recorded
        log.warning("%s: the search index was not built (%s); search stays exact", collection,
                    error)


def _consume_vectors(files: StateFiles, source: str, collection: str,
                     report: ApplyReport) -> None:
    """Once Qdrant and the ledger hold every vector of the embeddings file, its rows (one
    vector per embedded chunk) and its shard files go: nothing reads them any more. While a
    document with vectors there failed, the file stays whole: the retry that follows reuses
    its vectors instead of embedding them again (as does a run after a kill before this
    point)."""
    path = files.embeddings(collection, source)
    failed = {doc_id for doc_id, _ in report.failures}
    if failed and any(row.doc_id in failed for row in read_rows(path, EMBEDDINGS, ["doc_id"])):
        return
    freed = consume(path, EMBEDDINGS)
    for shard in files.embedding_shards(collection, source):
        with suppress(FileNotFoundError):  # another process removed it first
            freed += shard.stat().st_size
            shard.unlink()
    if freed:
        log.info("%s: removed the applied vectors of %s (%.1f MB)", collection, source,
                 freed / 1e6)


def _without_consumed(changes: Iterator[Change], applier: Applier) -> Iterator[Change]:
    """The change set without its documents with vectors, for a change set applied before
    whose vectors were consumed since: each must be recorded as applied already (it is
    counted as such), else its vectors are gone and only a new sync can write it."""
    for change in changes:
        if change.action not in EMBEDS:
            yield change
        elif applier.applied_before(change):  # the applier's own test of a re-run
            applier.report.counts[change.action] += 1
            applier.forget([change])
        else:
            raise RuntimeError(
                f"the vectors of this change set were removed once it was applied, and "
                f"{change.doc_id!r} is no longer recorded as applied: sync the source again "
                "(the Qdrant step alone cannot write it)")
