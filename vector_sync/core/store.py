"""The Qdrant side: embedded local storage or a server, behind one small class.

qdrant-client (and the fastembed it imports) is loaded only when Qdrant is opened: a run
with nothing to write never pays for it. Callers describe points and operations with the
plain types below; only this module speaks qdrant-client's models.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vector_sync.core.settings import QdrantConfig, StateConfig

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models

log = logging.getLogger(__name__)
LOCK_POLL_S = 0.2


class QdrantUnavailable(Exception):
    """Qdrant cannot be opened or reached."""


class CollectionMismatch(Exception):
    """The collection exists with vectors that the configured model cannot produce."""


@dataclass(frozen=True)
class Point:
    id: str
    vector: list[float]
    payload: dict[str, Any]


@dataclass(frozen=True)
class Delete:
    ids: list[str]


@dataclass(frozen=True)
class SetPayload:
    payload: dict[str, Any]
    ids: list[str]


@dataclass(frozen=True)
class DeletePayload:
    keys: list[str]
    ids: list[str]


Operation = Delete | SetPayload | DeletePayload


@contextmanager
def _reading() -> Iterator[None]:
    """A read that a server refuses or drops is Qdrant being unavailable, said plainly."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except (ResponseHandlingException, UnexpectedResponse) as error:
        raise QdrantUnavailable(f"Qdrant could not be read: {error}") from None


class QdrantStore:
    def __init__(self, client: QdrantClient, is_local: bool) -> None:
        self.client = client
        self.is_local = is_local

    # --- collections ---------------------------------------------------------------------

    def exists(self, collection: str) -> bool:
        with _reading():
            return bool(self.client.collection_exists(collection))

    def vectors(self, collection: str) -> tuple[int, str] | None:
        """Size and distance ("Cosine", ...) of the collection's single unnamed vector; None
        when it has named vectors."""
        from qdrant_client import models

        vectors = self.client.get_collection(collection).config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            return None
        return int(vectors.size), str(vectors.distance.value)

    def vector_size(self, collection: str) -> int | None:
        """The size of the collection's single unnamed vector (None for named vectors)."""
        vectors = self.vectors(collection)
        return vectors[0] if vectors else None

    def ensure_collection(self, collection: str, dimension: int, model: str) -> None:
        from qdrant_client import models

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

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        from qdrant_client import models

        self.client.upsert(collection, wait=True, points=[
            models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points])

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if ids and self.exists(collection):  # a missing collection holds nothing to delete
            self.batch(collection, [Delete(list(ids))])

    def batch(self, collection: str, operations: Sequence[Operation]) -> None:
        """Deletions and payload updates of many documents in one request."""
        from qdrant_client import models

        def converted(operation: Operation) -> Any:
            if isinstance(operation, Delete):
                return models.DeleteOperation(delete=models.PointIdsList(points=operation.ids))
            if isinstance(operation, SetPayload):
                return models.SetPayloadOperation(set_payload=models.SetPayload(
                    payload=operation.payload, points=operation.ids))
            return models.DeletePayloadOperation(delete_payload=models.DeletePayload(
                keys=operation.keys, points=operation.ids))

        self.client.batch_update_points(
            collection, update_operations=[converted(o) for o in operations], wait=True)

    def scroll(self, collection: str, source: str,
               with_payload: Any = True) -> Iterator[models.Record]:
        """Every point of one source (payloads only, never vectors)."""
        if not self.exists(collection):
            return
        # embedded Qdrant re-sorts and re-filters every point on each page: few large pages
        page_size = 32_768 if self.is_local else 2_048
        offset = None
        while True:
            with _reading():
                records, offset = self.client.scroll(
                    collection, scroll_filter=_of_source(source), limit=page_size,
                    offset=offset, with_payload=with_payload, with_vectors=False)
            yield from records
            if offset is None:
                return

    def payloads(self, collection: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Payloads of the points with these ids that exist."""
        with _reading():
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
        with _reading():
            return int(self.client.count(collection, count_filter=_of_source(source),
                                         exact=True).count)

    def search(self, collection: str, vector: Sequence[float], limit: int) -> list[Any]:
        return self.client.query_points(
            collection, query=list(vector), limit=limit, with_payload=True
        ).points


def _of_source(source: str) -> models.Filter:
    from qdrant_client import models

    return models.Filter(must=[models.FieldCondition(key="source",
                                                     match=models.MatchValue(value=source))])


@contextmanager
def open_store(qdrant: QdrantConfig, state: StateConfig) -> Iterator[QdrantStore]:
    """Open Qdrant for the duration of a step; local storage admits one process at a time."""
    from qdrant_client import QdrantClient

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
    from qdrant_client import QdrantClient

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
