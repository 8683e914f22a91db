"""A Qdrant server through qdrant-client (and, for migrating old embedded storage, the
client's local mode, which speaks the same API)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from vector_sync.core.settings import QdrantConfig
from vector_sync.core.store.base import (
    FACET_LIMIT,
    INDEXED_KEYS,
    Delete,
    Hit,
    Operation,
    Point,
    QdrantStore,
    QdrantUnavailable,
    SetPayload,
    StoredPoint,
    WithPayload,
)

PAGE = 2_048
SEARCH_RESOLVES = 50


@contextmanager
def _reading(done: str = "read") -> Iterator[None]:
    """A request that a server refuses or drops is Qdrant being unavailable, said plainly in
    one line: every command reports QdrantUnavailable as such, never with a traceback."""
    try:
        yield
    except UnexpectedResponse as error:
        content = " ".join(error.content[:200].decode(errors="replace").split())
        raise QdrantUnavailable(f"Qdrant could not be {done}: HTTP {error.status_code} "
                                f"{error.reason_phrase}: {content}") from None
    except ResponseHandlingException as error:
        raise QdrantUnavailable(f"Qdrant could not be {done}: {error}") from None


def _writing() -> AbstractContextManager[None]:
    return _reading("written")


class ServerStore(QdrantStore):
    ALIAS_NEEDS_FREE_NAME = True

    def __init__(self, client: QdrantClient) -> None:
        self.client = client

    @classmethod
    def connect(cls, qdrant: QdrantConfig) -> ServerStore:
        return cls(QdrantClient(
            url=qdrant.url,
            api_key=qdrant.api_key.get_secret_value() if qdrant.api_key else None,
            timeout=qdrant.timeout_s,
            check_compatibility=False,  # the probe warns and stalls when Qdrant is down
        ))

    def close(self) -> None:
        self.client.close()

    def collections(self) -> list[str]:
        with _reading():
            return [c.name for c in self.client.get_collections().collections]

    def exists(self, collection: str) -> bool:
        collection = self.resolve(collection)
        with _reading():
            return bool(self.client.collection_exists(collection))

    def vectors(self, collection: str) -> tuple[int, str] | None:
        collection = self.resolve(collection)
        with _reading():
            vectors = self.client.get_collection(collection).config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            return None
        return int(vectors.size), str(vectors.distance.value)

    def create(self, collection: str, dimension: int, distance: str = "Cosine",
               metadata: dict[str, Any] | None = None) -> None:
        collection = self.resolve(collection)
        with _writing():
            self.client.create_collection(
                collection, metadata=metadata, vectors_config=models.VectorParams(
                    size=dimension, distance=models.Distance(distance)))
            for key in INDEXED_KEYS:
                self.client.create_payload_index(
                    collection, key, models.PayloadSchemaType.KEYWORD, wait=True)

    def metadata(self, collection: str) -> dict[str, Any]:
        collection = self.resolve(collection)
        with _reading():
            return dict(self.client.get_collection(collection).config.metadata or {})

    def set_metadata(self, collection: str, metadata: dict[str, Any]) -> None:
        collection = self.resolve(collection)
        with _writing():
            self.client.update_collection(collection, metadata=metadata)

    # --- the pointer: Qdrant's own aliases ----------------------------------------------------

    def aliases(self) -> dict[str, str]:
        with _reading():
            return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def resolve(self, name: str) -> str:
        """The server resolves aliases itself, but not for every call (collection info,
        existence) on every version: resolved here once, the same way for every call."""
        with _reading():
            for alias in self.client.get_aliases().aliases:
                if alias.alias_name == name:
                    return str(alias.collection_name)
        return name

    def switch_alias(self, name: str, physical: str) -> None:
        """One request: delete the old alias and create the new one (atomic on the server).
        A collection of the same name must be gone first: Qdrant refuses an alias that
        shadows a collection."""
        actions: list[Any] = []
        if name in self.aliases():
            actions.append(models.DeleteAliasOperation(
                delete_alias=models.DeleteAlias(alias_name=name)))
        actions.append(models.CreateAliasOperation(create_alias=models.CreateAlias(
            collection_name=physical, alias_name=name)))
        with _writing():
            self.client.update_collection_aliases(change_aliases_operations=actions)

    def remove_alias(self, name: str) -> None:
        if name in self.aliases():
            with _writing():
                self.client.update_collection_aliases(change_aliases_operations=[
                    models.DeleteAliasOperation(delete_alias=models.DeleteAlias(
                        alias_name=name))])

    def drop(self, collection: str) -> None:
        collection = self.resolve(collection)  # a name: what it points at
        with _writing():
            self.client.delete_collection(collection)

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        collection = self.resolve(collection)
        with _writing():
            self.client.upsert(collection, wait=True, points=[
                models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points])

    def batch(self, collection: str, operations: Sequence[Operation]) -> None:
        collection = self.resolve(collection)
        def converted(operation: Operation) -> Any:
            if isinstance(operation, Delete):
                return models.DeleteOperation(delete=models.PointIdsList(points=operation.ids))
            if isinstance(operation, SetPayload):
                return models.SetPayloadOperation(set_payload=models.SetPayload(
                    payload=operation.payload, points=operation.ids))
            return models.DeletePayloadOperation(delete_payload=models.DeletePayload(
                keys=operation.keys, points=operation.ids))

        with _writing():
            self.client.batch_update_points(
                collection, update_operations=[converted(o) for o in operations], wait=True)

    def scroll(self, collection: str, source: str | None, with_payload: WithPayload = True,
               with_vectors: bool = False) -> Iterator[StoredPoint]:
        collection = self.resolve(collection)
        if not self.exists(collection):
            return
        offset = None
        while True:
            with _reading():
                records, offset = self.client.scroll(
                    collection, scroll_filter=_of_source(source), limit=PAGE, offset=offset,
                    with_payload=with_payload, with_vectors=with_vectors)
            yield from map(_stored, records)
            if offset is None:
                return

    def retrieve(self, collection: str, ids: Sequence[str], with_payload: WithPayload,
                 with_vectors: bool) -> list[StoredPoint]:
        collection = self.resolve(collection)
        with _reading():
            return [_stored(r) for r in self.client.retrieve(
                collection, ids=list(ids), with_payload=with_payload, with_vectors=with_vectors)]

    def count(self, collection: str, source: str | None) -> int:
        collection = self.resolve(collection)
        with _reading():
            return int(self.client.count(collection, count_filter=_of_source(source),
                                         exact=True).count)

    def search(self, collection: str, vector: Sequence[float], limit: int) -> list[Hit]:
        """A search that resolved the name just before its target went away (a collection
        adopted in place being moved behind an alias, a retired generation dropped)
        resolves it again, for up to about a second."""
        for attempt in range(SEARCH_RESOLVES):
            physical = self.resolve(collection)
            try:
                with _reading("searched"):
                    points = self.client.query_points(
                        physical, query=list(vector), limit=limit, with_payload=True).points
                break
            except (ValueError, QdrantUnavailable):  # local mode: ValueError; a server: 404
                moved = self.resolve(collection) != physical
                if attempt == SEARCH_RESOLVES - 1 or (
                        not moved and physical in self.collections()):  # not a switch: an error
                    raise
                if not moved:
                    time.sleep(0.02)  # between a collection dropped and its alias made
        return [Hit(str(p.id), float(p.score), p.payload or {}) for p in points]

    def sources(self, collection: str) -> dict[str | None, int]:
        collection = self.resolve(collection)
        with _reading():
            facets = self.client.facet(collection, key="source", limit=FACET_LIMIT, exact=True)
            found: dict[str | None, int] = {str(h.value): int(h.count) for h in facets.hits}
            unlabelled = self.client.count(collection, count_filter=_without_source(),
                                           exact=True).count
        if unlabelled:
            found[None] = int(unlabelled)
        return found

    def delete_source(self, collection: str, source: str | None) -> None:
        collection = self.resolve(collection)
        with _writing():
            self.client.delete(collection, wait=True, points_selector=models.FilterSelector(
                filter=_of_source(source) if source is not None else _without_source()))


def _without_source() -> models.Filter:
    return models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(
        key="source"))])


def _stored(record: models.Record) -> StoredPoint:
    vector = record.vector if isinstance(record.vector, list) else None
    return StoredPoint(str(record.id), record.payload or {}, vector)  # type: ignore[arg-type]


def _of_source(source: str | None) -> models.Filter | None:
    if source is None:
        return None
    return models.Filter(must=[models.FieldCondition(key="source",
                                                     match=models.MatchValue(value=source))])
