"""Embedded Qdrant (qdrant-edge) at scale: memory of a process that opens a big shard, and
search latency, with the baselines in the same run.

    .venv/bin/python benchmarks/embedded_scale.py [--points 200000] [--dim 384] [--dir D]

Two shards of the same N stand-in points (clustered random vectors, payloads like a synced
chunk's) are written once: one as the previous version created collections (vectors resident
in RAM, no HNSW threshold: `TodaysStore` below), one by `EmbeddedStore` as it is now
(everything memory-mapped, HNSW past `INDEX_AFTER_POINTS`). Every figure is one whole
process measured by the kernel (benchmarks/_measure.py):

- reads: open the shard, count (all, one source), retrieve 100 points and scroll every
  payload, no vectors: what `status`, `verify` and a sync's diff do;
- search: open, one top-10 search (what `vector-sync search` does), 30 more of new queries
  (median), the same 30 again (their pages mapped by then), recall@10 against an exact search;
  peak memory is taken before that exact search;
- optimize: `EmbeddedStore.optimize()` building the HNSW index (wall time, peak memory);
  with --convert-old, the old-config shard too, which rewrites it under the new settings.

The page cache is warm for every process (the shards were just written): the figures are a
machine with RAM to spare for the cache, as a laptop running syncs has.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as edge
from _measure import Measured, measure

from vector_sync.core.store.base import INDEXED_KEYS, Point
from vector_sync.core.store.embedded import _DISTANCES, EmbeddedStore

COLLECTION = "docs"
BATCH = 1_024
QUERIES = 30


class TodaysStore(EmbeddedStore):
    """The embedded store as the previous version made and opened shards: qdrant-edge's
    default config (vectors loaded into RAM), no threshold, shards opened as they are."""

    def create(self, collection: str, dimension: int, distance: str = "Cosine",
               metadata: dict[str, Any] | None = None) -> None:
        self.set_metadata(collection, metadata or {})
        shard = edge.EdgeShard.create(str(self.shards_dir / collection), edge.EdgeConfig(
            vectors=edge.EdgeVectorParams(size=dimension, distance=_DISTANCES[distance])))
        for key in INDEXED_KEYS:
            shard.update(edge.UpdateOperation.create_field_index(
                key, edge.PayloadSchemaType.Keyword))
        shard.flush()
        self._open[collection] = shard

    def _shard(self, collection: str) -> edge.EdgeShard:
        if collection not in self._open:
            self._open[collection] = edge.EdgeShard.load(str(self.shards_dir / collection))
        return self._open[collection]


def _store(kind: str, shards: Path) -> EmbeddedStore:
    return TodaysStore(shards) if kind == "old" else EmbeddedStore(shards)


def _vectors(points: int, dim: int, seed: int = 7) -> np.ndarray:
    """Clustered like real embeddings (2,000 topics, the same for every seed), unit length."""
    centers = np.random.default_rng(7).standard_normal((2_000, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    vectors = centers[rng.integers(0, len(centers), points)]
    vectors += 0.6 * rng.standard_normal((points, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def child_write(kind: str, shards: Path, points: int, dim: int) -> dict[str, Any]:
    store, vectors = _store(kind, shards), _vectors(points, dim)
    store.create(COLLECTION, dim)
    started = time.perf_counter()
    for start in range(0, points, BATCH):
        rows = vectors[start:start + BATCH].tolist()
        store.upsert(COLLECTION, [Point(_id(start + j), row, {
            "source": f"s{(start + j) % 3}", "doc_id": f"doc-{(start + j) // 4}",
            "chunk_index": (start + j) % 4, "chunk_count": 4, "text": f"chunk {start + j} " * 40,
            "content_hash": f"{start + j:032x}", "synced_at": "2026-12-07T12:00:00Z"})
            for j, row in enumerate(rows)])
    seconds = time.perf_counter() - started
    store.close()
    return {"write_s": seconds}


def child_reads(kind: str, shards: Path, points: int) -> dict[str, Any]:
    store = _store(kind, shards)
    started = time.perf_counter()
    total, one = store.count(COLLECTION, None), store.count(COLLECTION, "s1")
    opened_counted = time.perf_counter() - started
    got = store.retrieve(COLLECTION, [_id(i * (points // 100)) for i in range(100)], True, False)
    scrolled = sum(1 for _ in store.scroll(COLLECTION, None, True))
    seconds = time.perf_counter() - started
    store.close()
    assert total == scrolled == points and len(got) == 100 and one > 0, (total, scrolled)
    return {"open_count_s": opened_counted, "reads_s": seconds}


def child_search(kind: str, shards: Path, dim: int) -> dict[str, Any]:
    store = _store(kind, shards)
    queries = _vectors(QUERIES + 1, dim, seed=11)  # new points of the same topics
    latencies, found, again = [], [], []
    for query in queries.tolist():
        started = time.perf_counter()
        hits = store.search(COLLECTION, query, 10)
        latencies.append(time.perf_counter() - started)
        found.append({hit.id for hit in hits})
    for query in queries.tolist():  # the same queries: their pages are mapped by now
        started = time.perf_counter()
        store.search(COLLECTION, query, 10)
        again.append(time.perf_counter() - started)
    searched_mib = _peak_mib()  # before the exact searches below read every vector
    shard = store._shard(store.resolve(COLLECTION))
    exact = [{str(p.id) for p in shard.query(edge.QueryRequest(
        limit=10, query=edge.Query.Nearest(query), params=edge.SearchParams(exact=True)))}
        for query in queries.tolist()]
    info = shard.info()
    store.close()
    recall = statistics.mean(len(a & b) / 10 for a, b in zip(found, exact, strict=True))
    return {"search_ms": 1_000 * statistics.median(latencies[1:]),  # [0]: the warm-up
            "first_search_ms": 1_000 * latencies[0], "recall": recall,
            "repeat_ms": 1_000 * statistics.median(again), "searched_mib": searched_mib,
            "indexed": info.indexed_vectors_count, "segments": info.segments_count}


def _peak_mib() -> float:
    """The kernel's peak resident size of this process so far (VmHWM, as ru_maxrss)."""
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM")).split()[1]) / 1024


