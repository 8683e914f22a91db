"""Embedded Qdrant: the server's own engine in this process, through qdrant-edge.

Layout under `state.dir`/qdrant:

    embedded.lock             held by the one process that has the storage open
    shards/<collection>/      one qdrant-edge shard per collection (the server's data format)
    shards/<collection>.json  the collection's metadata (qdrant-edge shards keep none)
    shards/aliases.json       configured name -> the physical collection serving it

qdrant-edge has no collections and so no aliases: the pointer file is this engine's alias,
replaced atomically (written and fsynced beside it, renamed into place) and read by every
call that takes a collection name, so search, verify and every writer follow a switch at
their next call.

A shard opens in about half a second at 100,000 points and is opened only when a step first
touches its collection. qdrant-edge's `update()` does not fsync, so every write ends with a
`flush()`: the ledger is written after a write returns, and must never claim a point a crash
could still take back.

Vectors, payloads, the HNSW graph and the id tracker stay in their files, memory-mapped
(`Memory.Cold`): opening a shard and reading payloads costs what the call touches, not the
collection's size. qdrant-edge runs no optimizer of its own: the HNSW index is built only when
`optimize()` is called, for each segment whose vectors have passed `index_after` points.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import qdrant_edge as edge

from vector_sync.core import faults
from vector_sync.core.atomic import atomic_write, write_atomically
from vector_sync.core.locks import LockHeld, hold_file_lock
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
from vector_sync.core.store.migration import migrate_if_local_mode

log = logging.getLogger(__name__)
PAGE = 8_192
_DISTANCES = {"Cosine": edge.Distance.Cosine, "Dot": edge.Distance.Dot,
              "Euclid": edge.Distance.Euclid, "Manhattan": edge.Distance.Manhattan}
# Below this many points an exact search is fast (a few ms at 384 dimensions) and writes
# build nothing; past it a segment gets an HNSW graph at the next optimize().
INDEX_AFTER_POINTS = 20_000
_FULL_SCAN_KB = 10_000  # Qdrant's default: an indexed segment smaller than this is scanned
_COLD = edge.Memory.Cold


class EmbeddedStore(QdrantStore):
    def __init__(self, shards_dir: Path, lock: IO[str] | None = None,
                 index_after: int | None = None) -> None:
        self.shards_dir = shards_dir
        self._lock = lock
        self.index_after = index_after or INDEX_AFTER_POINTS
        self._open: dict[str, edge.EdgeShard] = {}
        self._aliases: tuple[tuple[int, int], dict[str, str]] | None = None

    @classmethod
    def open(cls, root: Path, wait_s: float) -> EmbeddedStore:
        root.mkdir(parents=True, exist_ok=True)
        try:  # one process at a time: wait for another run or a CLI search to let go
            lock = hold_file_lock(root / "embedded.lock", wait_s)
        except LockHeld as busy:
            raise QdrantUnavailable(
                f"the embedded Qdrant storage at {root} is in use by another process "
                f"({busy.holder}; waited {wait_s:g} s; embedded storage admits one process "
                "at a time: wait for the other run to finish, or set qdrant.url to a Qdrant "
                "server for concurrent access)") from None
        try:
            migrate_if_local_mode(root, root / "shards", cls)
        except BaseException:
            lock.close()
            raise
        return cls(root / "shards", lock)

    def close(self) -> None:
        try:
            for shard in self._open.values():
                shard.close()  # flushes
        finally:
            self._open.clear()
            if self._lock:
                self._lock.close()  # releases the lock

    # --- collections ---------------------------------------------------------------------

    def collections(self) -> list[str]:
        if not self.shards_dir.is_dir():
            return []
        return sorted(p.name for p in self.shards_dir.iterdir() if self._is_shard(p))

    def exists(self, collection: str) -> bool:
        collection = self.resolve(collection)
        return collection in self._open or self._is_shard(self.shards_dir / collection)

    @staticmethod
    def _is_shard(path: Path) -> bool:
        return (path / "edge_config.json").is_file()

    def vectors(self, collection: str) -> tuple[int, str] | None:
        return self._vectors(self.resolve(collection))

    def _vectors(self, collection: str) -> tuple[int, str] | None:
        config = json.loads((self.shards_dir / collection / "edge_config.json").read_text())
        vectors = config.get("vectors") or {}
        if set(vectors) != {""}:
            return None
        return int(vectors[""]["size"]), str(vectors[""]["distance"])

    def create(self, collection: str, dimension: int, distance: str = "Cosine",
               metadata: dict[str, Any] | None = None) -> None:
        collection = self.resolve(collection)
        self.set_metadata(collection, metadata or {})
        shard = edge.EdgeShard.create(str(self.shards_dir / collection),
                                      self._config(dimension, distance))
        for key in INDEXED_KEYS:  # no payload-aware HNSW links: search never filters, and a
            # source's links would be a second graph built at every optimize
            shard.update(edge.UpdateOperation.create_field_index(
                key, edge.KeywordIndexParams(memory=_COLD, enable_hnsw=False)))
        shard.flush()
        self._open[collection] = shard

    def _config(self, dimension: int, distance: str) -> edge.EdgeConfig:
        """Everything memory-mapped, and the HNSW threshold; wal_enabled is left as the shard
        has it (qdrant-edge refuses to open a shard with another)."""
        index_kb = max(1, self.index_after * dimension * 4 // 1024)  # 0 would turn it off
        return edge.EdgeConfig(
            vectors=edge.EdgeVectorParams(size=dimension, distance=_DISTANCES[distance],
                                          memory=_COLD),
            payload_memory=_COLD, id_tracker_memory=_COLD,
            hnsw_config=edge.HnswIndexConfig(
                m=16, ef_construct=100, full_scan_threshold=min(_FULL_SCAN_KB, index_kb),
                memory=_COLD),
            optimizers=edge.EdgeOptimizersConfig(indexing_threshold=index_kb))

    def metadata(self, collection: str) -> dict[str, Any]:
        collection = self.resolve(collection)
        path = self._metadata_path(collection)
        return json.loads(path.read_text()) if path.is_file() else {}

    def set_metadata(self, collection: str, metadata: dict[str, Any]) -> None:
        collection = self.resolve(collection)
        write_atomically(self._metadata_path(collection), json.dumps(metadata, indent=2))

    # --- the pointer --------------------------------------------------------------------------

    @property
    def _aliases_path(self) -> Path:
        return self.shards_dir / "aliases.json"

    def aliases(self) -> dict[str, str]:
        try:  # re-read only when the file changed: one stat per call otherwise
            stat = self._aliases_path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_mtime_ns, stat.st_ino)
        if self._aliases is None or self._aliases[0] != key:
            self._aliases = (key, dict(json.loads(self._aliases_path.read_text())))
        return dict(self._aliases[1])

    def switch_alias(self, name: str, physical: str) -> None:
        aliases = self.aliases()
        aliases[name] = physical
        self._write_aliases(aliases)

    def remove_alias(self, name: str) -> None:
        aliases = self.aliases()
        if aliases.pop(name, None) is not None:
            self._write_aliases(aliases)

    def _write_aliases(self, aliases: dict[str, str]) -> None:
        """Replaced whole, and durable before the ledger records the switch: written and
        fsynced beside it, renamed into place, the folder fsynced."""
        self.shards_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self._aliases_path) as temporary, temporary.open("w") as handle:
            handle.write(json.dumps(aliases, indent=2, sort_keys=True))
            handle.flush()
            os.fsync(handle.fileno())
        folder = os.open(self.shards_dir, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        self._aliases = None

    def _metadata_path(self, collection: str) -> Path:
        return self.shards_dir / f"{collection}.json"

    def drop(self, collection: str) -> None:
        if not self._is_shard(self.shards_dir / collection):  # a name: what it points at
            collection = self.resolve(collection)
        if shard := self._open.pop(collection, None):
            shard.close()
        shutil.rmtree(self.shards_dir / collection, ignore_errors=True)
        self._metadata_path(collection).unlink(missing_ok=True)

    def _shard(self, collection: str) -> edge.EdgeShard:
        if collection not in self._open:
            started = time.perf_counter()
            # A shard made by an earlier version (vectors resident in RAM, no threshold) gets
            # this version's settings: qdrant-edge records them, and segments the optimizer
            # writes from then on follow them; its existing appendable segment keeps its own.
            path = self.shards_dir / collection
            vectors = self._vectors(collection) if self._is_shard(path) else None
            config = self._config(*vectors) if vectors else None
            self._open[collection] = edge.EdgeShard.load(str(path), config)
            log.debug("opened embedded collection %s in %.2f s", collection,
                      time.perf_counter() - started)
        return self._open[collection]

    def optimize(self, collection: str) -> bool:
        """Build the HNSW index of every segment past `index_after` points, merge small
        segments and drop deleted points' space; blocks until done (about four minutes for a
        first build of 200,000 points of 384 dimensions on a shared 2-core machine,
        microseconds when there is nothing to do)."""
        collection = self.resolve(collection)
        if collection not in self._open and not self._is_shard(self.shards_dir / collection):
            return False
        shard, started = self._shard(collection), time.perf_counter()
        if not shard.optimize():
            return False
        shard.flush()
        info = shard.info()
        log.info("optimized embedded collection %s in %.1f s: %d of %d points indexed, "
                 "%d segments", collection, time.perf_counter() - started,
                 info.indexed_vectors_count, info.points_count, info.segments_count)
        return True

    # --- points ---------------------------------------------------------------------------

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        collection = self.resolve(collection)
        shard = self._shard(collection)
        shard.update(edge.UpdateOperation.upsert_points(
            [edge.Point(p.id, p.vector, p.payload) for p in points]))
        faults.reached("qdrant.upsert.unflushed")  # inside one write: applied, not flushed
        shard.flush()
        faults.reached("qdrant.upsert.flushed")

    def batch(self, collection: str, operations: Sequence[Operation]) -> None:
        collection = self.resolve(collection)
        shard = self._shard(collection)
        for operation in operations:
            if isinstance(operation, Delete):
                shard.update(edge.UpdateOperation.delete_points(list(operation.ids)))
            elif isinstance(operation, SetPayload):
                shard.update(edge.UpdateOperation.set_payload(
                    list(operation.ids), operation.payload))
            else:
                shard.update(edge.UpdateOperation.delete_payload(
                    list(operation.ids), list(operation.keys)))
            faults.reached("qdrant.batch.operation")  # part of the operations applied
        shard.flush()
        faults.reached("qdrant.batch.flushed")

    def scroll(self, collection: str, source: str | None, with_payload: WithPayload = True,
               with_vectors: bool = False) -> Iterator[StoredPoint]:
        collection = self.resolve(collection)
        if not self.exists(collection):
            return
        shard, offset = self._shard(collection), None
        while True:
            records, offset = shard.scroll(edge.ScrollRequest(
                offset=offset, limit=PAGE, filter=_of_source(source),
                with_payload=_payload_selector(with_payload), with_vector=with_vectors))
            yield from map(_stored, records)
            if offset is None:
                return

    def retrieve(self, collection: str, ids: Sequence[str], with_payload: WithPayload,
                 with_vectors: bool) -> list[StoredPoint]:
        collection = self.resolve(collection)
        return [_stored(r) for r in self._shard(collection).retrieve(
            list(ids), with_payload=_payload_selector(with_payload), with_vector=with_vectors)]

    def count(self, collection: str, source: str | None) -> int:
        collection = self.resolve(collection)
        return int(self._shard(collection).count(
            edge.CountRequest(exact=True, filter=_of_source(source))))

    def search(self, collection: str, vector: Sequence[float], limit: int) -> list[Hit]:
        collection = self.resolve(collection)
        points = self._shard(collection).query(edge.QueryRequest(
            limit=limit, query=edge.Query.Nearest(list(vector)), with_payload=True))
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def sources(self, collection: str) -> dict[str | None, int]:
        collection = self.resolve(collection)
        shard = self._shard(collection)
        facets = shard.facet(edge.FacetRequest(key="source", limit=FACET_LIMIT, exact=True))
        found: dict[str | None, int] = {  # a value whose points were all deleted counts 0
            str(hit.value): int(hit.count) for hit in facets.hits if hit.count}
        if unlabelled := shard.count(edge.CountRequest(exact=True, filter=_without_source())):
            found[None] = int(unlabelled)
        return found

    def delete_source(self, collection: str, source: str | None) -> None:
        collection = self.resolve(collection)
        shard = self._shard(collection)
        shard.update(edge.UpdateOperation.delete_points_by_filter(
            _without_source() if source is None else _source_is(source)))
        shard.flush()


def _payload_selector(with_payload: WithPayload) -> Any:
    if isinstance(with_payload, bool):
        return with_payload
    return edge.PayloadSelector.Include(list(with_payload))


def _of_source(source: str | None) -> edge.Filter | None:
    return None if source is None else _source_is(source)


def _source_is(source: str) -> edge.Filter:
    return edge.Filter(must=[edge.FieldCondition(key="source", match=edge.MatchValue(source))])


def _without_source() -> edge.Filter:
    return edge.Filter(must=[edge.IsEmptyCondition("source")])


def _stored(record: Any) -> StoredPoint:
    vector = record.vector if isinstance(record.vector, list) else None
    return StoredPoint(str(record.id), record.payload or {}, vector)
