"""Stage 3, embed: vectors for the new chunk texts of added and updated documents only.

An edited document's chunks whose text did not change keep their vectors: they are read
from the points Qdrant holds for it (checked to come from the same model and chunker).
Vectors of an identical earlier version of a document (the previous embeddings file of the
same collection and source) are reused too, so a retry after Qdrant was down embeds nothing.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import ExitStack
from typing import Any

import numpy as np

from vector_sync.core import faults
from vector_sync.core.batches import batched
from vector_sync.core.hashing import point_id
from vector_sync.core.ledger import Ledger, open_ledger
from vector_sync.core.pipeline.rows import EMBEDS, Change, EmbeddingRow
from vector_sync.core.pipeline.state_files import (
    CHANGES,
    EMBEDDINGS,
    StateFiles,
    read_rows,
    write_rows,
)
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.spec import spec_for
from vector_sync.core.stats import throughput, timed
from vector_sync.core.store import open_store
from vector_sync.core.text.embedder import Embedder

log = logging.getLogger(__name__)

# texts handed to the embedder at once, sorted by length: a larger window groups lengths
# better; its texts and vectors are held until written. The embedder cuts them into model
# calls bounded by embedding.batch_size and embedding.max_batch_tokens (what the model's
# memory grows with); the characters bound keeps the window small for long-context models.
EMBED_BATCH = 1024
EMBED_BATCH_CHARS = 4_000_000
READ_BATCH = 512  # points read back from Qdrant per request


def reusable_vectors(rows: Iterable[EmbeddingRow], wanted: Collection[tuple[str, str]]
                     ) -> dict[tuple[str, str], list[Any]]:
    """Vectors of an earlier embeddings file, by (doc_id, content_hash), in chunk order, for
    the `wanted` versions only, held as float32 arrays (a quarter of a float list's memory)."""
    found: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        key = (row.doc_id, row.content_hash)
        if key in wanted:
            found.setdefault(key, []).append(np.asarray(row.vector, dtype=np.float32))
    return found


def worth_reading_back(changes: Iterable[Change]) -> set[str]:
    """The documents whose points may hold vectors for this change set's chunk texts: edited
    documents cut into several chunks (an edited one-chunk document has no unchanged chunk)
    and, when documents are added, the deleted ones (a page moved to a new URL, a renamed
    file: same text under a new id). Others need no Qdrant read, which spares opening
    embedded storage for the common small edit."""
    edited: set[str] = set()
    deleted: set[str] = set()
    added = False
    for change in changes:
        if change.action == "updated" and len(change.chunks or ()) > 1:
            edited.add(change.doc_id)
        elif change.action == "deleted":
            deleted.add(change.doc_id)
        added |= change.action == "added"
    return edited | deleted if added else edited


def held_chunks(config: VectorSyncConfig, source: str, collection: str,
                doc_ids: Collection[str], with_vectors: bool = True,
                ledger: Ledger | None = None) -> dict[str, list[float] | None]:
    """Chunk text -> vector of the points Qdrant holds for these documents, where the ledger
    says they were embedded by the collection's current model and chunker: an edited
    document's unchanged chunks need no new vector. Reuse only saves work, so when Qdrant
    cannot be read right now (down, or embedded storage held by another process) the answer
    is empty and every chunk is embedded. `ledger`: one already open (a dry run's, read-only),
    else the configured one is opened."""
    if not doc_ids:
        return {}
    version = spec_for(config, collection).vector_version
    with ExitStack() as opened:
        ledger = ledger or opened.enter_context(open_ledger(config.state))
        ids = [point_id(source, row.doc_id, index)
               for row in ledger.rows_of(source, collection, doc_ids)
               if row.vector_version == version for index in range(row.chunk_count)]
    held: dict[str, list[float] | None] = {}
    if not ids:
        return held
    try:
        # no waiting for embedded storage another run holds: embedding is the fallback
        qdrant = config.qdrant.model_copy(update={"lock_wait_s": 0})
        with open_store(qdrant, config.state) as store:
            if store.exists(collection):
                for batch in batched(ids, READ_BATCH):
                    held.update(store.chunks(collection, batch, with_vectors))
    except Exception as error:  # noqa: BLE001 - reuse is an optimisation, never a failure
        log.warning("%s: vectors of unchanged chunks cannot be read from Qdrant, so every "
                    "chunk of the %d edited document(s) is embedded (%s: %s)", collection,
                    len(doc_ids), type(error).__name__, error)
        return {}
    return held


def generation_chunks(config: VectorSyncConfig, source: str, reuse_from: tuple[str, str],
                      doc_ids: Collection[str]) -> dict[str, list[float] | None]:
    """Chunk text -> vector of the points another generation of the collection holds for
    these documents (`reuse_from`: its name in the ledger and the model that embedded it),
    for a rebuild with the same model and another chunker: identical chunk texts keep
    their vectors. Waits for embedded storage like any step: here reuse is most of the
    work saved."""
    other, model = reuse_from
    if not doc_ids:
        return {}
    with open_ledger(config.state) as ledger:
        ids = [point_id(source, row.doc_id, index)
               for row in ledger.rows_of(source, other, doc_ids)
               if row.status == "synced" and row.vector_version is not None
               and row.vector_version.rpartition("|")[0] == model
               for index in range(row.chunk_count)]
    held: dict[str, list[float] | None] = {}
    with open_store(config.qdrant, config.state) as store:
        if ids and store.exists(other):
            for batch in batched(ids, READ_BATCH):
                held.update(store.chunks(other, batch, True))
    return held


def embed_by_length(embed: Callable[[list[str]], Any], texts: list[str]) -> list[Any]:
    """`embed(texts)`, with the texts handed over shortest first: the model pads each of its
    batches to the longest text in it, so texts of a similar length waste no padding. The
    vectors come back in the order of `texts`."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = embed([texts[i] for i in order]) if texts else []
    placed: list[Any] = [None] * len(texts)
    for position, index in enumerate(order):
        placed[index] = vectors[position]
    return placed


def embedding_rows(
    changes: Iterable[Change],
    embed: Callable[[list[str]], Any],
    reusable: dict[tuple[str, str], list[Any]],
    held: dict[str, list[float] | None],
    stats: Counter[str],
) -> Iterator[EmbeddingRow]:
    """Vectors for every chunk of added/updated documents, in change-set order. Only new
    chunk texts are embedded: vectors of an identical earlier version of the document (an
    earlier embeddings file, so a retry after Qdrant was down embeds nothing) and of chunk
    texts Qdrant already holds for it (`held`) are reused."""
    queued: list[tuple[str, str, int, str, Any]] = []
    last_report = time.monotonic()

    def flush() -> Iterator[EmbeddingRow]:
        nonlocal last_report
        texts = [text for *_, text, vector in queued if vector is None]
        fresh = iter(embed_by_length(embed, texts))
        for doc_id, chash, index, _, vector in queued:
            yield EmbeddingRow(doc_id, chash, index, next(fresh) if vector is None else vector)
        stats["chunks_embedded"] += len(texts)
        queued.clear()
        faults.reached("embed.batch")
        if texts and time.monotonic() - last_report > 10:
            log.info("embedded %d chunks so far", stats["chunks_embedded"])
            last_report = time.monotonic()

    waiting = waiting_chars = 0  # queued chunks without a vector, and their characters
    for change in changes:
        if change.action not in EMBEDS:
            continue
        doc_id, chash, chunks = change.doc_id, _hash_of(change), change.chunks or []
        earlier = reusable.get((doc_id, chash))
        whole = earlier if earlier is not None and len(earlier) == len(chunks) else None
        for index, text in enumerate(chunks):
            vector = whole[index] if whole is not None else held.get(text)
            stats["chunks_reused"] += vector is not None
            waiting += vector is None
            waiting_chars += len(text) if vector is None else 0
            queued.append((doc_id, chash, index, text, vector))
        if (waiting >= EMBED_BATCH or waiting_chars >= EMBED_BATCH_CHARS
                or len(queued) >= 8 * EMBED_BATCH):
            yield from flush()
            waiting = waiting_chars = 0
    yield from flush()


def _hash_of(change: Change) -> str:
    """The content hash of an added or updated document (such a change always has one)."""
    assert change.content_hash is not None
    return change.content_hash


class ShardMismatch(Exception):
    """A shard file that does not belong to the current change set."""


def shard_of(doc_id: str, shards: int) -> int:
    """The shard of a document when a change set is embedded `shards` ways: a stable hash,
    so a re-run gives every shard the same documents."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest()) % shards


def embeddings(config: VectorSyncConfig, source: str, collection: str,
               shard: tuple[int, int] | None = None,
               reuse_from: tuple[str, str] | None = None) -> dict[str, float | str]:
    """Write the embeddings file of `collection` from its change set; returns the metadata.
    With `shard` (i, n): only the documents of shard i of n, into that shard's file (see
    merge_shards). `reuse_from`: another generation of the collection embedded by the same
    model, whose vectors of identical chunk texts are reused (see generation_chunks)."""
    files = StateFiles(config.state.dir)
    path = files.embeddings(collection, source, shard)
    changes = files.changes(collection, source)
    started = time.perf_counter()

    def mine(columns: list[str] | None = None) -> Iterator[Change]:
        rows = read_rows(changes, CHANGES, columns)
        if shard is None:
            return rows
        return (row for row in rows if shard_of(row.doc_id, shard[1]) == shard[0])

    needed = {(c.doc_id, _hash_of(c)) for c in mine(["doc_id", "action", "content_hash"])
              if c.action in EMBEDS}
    reusable: dict[tuple[str, str], list[Any]] = {}
    # an earlier run's file, and a shard's own file from a run cut off before its merge
    for earlier in dict.fromkeys([files.embeddings(collection, source), path]):
        if earlier.exists():
            reusable.update(reusable_vectors(read_rows(earlier, EMBEDDINGS), needed))
    edited = worth_reading_back(mine(["doc_id", "action", "chunks"]))
    held = held_chunks(config, source, collection, edited)
    if reuse_from is not None:
        held.update(generation_chunks(config, source, reuse_from,
                                      [doc_id for doc_id, _ in needed if doc_id not in edited]))
    embedding = config.embedding_for(collection)
    embedder = Embedder(embedding)
    stats: Counter[str] = Counter()
    write_rows(path, EMBEDDINGS, embedding_rows(mine(), embedder.embed, reusable, held, stats))
    seconds = timed(started)
    embedded = stats["chunks_embedded"]
    log.info("embedded %d chunks (%d reused) for %s in %.1f s", embedded,
             stats["chunks_reused"], collection, seconds)
    return {"chunks_embedded": embedded, "chunks_reused": stats["chunks_reused"],
            "duration_s": seconds, **throughput("chunks_per_s", embedded, seconds),
            "model": embedding.model}


def merge_shards(config: VectorSyncConfig, source: str, collection: str,
                 shards: int) -> None:
    """Merge the shard files into the embeddings file, in change-set order (the order the
    Qdrant step reads them in). Each shard file keeps the change set's order, so the merge
    streams: it holds one row at a time, whatever the size of the change set."""
    files = StateFiles(config.state.dir)
    streams = [read_rows(files.embeddings(collection, source, (i, shards)), EMBEDDINGS)
               for i in range(shards)]

    def merged() -> Iterator[EmbeddingRow]:
        for change in read_rows(files.changes(collection, source), CHANGES,
                                ["doc_id", "action", "chunks"]):
            if change.action in EMBEDS:
                shard = shard_of(change.doc_id, shards)
                for index in range(len(change.chunks or ())):
                    row = next(streams[shard], None)
                    if row is None or (row.doc_id, row.chunk_index) != (change.doc_id, index):
                        # a shard file of another change set (one rewritten since by
                        # another run): refuse rather than pair vectors with wrong chunks
                        raise ShardMismatch(
                            f"{files.embeddings(collection, source, (shard, shards))} does not "
                            f"match the change set at {change.doc_id!r} chunk {index}: "
                            "re-materialize the embeddings asset for this partition")
                    yield row

    write_rows(files.embeddings(collection, source), EMBEDDINGS, merged())