def child_optimize(shards: Path) -> dict[str, Any]:
    store = EmbeddedStore(shards)
    store.count(COLLECTION, None)  # open first: the figure is the build alone
    started = time.perf_counter()
    changed = store.optimize(COLLECTION)
    seconds = time.perf_counter() - started
    store.close()
    return {"optimize_s": seconds, "changed": changed}


def child_floor() -> dict[str, Any]:
    return {}  # imports only: the memory every measured process starts from


def _run(args: list[str]) -> tuple[Measured, dict[str, Any]]:
    measured = measure([sys.executable, str(Path(__file__).resolve()), "--child", *args])
    return measured, measured.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--convert-old", action="store_true",
                        help="also optimize the old-config shard (a second HNSW build)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.points, args.dim)))
        return
    work = args.dir or Path(tempfile.mkdtemp(prefix="embedded_scale_"))
    try:
        _compare(work, args.points, args.dim, args.convert_old)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


def _child(argv: list[str], points: int, dim: int) -> dict[str, Any]:
    what, rest = argv[0], argv[1:]
    if what == "floor":
        return child_floor()
    if what == "optimize":
        return child_optimize(Path(rest[0]))
    kind, shards = rest[0], Path(rest[1])
    if what == "write":
        return child_write(kind, shards, points, dim)
    if what == "reads":
        return child_reads(kind, shards, points)
    return child_search(kind, shards, dim)


def _compare(work: Path, points: int, dim: int, convert_old: bool) -> None:
    old, new = work / "old", work / "new"
    print(f"{points:,} points x {dim} dimensions ({points * dim * 4 / 2**20:,.0f} MiB of "
          f"float32 vectors) in {work}")
    floor, _ = _run(["floor"])
    print(f"\nfloor (imports only): {floor.peak_mib:.0f} MiB peak RSS")
    for kind, shards in (("old", old), ("new", new)):
        if not (shards / COLLECTION / "edge_config.json").is_file():
            done, figures = _run(["write", kind, str(shards)])
            print(f"write {kind}: {points / figures['write_s']:,.0f} points/s, "
                  f"{done.peak_mib:.0f} MiB peak")
    print("\nreads (open, count, retrieve 100, scroll every payload without vectors)")
    for label, kind, shards in (("old config, previous store", "old", old),
                                ("new config, this store", "new", new)):
        done, figures = _run(["reads", kind, str(shards)])
        print(f"  {label:<34} peak {done.peak_mib:6.0f} MiB  open+count "
              f"{figures['open_count_s']:.2f} s  all reads {figures['reads_s']:.2f} s")
    print("\nsearch (top 10: the first in a fresh process, the median of 30 new queries, of the "
          "same 30 repeated)")
    _search("old config, exact", "old", old)
    _search("new config, exact", "new", new)
    done, figures = _run(["optimize", str(new)])
    print(f"\noptimize (HNSW build): {figures['optimize_s']:.1f} s, peak {done.peak_mib:.0f} MiB")
    _search("new config, HNSW", "new", new)
    done, figures = _run(["reads", "new", str(new)])
    print(f"  reads after the build: peak {done.peak_mib:.0f} MiB, all reads "
          f"{figures['reads_s']:.2f} s")
    print("\nan old-config shard opened by this store (settings recorded; its segment as was)")
    done, figures = _run(["reads", "new", str(old)])
    print(f"  reads: peak {done.peak_mib:.0f} MiB")
    if not convert_old:
        return
    done, figures = _run(["optimize", str(old)])
    print(f"  optimize: {figures['optimize_s']:.1f} s, peak {done.peak_mib:.0f} MiB")
    done, figures = _run(["reads", "new", str(old)])
    print(f"  reads after it: peak {done.peak_mib:.0f} MiB")
    _search("  old shard after optimize, HNSW", "new", old)


def _search(label: str, kind: str, shards: Path) -> None:
    _, figures = _run(["search", kind, str(shards)])
    print(f"  {label:<34} peak {figures['searched_mib']:5.0f} MiB  first search "
          f"{figures['first_search_ms']:5.0f} ms  then {figures['search_ms']:5.1f} ms, repeated "
          f"{figures['repeat_ms']:4.1f} ms  recall@10 {figures['recall']:.2f}  indexed "
          f"{figures['indexed']:,} in {figures['segments']} segments")


if __name__ == "__main__":
    main()
