"""Stage 3, embed: vectors for the chunks of added and updated documents, nothing else.

Vectors of an identical earlier version of a document (the previous embeddings file of the
same collection and source) are reused, so a retry after Qdrant was down embeds nothing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vector_sync.core.embedder import Embedder
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.state_files import EMBEDDINGS, StateFiles, read_rows, write_rows
from vector_sync.core.stats import throughput, timed

log = logging.getLogger(__name__)

EMBED_BATCH = 256  # texts handed to the model at once (it batches by embedding.batch_size)


def reusable_vectors(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[list[float]]]:
    """Vectors of an earlier embeddings file, by (doc_id, content_hash), in chunk order."""
    found: dict[tuple[str, str], list[list[float]]] = {}
    for row in rows:
        found.setdefault((row["doc_id"], row["content_hash"]), []).append(row["vector"])
    return found


def embedding_rows(
    changes: Iterable[dict[str, Any]],
    embed: Callable[[list[str]], Any],
    reusable: dict[tuple[str, str], list[list[float]]],
    stats: Counter[str],
) -> Iterator[dict[str, Any]]:
    """Vectors for every chunk of added/updated documents, in change-set order; vectors of
    an identical earlier version are reused (a retry after Qdrant was down embeds nothing)."""
    pending: list[tuple[str, str, int, str]] = []
    last_report = time.monotonic()

    def flush() -> Iterator[dict[str, Any]]:
        nonlocal last_report
        if not pending:
            return
        vectors = embed([text for *_, text in pending])
        if time.monotonic() - last_report > 10:
            log.info("embedded %d chunks so far", stats["chunks_embedded"] + len(pending))
            last_report = time.monotonic()
        for (doc_id, chash, index, _), vector in zip(pending, vectors, strict=True):
            yield {"doc_id": doc_id, "content_hash": chash, "chunk_index": index,
                   "vector": [float(x) for x in vector]}
        stats["chunks_embedded"] += len(pending)
        pending.clear()

    for change in changes:
        if change["action"] not in ("added", "updated"):
            continue
        doc_id, chash, chunks = change["doc_id"], change["content_hash"], change["chunks"]
        earlier = reusable.get((doc_id, chash))
        if earlier is not None and len(earlier) == len(chunks):
            yield from flush()  # keep change-set order
            for index, vector in enumerate(earlier):
                yield {"doc_id": doc_id, "content_hash": chash, "chunk_index": index,
                       "vector": vector}
            stats["chunks_reused"] += len(chunks)
            continue
        pending.extend((doc_id, chash, index, text) for index, text in enumerate(chunks))
        if len(pending) >= EMBED_BATCH:
            yield from flush()
    yield from flush()


def embeddings(config: VectorSyncConfig, source: str, collection: str) -> dict[str, Any]:
    """Write the embeddings file of `collection` from its change set; returns the metadata."""
    files = StateFiles(config.state.dir)
    path = files.embeddings(collection, source)
    reusable = reusable_vectors(read_rows(path)) if path.exists() else {}
    embedding = config.embedding_for(collection)
    embedder = Embedder(embedding)
    stats: Counter[str] = Counter()
    started = time.perf_counter()
    write_rows(path, EMBEDDINGS, embedding_rows(
        read_rows(files.changes(collection, source)), embedder.embed, reusable, stats))
    seconds = timed(started)
    embedded = stats["chunks_embedded"]
    log.info("embedded %d chunks (%d reused) for %s in %.1f s", embedded,
             stats["chunks_reused"], collection, seconds)
    return {"chunks_embedded": embedded, "chunks_reused": stats["chunks_reused"],
            "duration_s": seconds, "chunks_per_s": throughput(embedded, seconds),
            "model": embedding.model}
