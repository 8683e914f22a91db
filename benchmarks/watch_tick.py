"""One tick of the Markdown `watch_<source>` sensor on a large vault.

Dagster gives a sensor tick 60 s. The watcher lists and stats every note (no reads, no
Qdrant), so its cost grows with the file count. This generates a vault of 100,000 small
notes (``--notes``) in 300 folders and times, through ``dg.build_sensor_context`` and the
real sensor definition:

- the first tick (no cursor: requests the initial sync),
- a tick with nothing changed (the common case: a skip),
- a tick after one note was touched (one run request),

each the median of ``--repeats`` evaluations, with the page cache warm (the vault was just
written). For scale, the same walk is timed as a bare ``os.walk`` + ``os.stat`` baseline.

Run: ``.venv/bin/python benchmarks/watch_tick.py [--notes N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).parent))
from _vault import bare_walk, folders, write_config  # noqa: E402

from vector_sync.definitions import build_definitions  # noqa: E402


def make_vault(root: Path, notes: int) -> Path:
    vault = root / "vault"
    places = folders()
    for folder in places:
        (vault / folder).mkdir(parents=True, exist_ok=True)
    for i in range(notes):
        (vault / places[i % len(places)] / f"note {i}.md").write_text(f"# Note {i}\n")
    return vault


def timed(action, repeats: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vector_sync_watch_"))
    try:
        started = time.perf_counter()
        vault = make_vault(root, args.notes)
        print(f"vault: {args.notes:,} notes in {len(folders())} folders, written in "
              f"{time.perf_counter() - started:.1f} s")
        defs = build_definitions(str(write_config(root)))
        sensor = defs.resolve_sensor_def("watch_notes")
        instance = dg.DagsterInstance.ephemeral()

        def tick(cursor: str | None):  # type: ignore[no-untyped-def]
            return sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                  definitions=defs))

        walk, counted = timed(lambda: bare_walk(vault), args.repeats)
        first_s, first = timed(lambda: tick(None), args.repeats)
        assert first.run_requests, "the first tick must request the initial sync"
        quiet_s, quiet = timed(lambda: tick(first.cursor), args.repeats)
        assert not quiet.run_requests, "nothing changed: no request"
        touched = vault / folders()[0] / "note 0.md"
        touched.write_text("# Note 0, edited\n")
        changed_s, changed = timed(lambda: tick(first.cursor), args.repeats)
        assert len(changed.run_requests) == 1, "one touched note: one request"

        print(f"bare os.walk + stat of {counted:,} files: {walk:.2f} s (baseline)")
        print(f"first tick (requests the initial sync): {first_s:.2f} s")
        print(f"tick, nothing changed (skip):           {quiet_s:.2f} s "
              f"({quiet_s / walk:.1f}x the bare walk)")
        print(f"tick, one note touched (1 request):     {changed_s:.2f} s")
        print(f"Dagster's limit per tick: 60 s; headroom {60 / max(first_s, quiet_s):.0f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
