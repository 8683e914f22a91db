"""No-op change detection of the SurrealDB source on `--records` records (default 100,000):
what finding "nothing changed" costs the source, with and without a change feed.

Two tables in one embedded SurrealKV database (the engine in this process, as the tests run
it) hold the same records; one is defined with `CHANGEFEED 1d`. Measured, median of 3, the
source's own detection work (`changed_since` + `scan()`: what the snapshot stage asks of the
source before it compares hints with the ledger):

  changefeed, not listed   the feed is read from the checkpoint (nothing after it) and, as
                 it names every change, a sync lists nothing (until its safety period)
  changefeed     the same, and the ids listed (the safety-net listing, or
                 full_listing_every_s: 0)
  updated_field  no feed: every record's id and `updated_at` listed
  hash           no feed: every record fetched and hashed

The baseline of the same run is the cheapest possible listing: `SELECT VALUE id FROM t`
through the same SDK, nothing converted. The ledger look-ups that follow are the same for
every source kind (benchmarks/mongo_noop.py measures them at 100,000 documents).

Run: ``.venv/bin/python benchmarks/surreal_noop.py [--records N]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _vault import WORDS, scratch, sentence
from surrealdb import Surreal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vector_sync.sources.surrealdb import SurrealConfig  # noqa: E402

BATCH = 5000


def fill(url: str, records: int) -> None:
    rng = random.Random(16)
    db = Surreal(url)
    db.use("bench", "cms")
    db.query("DEFINE TABLE fed CHANGEFEED 1d; DEFINE TABLE plain;")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for first in range(0, records, BATCH):
        rows = [{"id": i, "title": " ".join(sentence(rng, 3, 6)),
                 "body": " ".join(" ".join(sentence(rng)) for _ in range(6)),
                 "tags": rng.sample(WORDS, 3), "updated_at": start + timedelta(seconds=i)}
                for i in range(first, min(first + BATCH, records))]
        for table in ("fed", "plain"):
            db.query(f"INSERT INTO {table} $rows RETURN NONE", {"rows": rows})
    # the steady state of a live table: the last change is one record's write
    db.query("UPDATE fed:0 SET tags = ['edited']; UPDATE plain:0 SET tags = ['edited'];")
    db.close()


def timed(action: Callable[[], int], times: int = 3) -> tuple[float, int]:
    runs, found = [], 0
    for _ in range(times):
        started = time.perf_counter()
        found = action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), found


def detection(settings: SurrealConfig, checkpoint: str | None,
              listing: bool = True) -> Callable[[], int]:
    def run() -> int:
        source = settings.open("bench", None)
        changed = source.changed_since(checkpoint)  # type: ignore[attr-defined]
        assert not changed, f"{len(changed)} records changed in a no-op"
        if not listing:
            assert source.complete  # type: ignore[attr-defined]
            return 0
        return len(list(source.scan()))
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with scratch("surreal-bench-") as root:
        url = f"surrealkv://{root / 'db'}"
        started = time.perf_counter()
        fill(url, args.records)
        print(f"{args.records} records in each table in {time.perf_counter() - started:.0f} s"
              " (not measured)")

        def settings(table: str, **more: str) -> SurrealConfig:
            return SurrealConfig.model_validate({
                "kind": "surrealdb", "url": url, "namespace": "bench", "database": "cms",
                "table": table, "collections": ["c"], **more})

        fed = settings("fed")
        first = fed.open("bench", None)
        first.changed_since(None)  # type: ignore[attr-defined]
        checkpoint = first.checkpoint  # type: ignore[attr-defined]

        def bare() -> int:
            db = Surreal(url)
            db.use("bench", "cms")
            found = len(db.query("SELECT VALUE id FROM plain"))
            db.close()
            return found

        rows = [("changefeed, not listed", *timed(detection(fed, checkpoint, listing=False))),
                ("changefeed (ids listed)", *timed(detection(fed, checkpoint))),
                ("updated_field, no feed", *timed(detection(settings(
                    "plain", updated_field="updated_at"), None))),
                ("hash, no feed", *timed(detection(settings("plain"), None)))]
        floor, _ = timed(bare)
    print(f"\n| no-op detection, {args.records:,} records | seconds | records/s | "
          "against the bare id listing |\n|---|---|---|---|")
    for name, seconds, _found in rows:
        print(f"| {name} | {seconds:.2f} | {args.records / seconds:,.0f} | "
              f"{seconds / floor:.2f}x |")
    print(f"| bare `SELECT VALUE id` (baseline) | {floor:.2f} | {args.records / floor:,.0f} | 1x |")


if __name__ == "__main__":
    main()
