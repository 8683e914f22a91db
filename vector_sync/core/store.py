"""The Qdrant side: embedded local storage or a server, behind one small class."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from qdrant_client import QdrantClient, models

from vector_sync.core.settings import QdrantConfig, StateConfig

log = logging.getLogger(__name__)
LOCK_POLL_S = 0.2


class QdrantUnavailable(Exception):
    """Qdrant cannot be opened or reached."""


class CollectionMismatch(Exception):
    """The collection exists with vectors that the configured model cannot produce."""


class QdrantStore:
    def __init__(self, client: QdrantClient, is_local: bool) -> None:
        self.client = client
        self.is_local = is_local

    # --- collections ---------------------------------------------------------------------

    def exists(self, collection: str) -> bool:
        return bool(self.client.collection_exists(collection))

    def vector_params(self, collection: str) -> Any:
        """VectorParams of the single unnamed vector, or the named-vectors mapping."""
        return self.client.get_collection(collection).config.params.vectors

    def vector_size(self, collection: str) -> int | None:
        """The size of the collection's single unnamed vector (None for named vectors)."""
        vectors = self.vector_params(collection)
        return int(vectors.size) if isinstance(vectors, models.VectorParams) else None

    def ensure_collection(self, collection: str, dimension: int, model: str) -> None:
        if not self.exists(collection):
            self.client.create_collection(
                collection,
                vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
                metadata={"vector_sync": {"model": model, "dimension": dimension}},
            )
            if not self.is_local:  # local mode ignores payload indexes (and warns)
                for key in ("source", "doc_id"):
                    self.client.create_payload_index(
                        collection, key, models.PayloadSchemaType.KEYWORD, wait=True)
            log.info("created collection %s (%d dimensions, cosine)", collection, dimension)
            return
        size = self.vector_size(collection)
        if size != dimension:
            raise CollectionMismatch(
                f"collection {collection!r} holds vectors of size {size} but model "
                f"{model!r} produces {dimension}; run `vector-sync repair` to rebuild it, "
                "or give the collection a new name"
            )

    def record_model(self, collection: str, model: str, dimension: int) -> None:
        """Stamp the collection with the model its vectors come from (the check compares)."""
        self.client.update_collection(
            collection, metadata={"vector_sync": {"model": model, "dimension": dimension}})

    def model(self, collection: str) -> str | None:
        metadata = self.client.get_collection(collection).config.metadata or {}
        return (metadata.get("vector_sync") or {}).get("model")

    def drop(self, collection: str) -> None:
        self.client.delete_collection(collection)

    # --- points ---------------------------------------------------------------------------

    def upsert(self, collection: str, points: Sequence[models.PointStruct]) -> None:
        self.client.upsert(collection, points=list(points), wait=True)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if ids and self.exists(collection):  # a missing collection holds nothing to delete
            self.client.delete(collection, points_selector=models.PointIdsList(points=list(ids)),
                               wait=True)

    def batch(self, collection: str, operations: Sequence[Any]) -> None:
        """Deletions and payload updates of many documents in one request."""
        self.client.batch_update_points(collection, update_operations=list(operations),
                                        wait=True)

    def scroll(self, collection: str, source: str,
               with_payload: Any = True) -> Iterator[models.Record]:
        """Every point of one source (payloads only, never vectors)."""
        if not self.exists(collection):
            return
        # embedded Qdrant re-sorts and re-filters every point on each page: few large pages
        page_size = 32_768 if self.is_local else 2_048
        offset = None
        while True:
            records, offset = self.client.scroll(
                collection, scroll_filter=_of_source(source), limit=page_size, offset=offset,
                with_payload=with_payload, with_vectors=False)
            yield from records
            if offset is None:
                return

    def payloads(self, collection: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Payloads of the points with these ids that exist."""
        return [record.payload or {} for record in self.client.retrieve(
            collection, ids=list(ids), with_payload=True, with_vectors=False)]

    def chunks(self, collection: str, ids: Sequence[str],
               with_vectors: bool) -> Iterator[tuple[str, list[float] | None]]:
        """(text, vector or None) of the points with these ids that exist."""
        for record in self.client.retrieve(collection, ids=list(ids), with_payload=["text"],
                                           with_vectors=with_vectors):
            text = (record.payload or {}).get("text")
            vector = record.vector if isinstance(record.vector, list) else None
            if isinstance(text, str):
                yield text, vector  # type: ignore[misc]

    def count(self, collection: str, source: str) -> int:
        return int(self.client.count(collection, count_filter=_of_source(source),
                                     exact=True).count)

    def search(self, collection: str, vector: Sequence[float], limit: int) -> list[Any]:
        return self.client.query_points(
            collection, query=list(vector), limit=limit, with_payload=True
        ).points


def _of_source(source: str) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="source",
                                                     match=models.MatchValue(value=source))])


@contextmanager
def open_store(qdrant: QdrantConfig, state: StateConfig) -> Iterator[QdrantStore]:
    """Open Qdrant for the duration of a step; local storage admits one process at a time."""
    if qdrant.url:
        client = QdrantClient(
            url=qdrant.url,
            api_key=qdrant.api_key.get_secret_value() if qdrant.api_key else None,
            timeout=qdrant.timeout_s,
            check_compatibility=False,  # the probe warns and stalls when Qdrant is down
        )
        store = QdrantStore(client, is_local=False)
    else:
        client = _open_local(state, qdrant.lock_wait_s)
        store = QdrantStore(client, is_local=True)
    try:
        yield store
    finally:
        client.close()


def _open_local(state: StateConfig, wait_s: float) -> QdrantClient:
    """Embedded storage admits one process at a time: wait up to `wait_s` for another run or
    a CLI search to let go of it, then fail with a clear message."""
    state.qdrant_path.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return QdrantClient(path=str(state.qdrant_path))
        except RuntimeError as error:
            if "already accessed" not in str(error):
                raise
            if time.monotonic() >= deadline:
                raise QdrantUnavailable(
                    f"the embedded Qdrant storage at {state.qdrant_path} is in use by another "
                    f"process (waited {wait_s:g} s; embedded storage admits one process at a "
                    "time: wait for the other run to finish, or set qdrant.url to a Qdrant "
                    "server for concurrent access)") from None
            time.sleep(LOCK_POLL_S)
