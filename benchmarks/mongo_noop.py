"""No-op re-sync of a MongoDB collection of 100,000 documents: what finding "nothing
changed" costs.

The collection (a catalogue of software tools, ``--docs`` documents) is fanned out to two
Qdrant collections and already fully synced. Measured: the ``source_snapshot`` stage
(vector_sync.core.pipeline.snapshot.snapshot: source.scan, the ledger look-ups, the hint
comparison, the snapshot Parquet), which is where a no-op run decides that nothing has to be
read.

(a) with ``updated_field``: scan() streams only ``_id`` and ``updatedAt`` (this pass is
    also the id scan that finds deletions). Target: under 2 s.
(b) without: scan() streams the projected documents and hashes them. Target: at least
    10,000 documents/s.

Each figure comes with its floor on this server: the same query walked with
``find_raw_batches``, nothing decoded or hashed, i.e. what any client pays to receive those
bytes. The server is SecantusDB's Python MongoDB server (``secantusd-py``), started in its
own process as mongod would be; it, not the client, dominates both figures.

Setup (not measured): the documents are inserted, then one real sync runs with a stand-in
embedder (deterministic normalized random vectors seeded by each text) because embedding
200,000 chunks with the real model would take hours. Everything else in that sync is real
(MongoDB over the wire, the SQLite ledger, embedded Qdrant), and the stand-in is removed
before anything is measured. Switching to (b) takes one more sync (every hint changes form;
nothing is embedded or written to Qdrant), also not measured.

Run: ``.venv/bin/python benchmarks/mongo_noop.py [--docs N] [--repeats R] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from _vault import WORDS, cheap_setup, dagster_log, sentence

from vector_sync.sources.mongodb.source import ID_SCAN_BATCH_FACTOR

SOURCE = "tools"
COLLECTIONS = {
    "tools": {"embed": ["name", "tagline", "description"], "payload": ["website", "pricing"]},
    "functionality": {"embed": ["functionality", "categories"], "payload": ["website"]},
}
DIMENSION = 384
TARGET_UPDATED_S = 2.0
TARGET_HASHED_PER_S = 10_000
URI_VARIABLE = "VECTOR_SYNC_BENCH_MONGODB_URI"
CATEGORIES = ["analytics", "automation", "chat", "coding", "design", "finance", "marketing",
              "productivity", "research", "security", "video", "writing"]


# --- the server and the documents -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def mongo_server(storage: Path) -> Iterator[str]:
    """secantusd-py in its own process group; its URI."""
    from pymongo import MongoClient

    port = free_port()
    daemon = Path(sys.executable).with_name("secantusd-py")
    process = subprocess.Popen(
        [str(daemon), "--port", str(port), "--storage-path", str(storage),
         "--log-level", "ERROR", "--standalone"], start_new_session=True)
    uri = f"mongodb://127.0.0.1:{port}/"
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=20_000)
        client.admin.command("ping")
        client.close()
        yield uri
    finally:
        process.terminate()  # a graceful stop: it closes its storage first
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(sentence(rng, low, high))


def tool(rng: random.Random, index: int, start: datetime) -> dict[str, Any]:
    """A software tool's catalogue entry: name, tagline, description, functionality,
    categories... (about 1 KB of BSON)."""
    name = f"{rng.choice(WORDS).title()}{rng.choice(WORDS).title()} {index}"
    return {
        "name": name, "tagline": words(rng, 4, 9), "description": words(rng, 15, 30),
        "functionality": [words(rng, 2, 5) for _ in range(rng.randint(2, 6))],
        "categories": rng.sample(CATEGORIES, rng.randint(1, 3)),
        "industries": rng.sample(WORDS, 2), "interface": rng.choice(["web", "desktop", "api"]),
        "pricing": {"model": rng.choice(["free", "freemium", "paid"]),
                    "plans": [{"name": "pro", "usd": rng.randint(5, 99)}]},
        "website": f"https://{name.split()[0].lower()}.example", "logoUrl": "/logo.png",
        "createdAt": start, "updatedAt": start + timedelta(seconds=index),
    }


def insert_documents(uri: str, count: int, seed: int) -> None:
    from pymongo import MongoClient

    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    collection = client["bench"]["tools"]
    for first in range(0, count, 5000):
        last = min(count, first + 5000)
        collection.insert_many([tool(rng, i, start) for i in range(first, last)])
    client.close()


def write_config(root: Path, updated_field: str | None) -> Path:
    source: dict[str, Any] = {"kind": "mongodb", "uri": "${" + URI_VARIABLE + "}",
                              "database": "bench", "collection": "tools",
                              "collections": list(COLLECTIONS)}
    if updated_field:
        source["updated_field"] = updated_field
    config = {"state": {"dir": "state"}, "sources": {SOURCE: source},
              "collections": COLLECTIONS}
    path = root / "vector_sync.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- setup only: a stand-in embedder --------------------------------------------------------


def setup_sync(config_file: Path, docs: int, what: str) -> bool:
    """A sync as the CLI runs it (the Dagster asset job, in-process), with the stand-ins."""
    from vector_sync.cli.runner import sync_source
    from vector_sync.config import load_config

    started = time.perf_counter()
    with cheap_setup(), dagster_log(config_file.with_name("dagster.log")):
        report = sync_source(config_file, load_config(config_file), SOURCE)
    counts = report["collections"]
    print(f"setup: {what} in {time.perf_counter() - started:.1f} s, not measured: {counts}")
    if report["error"]:
        print(f"setup: the run failed: {report['error']}")
        return False
    failed = sum(c["failed"] for c in counts.values())
    return not failed and all(
        c["added"] + c["unchanged"] + c["updated"] == docs for c in counts.values())


# --- measurements ---------------------------------------------------------------------------


@dataclass
class Timing:
    wall: float  # seconds
    cpu: float  # seconds of this process's CPU: the client's own work, not the server's


@contextmanager
def timing() -> Iterator[Timing]:
    found = Timing(0.0, 0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    yield found
    found.wall, found.cpu = time.perf_counter() - wall, time.process_time() - cpu


def detection(config_file: Path) -> tuple[Timing, dict[str, Any]]:
    """The source_snapshot stage, timed; its metadata (states counted)."""
    from vector_sync.config import load_config
    from vector_sync.core.pipeline.snapshot import snapshot

    config = load_config(config_file)
    with timing() as took:
        metadata = snapshot(config, SOURCE)
    return took, metadata


def scan_only(config_file: Path) -> Timing:
    from vector_sync.config import load_config

    config = load_config(config_file)
    source = config.open_source(SOURCE)  # the stage opens it the same way
    try:
        with timing() as took:
            for _ in source.scan():
                pass
    finally:
        getattr(source, "close", lambda: None)()
    return took


def server_floor(uri: str, projection: dict[str, int], batch_size: int) -> Timing:
    """Receiving the scan's bytes and nothing else."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    with timing() as took:
        for _ in client["bench"]["tools"].find_raw_batches({}, projection,
                                                           batch_size=batch_size):
            pass
    client.close()
    return took


