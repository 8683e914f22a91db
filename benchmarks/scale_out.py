"""Benchmark: the initial sync of one large source with its embedding split into shards,
run by 1 worker and then by 2 workers at once, and the per-document costs behind the
capacity plan in docs/scaling-out.md.

Each configuration is a fresh state dir and a real Dagster run of the sync job through an
on-disk instance with the multiprocess executor (`max_concurrent` = workers, every step its
own process: what a Celery worker does with a step, without the broker's few milliseconds),
`execution.embed_shards: 2`, and ONNX Runtime threads = cores / workers, so that the two
configurations use the same cores. The ratio is bounded by the cores: on 2 cores, 2 workers
can at best halve the embedding time, and the listing, diff and Qdrant write stay serial.

    .venv/bin/python benchmarks/scale_out.py [--notes 3000] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from _vault import code_version, write_config
from noop_resync import generate_vault

SOURCE = COLLECTION = "notes"


def configure(root: Path, workers: int) -> Path:
    config_file = write_config(root)
    config = yaml.safe_load(config_file.read_text())
    cores = os.cpu_count() or 1
    config["embedding"]["threads"] = max(1, cores // workers)
    config["execution"] = {"executor": "multiprocess", "max_concurrent": workers,
                           "embed_shards": 2}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_file


def timed_run(root: Path, workers: int) -> dict[str, Any]:
    """One initial sync; wall seconds, chunks, and each step's materialization metadata."""
    from vector_sync.cli.runner import reconstructable_sync

    job = reconstructable_sync(str(configure(root, workers)), SOURCE)
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        with dg.execute_job(job, instance=instance,
                            tags={"dagster/partition": SOURCE}) as result:
            wall = time.perf_counter() - started
            if not result.success:
                raise RuntimeError(f"the {workers}-worker run failed")
            metadata = {}
            for event in result.get_asset_materialization_events():
                materialization = event.event_specific_data.materialization
                metadata["/".join(materialization.asset_key.path)] = {
                    k: v.value for k, v in materialization.metadata.items()}
    return {"wall": wall, "metadata": metadata}


def verify_seconds(root: Path) -> float:
    from vector_sync.cli import main

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its JSON report: only the time counts
        code = main(["verify", "--config", str(root / "vector_sync.yaml"), "--json"])
    if code != 0:
        raise RuntimeError("verify found the synced collection inconsistent")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    os.environ.pop("DAGSTER_HOME", None)
    scratch = Path(tempfile.mkdtemp(prefix="vector_sync_scale_"))
    try:
        runs = {}
        for workers in (1, 2):
            root = scratch / f"w{workers}"
            generate_vault(root / "vault", args.notes, 100, 400, args.seed)
            print(f"[{time.strftime('%H:%M:%S')}] {workers} worker(s): initial sync of "
                  f"{args.notes} notes", flush=True)
            runs[workers] = timed_run(root, workers)
        verify = verify_seconds(scratch / "w2")
        report(args.notes, runs, verify)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def report(notes: int, runs: dict[int, dict[str, Any]], verify: float) -> None:
    one = runs[1]
    meta = one["metadata"]
    chunks = int(meta[f"embeddings_{COLLECTION}"]["chunks_embedded"])
    points = int(meta[f"qdrant_{COLLECTION}"].get("points_written", chunks))
    print(f"\nscale_out.py: code {code_version()}; {os.cpu_count()} CPUs; {notes} notes, "
          f"{chunks} chunks, 2 shards")
    print("| workers | initial sync, wall | chunks/s | vs 1 worker |")
    print("|---|---|---|---|")
    for workers, run in runs.items():
        print(f"| {workers} | {run['wall']:.1f} s | {chunks / run['wall']:.1f} | "
              f"{one['wall'] / run['wall']:.2f}x |")
    print("\nper-document costs (1 worker, from the steps' own timings):")
    costs = {
        "scan + read, per document": meta["source_snapshot"]["duration_s"] / notes,
        "diff + chunking, per document": meta[f"changes_{COLLECTION}"]["duration_s"] / notes,
        "embedding, per chunk (one worker)":
            meta[f"embeddings_{COLLECTION}"]["duration_s"] / chunks,
        "Qdrant write + ledger, per point": meta[f"qdrant_{COLLECTION}"]["duration_s"] / points,
        "verify, per point": verify / points,
    }
    for name, seconds in costs.items():
        print(f"  {name}: {seconds * 1000:.2f} ms")
    print(f"  chunks per document: {chunks / notes:.2f}")


if __name__ == "__main__":
    main()
