"""What the stages need of Qdrant, in plain types: the `QdrantStore` interface both engines
implement, the points and operations callers hand it, the records it gives back and the
errors it raises. Nothing here speaks a Qdrant library."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from vector_sync.core.batches import batched

log = logging.getLogger(__name__)
# collection metadata: {"vector_sync": {"model": ..., "dimension": ..., "deployment": ...}}
MODEL_KEY = "vector_sync"
INDEXED_KEYS = ("source", "doc_id")  # keyword indexes: every scroll and count filters on them
FACET_LIMIT = 100_000  # distinct sources per collection; a handful in practice


class QdrantUnavailable(Exception):
    """Qdrant cannot be opened or reached."""


class CollectionMismatch(Exception):
    """The collection exists with vectors that the configured model cannot produce."""


class NotThisDeployments(CollectionMismatch):
    """The collection was created by another deployment (another configuration sharing this
    Qdrant): this one never writes it."""


@dataclass(frozen=True)
class Point:
    id: str
    vector: list[float]
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoredPoint:
    """A point as Qdrant holds it (vector only when asked for)."""

    id: str
    payload: dict[str, Any] = field(default_factory=dict)
    vector: list[float] | None = None


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
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
WithPayload = bool | list[str]


class QdrantStore(ABC):
    """What the stages need of Qdrant. Every write returns once it is durable: the ledger
    is written after it, so an acknowledged write must survive a crash."""

    # a Qdrant server refuses an alias under the name of an existing collection
    ALIAS_NEEDS_FREE_NAME = False

    # --- what each engine implements -------------------------------------------------

    @abstractmethod
    def collections(self) -> list[str]: ...

    @abstractmethod
    def exists(self, collection: str) -> bool: ...

    @abstractmethod
    def vectors(self, collection: str) -> tuple[int, str] | None:
        """Size and distance ("Cosine", ...) of the collection's single unnamed vector; None
        when it has named vectors."""

    @abstractmethod
    def create(self, collection: str, dimension: int, distance: str = "Cosine",
               metadata: dict[str, Any] | None = None) -> None:
        """A new collection with keyword indexes on `source` and `doc_id`."""

    @abstractmethod
    def metadata(self, collection: str) -> dict[str, Any]: ...

    @abstractmethod
    def set_metadata(self, collection: str, metadata: dict[str, Any]) -> None: ...

    @abstractmethod
    def drop(self, collection: str) -> None:
        """A collection of that very name, else what the name points at (the pointer
        stays, so a collection made again under the name is its new target)."""

    @abstractmethod
    def upsert(self, collection: str, points: Sequence[Point]) -> None: ...

    @abstractmethod
    def batch(self, collection: str, operations: Sequence[Operation]) -> None:
        """Deletions and payload updates of many documents in one request."""

    @abstractmethod
    def scroll(self, collection: str, source: str | None, with_payload: WithPayload = True,
               with_vectors: bool = False) -> Iterator[StoredPoint]:
        """Every point of one source (or of the collection, for None)."""

    @abstractmethod
    def retrieve(self, collection: str, ids: Sequence[str], with_payload: WithPayload,
                 with_vectors: bool) -> list[StoredPoint]:
        """The points with these ids that exist."""

    @abstractmethod
    def count(self, collection: str, source: str | None) -> int: ...

    @abstractmethod
    def search(self, collection: str, vector: Sequence[float], limit: int) -> list[Hit]: ...

    @abstractmethod
    def sources(self, collection: str) -> dict[str | None, int]:
        """Points per value of the `source` key (None: points without one)."""

    @abstractmethod
    def delete_source(self, collection: str, source: str | None) -> None:
        """Delete every point of one `source` value (None: points without one)."""

    @abstractmethod
    def close(self) -> None: ...

    # --- the pointer: a configured name -> the generation serving it -----------------------

    @abstractmethod
    def aliases(self) -> dict[str, str]:
        """Every pointer: configured name -> the physical collection it serves."""

    @abstractmethod
    def switch_alias(self, name: str, physical: str) -> None:
        """Point `name` at `physical` in one atomic change: a reader sees the old target or
        the new one, never neither."""

    @abstractmethod
    def remove_alias(self, name: str) -> None: ...

    def resolve(self, name: str) -> str:
        """The physical collection a name reads and writes: its pointer's target, else the
        name itself (a collection made before generations, or a physical name)."""
        return self.aliases().get(name, name)

    # --- shared by both ----------------------------------------------------------------

    def vector_size(self, collection: str) -> int | None:
        vectors = self.vectors(collection)
        return vectors[0] if vectors else None

    def ensure_collection(self, collection: str, dimension: int, model: str,
                          deployment: str | None = None) -> None:
        """Create the collection for `deployment`, or check that the existing one is its (a
        collection that records no deployment is adopted) and fits the model."""
        if not self.exists(collection):
            self.create(collection, dimension, metadata={MODEL_KEY: {
                "model": model, "dimension": dimension, "deployment": deployment}})
            log.info("created collection %s (%d dimensions, cosine)", collection, dimension)
            return
        self.claim(collection, deployment)
        size = self.vector_size(collection)
        if size != dimension:
            raise CollectionMismatch(
                f"collection {collection!r} holds vectors of size {size} but model "
                f"{model!r} produces {dimension}; run `vector-sync repair` to rebuild it, "
                "or give the collection a new name"
            )

    def claim(self, collection: str, deployment: str | None) -> None:
        """Check that the existing collection is `deployment`'s before writing it; one that
        records no deployment (made by an earlier vector_sync) is adopted."""
        owner = self.deployment(collection)
        if owner is None and deployment is not None:
            self._stamp(collection, deployment=deployment)
            log.info("collection %s is now recorded as this deployment's (%s)", collection,
                     deployment)
        elif owner is not None and owner != deployment:
            raise NotThisDeployments(
                f"collection {collection!r} in Qdrant was created by another vector_sync "
                f"deployment ({owner!r}; this configuration is {deployment!r}): nothing was "
                "written to it. Give the collection another name in the config; or, if that "
                f"deployment is this one (its ledger was replaced), set `deployment: {owner}`")

    def record_model(self, collection: str, model: str, dimension: int) -> None:
        """Stamp the collection with the model its vectors come from (the check compares)."""
        self._stamp(collection, model=model, dimension=dimension)

    def model(self, collection: str) -> str | None:
        return self._stamps(collection).get("model")

    def deployment(self, collection: str) -> str | None:
        """The vector_sync deployment that created the collection (None: not recorded)."""
        return self._stamps(collection).get("deployment")

    def _stamps(self, collection: str) -> dict[str, Any]:
        return dict(self.metadata(collection).get(MODEL_KEY) or {})

    def _stamp(self, collection: str, **values: Any) -> None:
        self.set_metadata(collection, {MODEL_KEY: {**self._stamps(collection), **values}})

    def copy_collection(self, source: str, target: str, batch: int = 1_024) -> int:
        """Copy every point with its vector and payload into a new collection `target` made
        like `source` (no embedding); returns the points copied."""
        vectors = self.vectors(source)
        if vectors is None:
            raise CollectionMismatch(f"collection {source!r} has named vectors")
        if not self.exists(target):
            self.create(target, vectors[0], vectors[1], self.metadata(source))
        copied = 0
        for points in batched(self.scroll(source, None, True, with_vectors=True), batch):
            self.upsert(target, [Point(p.id, p.vector or [], p.payload) for p in points])
            copied += len(points)
        return copied

    def optimize(self, collection: str) -> bool:
        """Bring the collection's search index up to date after writes; True when anything
        was rebuilt. A server's optimizers do this by themselves, so the default does
        nothing; the embedded engine builds its HNSW index here."""
        return False

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if ids and self.exists(collection):  # a missing collection holds nothing to delete
            self.batch(collection, [Delete(list(ids))])

    def payloads(self, collection: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        return [p.payload for p in self.retrieve(collection, ids, True, False)]

    def chunks(self, collection: str, ids: Sequence[str],
               with_vectors: bool) -> Iterator[tuple[str, list[float] | None]]:
        """(text, vector or None) of the points with these ids that exist."""
        for point in self.retrieve(collection, ids, ["text"], with_vectors):
            text = point.payload.get("text")
            if isinstance(text, str):
                yield text, point.vector