@dataclass
class Measured:
    runs: list[Timing]
    scans: list[Timing]
    floors: list[Timing]
    problems: list[str]


def measure(config_file: Path, uri: str, projection: dict[str, int], batch_size: int,
            repeats: int, docs: int) -> Measured:
    """Interleaved, so that a change in the machine's load affects all three alike."""
    found = Measured([], [], [], [])
    for _ in range(repeats):
        took, metadata = detection(config_file)
        found.runs.append(took)
        if metadata["skipped_unchanged"] != docs or metadata["read"] or metadata["failed"]:
            found.problems.append(f"not a no-op: {metadata}")
        found.scans.append(scan_only(config_file))
        found.floors.append(server_floor(uri, projection, batch_size))
    return found


def median(timings: list[Timing], field: str = "wall") -> float:
    return statistics.median(getattr(t, field) for t in timings)


def report(title: str, measured: Measured, docs: int) -> float:
    wall = median(measured.runs)
    walls = ", ".join(f"{t.wall:.3f}" for t in measured.runs)
    print(title)
    print(f"    source_snapshot stage: median {wall:.3f} s ({walls}), "
          f"{docs / wall:,.0f} documents/s")
    scan_cpu = median(measured.scans, "cpu")
    print(f"      client CPU: {median(measured.runs, 'cpu'):.3f} s, of which source.scan() "
          f"{scan_cpu:.3f} s ({scan_cpu / docs * 1e6:.1f} us per document)")
    print("      (the rest: ledger reads, hint comparison, snapshot Parquet)")
    print(f"    source.scan() alone: median {median(measured.scans):.3f} s wall")
    print(f"    server floor, the same query with nothing decoded: median "
          f"{median(measured.floors):.3f} s wall (secantusd-py walking {docs} documents)")
    return wall


