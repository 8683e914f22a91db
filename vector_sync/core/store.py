"""The Qdrant side: embedded local storage or a server, behind one small class."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from qdrant_client import QdrantClient, models

from vector_sync.config import QdrantConfig, StateConfig

log = logging.getLogger(__name__)


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

    def vector_size(self, collection: str) -> int | None:
        if not self.exists(collection):
            return None
        vectors = self.client.get_collection(collection).config.params.vectors
        return int(vectors.size) if isinstance(vectors, models.VectorParams) else None

    def ensure_collection(self, collection: str, dimension: int, model: str) -> None:
        size = self.vector_size(collection)
        if size is None and not self.exists(collection):
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
        elif size != dimension:
            raise CollectionMismatch(
                f"collection {collection!r} holds {size}-dimensional vectors but model "
                f"{model!r} produces {dimension}; drop the collection (or give the "
                "collection a new name) to re-embed it with the new model"
            )

    # --- points ---------------------------------------------------------------------------

    def upsert(self, collection: str, points: Sequence[models.PointStruct]) -> None:
        self.client.upsert(collection, points=list(points), wait=True)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if ids:
            self.client.delete(collection, points_selector=models.PointIdsList(points=list(ids)),
                               wait=True)

    def set_payload(self, collection: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        self.client.set_payload(collection, payload=payload, points=list(ids), wait=True)

    def delete_payload(self, collection: str, ids: Sequence[str], keys: Sequence[str]) -> None:
        if keys:
            self.client.delete_payload(collection, keys=list(keys), points=list(ids), wait=True)

    def scroll(
        self, collection: str, source: str | None = None, with_payload: Any = True,
        page_size: int = 1024,
    ) -> Iterator[models.Record]:
        """Every point (never its vector), optionally only those of one source."""
        if not self.exists(collection):
            return
        query_filter = None
        if source is not None:
            query_filter = models.Filter(must=[models.FieldCondition(
                key="source", match=models.MatchValue(value=source))])
        offset = None
        while True:
            records, offset = self.client.scroll(
                collection, scroll_filter=query_filter, limit=page_size, offset=offset,
                with_payload=with_payload, with_vectors=False,
            )
            yield from records
            if offset is None:
                return

    def retrieve(self, collection: str, ids: Sequence[str]) -> list[models.Record]:
        return self.client.retrieve(collection, ids=list(ids), with_payload=True,
                                    with_vectors=True)

    def count(self, collection: str) -> int:
        if not self.exists(collection):
            return 0
        return int(self.client.count(collection, exact=True).count)

    def search(self, collection: str, vector: Sequence[float], limit: int) -> list[Any]:
        return self.client.query_points(
            collection, query=list(vector), limit=limit, with_payload=True
        ).points


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
        state.qdrant_path.mkdir(parents=True, exist_ok=True)
        try:
            client = QdrantClient(path=str(state.qdrant_path))
        except RuntimeError as error:
            if "already accessed" not in str(error):
                raise
            raise QdrantUnavailable(
                f"the embedded Qdrant storage at {state.qdrant_path} is in use by another "
                "process (embedded storage admits one process at a time: wait for the other "
                "run to finish, or set qdrant.url to a Qdrant server for concurrent access)"
            ) from None
        store = QdrantStore(client, is_local=True)
    try:
        yield store
    finally:
        client.close()
