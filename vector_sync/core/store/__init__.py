"""The Qdrant side, behind one small interface with two engines.

- Embedded (the default, `qdrant.url` null): Qdrant's own engine in this process through
  qdrant-edge (`embedded.py`), one shard per collection under `state.dir`/qdrant.
- A server (`qdrant.url`): qdrant-client over HTTP (`server.py`).

Callers describe points and operations with the plain types of `base.py` (re-exported here)
and get plain records back; only the two engine modules speak a Qdrant library, and each is
imported only when a run opens Qdrant: a run with nothing to write never pays for either.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from vector_sync.core.settings import QdrantConfig, StateConfig
from vector_sync.core.store.base import (
    FACET_LIMIT,
    INDEXED_KEYS,
    MODEL_KEY,
    CollectionMismatch,
    Delete,
    DeletePayload,
    Hit,
    NotThisDeployments,
    Operation,
    Point,
    QdrantStore,
    QdrantUnavailable,
    SetPayload,
    StoredPoint,
    WithPayload,
)

__all__ = [
    "FACET_LIMIT", "INDEXED_KEYS", "MODEL_KEY", "CollectionMismatch", "Delete", "DeletePayload",
    "Hit", "NotThisDeployments", "Operation", "Point", "QdrantStore", "QdrantUnavailable",
    "SetPayload", "StoredPoint", "WithPayload", "open_store",
]


@contextmanager
def open_store(qdrant: QdrantConfig, state: StateConfig) -> Iterator[QdrantStore]:
    """Open Qdrant for the duration of a step; embedded storage admits one process at a
    time (the opener waits up to `qdrant.lock_wait_s` for it)."""
    store: QdrantStore
    if qdrant.url:
        from vector_sync.core.store.server import ServerStore

        store = ServerStore.connect(qdrant)
    else:
        from vector_sync.core.store.embedded import EmbeddedStore

        store = EmbeddedStore.open(state.qdrant_path, qdrant.lock_wait_s)
    try:
        yield store
    finally:
        store.close()