# --- main -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="2,000 documents, one run each")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.docs, args.repeats = min(args.docs, 2000), 1
    os.environ.pop("DAGSTER_HOME", None)
    root = Path(tempfile.mkdtemp(prefix="vector_sync_mongo_noop_"))
    try:
        with mongo_server(root / "mongo") as uri:
            os.environ[URI_VARIABLE] = uri
            return run(args, root, uri)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path, uri: str) -> int:
    docs = args.docs
    print(f"mongo_noop: {docs} documents fanned out to {len(COLLECTIONS)} collections, "
          f"{args.repeats} run(s) per measurement, {os.cpu_count()} CPUs, in {root}")
    started = time.perf_counter()
    insert_documents(uri, docs, args.seed)
    print(f"setup: inserted {docs} documents into secantusd-py in "
          f"{time.perf_counter() - started:.1f} s, not measured")

    config_file = write_config(root, "updatedAt")
    if not setup_sync(config_file, docs, "initial sync with a stand-in embedder"):
        print("setup failed")
        return 1
    updated = measure(config_file, uri, {"_id": 1, "updatedAt": 1},
                      1000 * ID_SCAN_BATCH_FACTOR, args.repeats, docs)

    config_file = write_config(root, None)
    if not setup_sync(config_file, docs, "sync after dropping updated_field (hints re-made)"):
        print("setup failed")
        return 1
    projection = {"_id": 1, "name": 1, "tagline": 1, "description": 1, "website": 1,
                  "pricing": 1, "functionality": 1, "categories": 1}
    hashed = measure(config_file, uri, projection, 1000, args.repeats, docs)

    print()
    print("=" * 78)
    print(f"no-op detection over {docs} MongoDB documents (nothing changed); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("-" * 78)
    seconds_a = report("(a) with updated_field (scan of _id + updatedAt, also the deletion scan)",
                       updated, docs)
    verdict_a = "MEETS" if seconds_a < TARGET_UPDATED_S else "MISSES"
    print(f"    target < {TARGET_UPDATED_S} s: {verdict_a}")
    if median(updated.floors) >= TARGET_UPDATED_S:
        print(f"    (the server alone needs {median(updated.floors):.1f} s to send the ids: no "
              "client meets the target against it)")
    seconds_b = report("(b) without updated_field (projected documents streamed and hashed)",
                       hashed, docs)
    rate = docs / seconds_b
    verdict_b = "MEETS" if rate >= TARGET_HASHED_PER_S else "MISSES"
    print(f"    target >= {TARGET_HASHED_PER_S:,} documents/s hashed: {verdict_b}")
    client_rate = docs / median(hashed.runs, "cpu")
    print(f"    (client side alone: {client_rate:,.0f} documents/s per CPU second)")
    problems = updated.problems + hashed.problems
    print(f"no-op checks (every document skipped, none read or failed): "
          f"{'OK' if not problems else 'FAILED'}")
    for problem in problems:
        print(f"  {problem}")
    print("=" * 78)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
