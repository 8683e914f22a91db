"""Benchmark: `verify` of 100,000 points from one source (target: under 10 s when
consistent), the time of a full drill-down, and peak memory.

Setup (not measured): 25,000 documents x 4 chunks written straight into embedded Qdrant with
stand-in vectors (verification never reads vectors), plus the matching expected state and
ledger rows — exactly what a sync would have left. Then:
  1. consistent: one scroll, bucket digests equal, no drill-down;
  2. every bucket differs (a ledger row of every document altered): the full drill-down;
  3. sampling mode (1%).
The measurements run in a fresh process (`--measure DIR`) so that its peak memory is a
verify's, not the setup's; opening embedded storage is reported apart from verification.

    .venv/bin/python benchmarks/verify_100k.py [--docs N] [--chunks K] [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vector_sync.config import ChunkingConfig, QdrantConfig, StateConfig
from vector_sync.core.consistency.compare import Verification, Verifier
from vector_sync.core.hashing import payload_hash, point_id
from vector_sync.core.ledger import Ledger, LedgerRow
from vector_sync.core.spec import CollectionSpec
from vector_sync.core.store import Point, open_store

SOURCE, COLLECTION = "bench", "docs"


def setup(state: StateConfig, docs: int, chunks: int) -> dict:
    expected = {}
    rng = np.random.default_rng(0)
    with open_store(QdrantConfig(), state) as store:
        store.ensure_collection(COLLECTION, 384, "stand-in")
        batch: list[Point] = []
        for d in range(docs):
            doc_id = f"folder{d % 100}/note{d}.md"
            payload = {"tags": [f"t{d % 7}"], "path": doc_id}
            chash, phash = f"c{d}", payload_hash(payload)
            expected[doc_id] = (chash, phash, chunks)
            for i in range(chunks):
                batch.append(Point(point_id(SOURCE, doc_id, i), rng.random(384).tolist(), {
                    **payload, "source": SOURCE, "doc_id": doc_id, "chunk_index": i,
                    "chunk_count": chunks, "text": "x", "content_hash": chash,
                    "synced_at": "2026-11-21T00:00:00Z"}))
            if len(batch) >= 2000:
                store.upsert(COLLECTION, batch)
                batch = []
        if batch:
            store.upsert(COLLECTION, batch)
    ledger = Ledger(state.ledger_sqlalchemy_url())
    ledger.upsert(LedgerRow(source=SOURCE, collection=COLLECTION, doc_id=d, status="synced",
                            content_hash=c, payload_hash=p, chunk_count=n)
                  for d, (c, p, n) in expected.items())
    ledger.close()
    (state.dir / "expected.json").write_text(json.dumps(expected))
    return expected


def timed_verify(state: StateConfig, spec: CollectionSpec, expected: dict, ledger: Ledger,
                 sample: float | None = None) -> tuple[float, float, Verification]:
    """(seconds to open the storage, seconds to verify, result)."""
    started = time.perf_counter()
    with open_store(QdrantConfig(), state) as store:  # opening is part of a real verify
        opened = time.perf_counter() - started
        result = Verifier(store, SOURCE, spec).verify(
            expected, ledger.rows(SOURCE, COLLECTION), 384, sample)
    return opened, time.perf_counter() - started - opened, result


def rss_mib() -> float:
    """Peak resident memory of this process since it started (VmHWM: unlike ru_maxrss, it
    does not carry over the parent's peak into a forked child)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 1024  # type: ignore[index]


def measure(state: StateConfig) -> None:
    """The three verifications, in the fresh process `main` starts."""
    spec = CollectionSpec(COLLECTION, ("body",), ("tags", "path"), "stand-in", ChunkingConfig())
    expected = {d: tuple(v) for d, v in json.loads((state.dir / "expected.json").read_text())
                .items()}
    ledger = Ledger(state.ledger_sqlalchemy_url())
    rss_before = rss_mib()
    opened, seconds, result = timed_verify(state, spec, expected, ledger)
    print(f"consistent verify: {opened + seconds:.2f} s for {result.points:,} points "
          f"(target <= 5 s): opening embedded Qdrant {opened:.2f} s, verification "
          f"{seconds:.2f} s ({result.points / seconds:,.0f} points/s), buckets differing "
          f"{result.buckets_differing}; max RSS {rss_before:.0f} -> {rss_mib():.0f} MiB "
          "(target <= 600 MiB)")
    assert result.consistent and not result.ledger_disagrees

    ledger.upsert(LedgerRow(source=SOURCE, collection=COLLECTION, doc_id=d,
                            status="synced", content_hash="altered", payload_hash=p,
                            chunk_count=n) for d, (_, p, n) in expected.items())
    opened, seconds, result = timed_verify(state, spec, expected, ledger)
    print(f"full drill-down: {opened + seconds:.2f} s (open {opened:.2f} s, verification "
          f"{seconds:.2f} s), buckets differing {result.buckets_differing}, ledger "
          f"disagreements {len(result.ledger_disagrees):,}; max RSS {rss_mib():.0f} MiB")

    opened, seconds, result = timed_verify(state, spec, expected, ledger, sample=0.01)
    print(f"sampling 1%: {opened + seconds:.2f} s (open {opened:.2f} s) — {result.sampled}")
    ledger.close()
    print(f"verify process max RSS: {rss_mib():.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=25_000)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="2,500 documents")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(StateConfig(dir=args.measure))
        return
    docs = 2_500 if args.quick else args.docs
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        setup(StateConfig(dir=Path(tmp)), docs, args.chunks)
        print(f"setup (not measured): {docs * args.chunks:,} points in "
              f"{time.perf_counter() - started:.1f} s")
        subprocess.run([sys.executable, __file__, "--measure", tmp], check=True)


if __name__ == "__main__":
    main()
