"""No-op re-sync of a large vault: what a sync costs when nothing changed.

Measures, on a generated vault of 20,000 Markdown notes (``--notes``) that is already
fully synced:

(a) scan + diff: what the ``source_snapshot`` and ``changes/<collection>`` assets run,
    without Dagster: vector_sync.core.stages.snapshot and .changes (source.scan, the ledger
    look-ups, the expected-state files, the snapshot Parquet, Differ.changes, the change-set
    Parquet), with a breakdown. Target: >= 20,000 documents/s.
(b) the whole ``vector-sync sync --config <cfg> --json`` process (Python start-up, imports,
    the Dagster run); its JSON must report nothing added/updated/payload_updated/deleted,
    0 chunks embedded and every note unchanged.
(c) the in-process ``vector_sync.defs.run.sync_source`` call (the Dagster run without the
    interpreter start-up).

Setup (not measured): the "already synced" state comes from one real sync_source run in
which ``Embedder.embed`` is replaced by a cheap deterministic stand-in (normalized random
384-dimensional vectors seeded by the text), because embedding 20,000 notes with the real
model would take far too long. Everything else in that run is real: embedded Qdrant, the
SQLite ledger, the Dagster run. The stand-in is removed again before anything is measured.

Run: ``.venv/bin/python benchmarks/noop_resync.py [--notes N] [--repeats R] [--quick]``.
Generated data lives in a temporary folder that is deleted at the end (``--keep`` keeps it).
DAGSTER_HOME is unset, so runs use an ephemeral Dagster instance and leave no history.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from _vault import (
    COLLECTION,
    SOURCE,
    WORDS,
    asset_durations,
    cheap_setup,
    code_version,
    dagster_log,
    folders,
    frontmatter,
    sentence,
    step_seconds,
    step_table,
    sync_with_result,
    titles,
    write_config,
)

TARGET_DOCS_PER_S = 20_000
DIMENSION = 384

# --- the vault ------------------------------------------------------------------------------


def note_text(rng: random.Random, title: str, words: int, others: Sequence[str]) -> str:
    """A note of about `words` body words: frontmatter, a heading, paragraphs and lists,
    now and then a sub-heading, a wikilink or an inline tag."""
    lines = [*frontmatter(rng, title), f"# {title}", ""]
    written = 0
    while written < words:
        roll = rng.random()
        if roll < 0.08 and written > 40:
            heading = " ".join(sentence(rng, 2, 4))
            lines += [f"## {heading}", ""]
        elif roll < 0.2:
            for _ in range(rng.randint(2, 5)):
                item = sentence(rng, 3, 9)
                written += len(item)
                lines.append("- " + " ".join(item))
            lines.append("")
        else:
            paragraph = []
            for _ in range(rng.randint(2, 5)):
                said = sentence(rng)
                written += len(said)
                paragraph.append(" ".join(said) + ".")
            if rng.random() < 0.3:
                paragraph.append(f"See [[{rng.choice(others)}]].")
            if rng.random() < 0.2:
                paragraph.append(f"#{rng.choice(WORDS)}")
            lines += [" ".join(paragraph), ""]
    return "\n".join(lines)


def generate_vault(vault: Path, notes: int, min_words: int, max_words: int,
                   seed: int) -> int:
    """`notes` notes in nested folders (area/topic/ and some area/topic/year/); returns the
    number of bytes written."""
    rng = random.Random(seed)
    names = titles(rng, notes)
    places = folders()
    size = 0
    made: set[str] = set()
    for title in names:
        folder = rng.choice(places)
        if folder not in made:
            (vault / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        text = note_text(rng, title, rng.randint(min_words, max_words), names)
        data = text.encode("utf-8")
        (vault / folder / f"{title}.md").write_bytes(data)
        size += len(data)
    return size


# --- (a) scan + diff, instrumented --------------------------------------------------------


class Timers:
    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def call(self, name: str, function: Any, *args: Any) -> Any:
        with self.time(name):
            return function(*args)

    def iterate(self, name: str, items: Iterable[Any]) -> Iterator[Any]:
        """`items`, with the time spent producing them (not consuming them) added to name."""
        iterator = iter(items)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.seconds[name] += time.perf_counter() - started
                return
            self.seconds[name] += time.perf_counter() - started
            yield item

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.time(name):
                return function(*args, **kwargs)
        return timed


LEDGER_OPEN, LEDGER_READ = "ledger open", "ledger read"
EXPECTED_READ, EXPECTED_WRITE = "expected read", "expected write"


class TimedSource:
    """The real source, with the time spent in scan() and read() recorded."""

    def __init__(self, source: Any, timers: Timers) -> None:
        self._source, self._timers, self.name = source, timers, source.name

    def scan(self) -> Iterator[Any]:
        return self._timers.iterate("scan", self._source.scan())

    def read(self, doc_ids: Iterable[str]) -> Iterator[Any]:
        return self._timers.iterate("read", self._source.read(doc_ids))


def timed_ledger(url: str, timers: Timers) -> Any:
    from vector_sync.core.ledger import Ledger

    with timers.time(LEDGER_OPEN):
        ledger = Ledger(url)
    ledger.get_state = timers.wrap(LEDGER_READ, ledger.get_state)  # type: ignore[method-assign]
    ledger.rows = timers.wrap(LEDGER_READ, ledger.rows)  # type: ignore[method-assign]
    synced_hints = ledger.synced_hints
    ledger.synced_hints = (  # type: ignore[method-assign]
        lambda source, collections: timers.call(LEDGER_READ, synced_hints, source, collections))
    return ledger


@contextmanager
def instrumented(timers: Timers) -> Iterator[None]:
    """vector_sync.core.stages with its source, ledger and expected-state files timed (only
    the module's own names are replaced; the code that runs is the real one)."""
    from vector_sync.core import stages

    @contextmanager
    def open_ledger(config: Any) -> Iterator[Any]:
        ledger = timed_ledger(config.state.ledger_sqlalchemy_url(), timers)
        try:
            yield ledger
        finally:
            ledger.close()

    names = ("open_ledger", "build_source", "read_expected", "write_expected")
    originals = {name: getattr(stages, name) for name in names if hasattr(stages, name)}
    build_source = originals["build_source"]
    replacements: dict[str, Any] = {
        "open_ledger": open_ledger,
        "build_source": lambda *args, **kwargs: TimedSource(build_source(*args, **kwargs),
                                                            timers),
    }
    for name, bucket in (("read_expected", EXPECTED_READ), ("write_expected", EXPECTED_WRITE)):
        if name in originals:
            replacements[name] = timers.wrap(bucket, originals[name])
    for name, value in replacements.items():
        setattr(stages, name, value)
    try:
        yield
    finally:
        for name, value in originals.items():
            setattr(stages, name, value)


def scan_and_diff(config_file: Path) -> tuple[float, dict[str, float], dict[str, Any]]:
    """What the source_snapshot and changes/<collection> assets run, without Dagster: the
    config load each asset does, then vector_sync.core.stages.snapshot and .changes (they
    write the snapshot, the change set and the expected state into the state dir, as a run
    does). Returns (seconds, breakdown, the changes metadata + snapshot metadata)."""
    from vector_sync.config import load_config
    from vector_sync.core import stages

    snap, chg = Timers(), Timers()  # one per asset
    started = time.perf_counter()
    with gc_pauses() as pauses:
        with snap.time("total"), instrumented(snap):
            with snap.time("config"):
                settings = load_config(config_file)
            snapshot = stages.snapshot(settings, SOURCE)
        with chg.time("total"), instrumented(chg):
            with chg.time("config"):
                settings = load_config(config_file)
            changes = stages.changes(settings, SOURCE, COLLECTION)
    seconds = time.perf_counter() - started
    s, c = snap.seconds, chg.seconds
    breakdown = {
        "scan (source.scan: list folders, stat files)": s["scan"],
        "ledger read, snapshot (get_state, synced_hints)": s[LEDGER_READ],
        "ledger read, changes (rows)": c[LEDGER_READ],
        "ledger open x2 (engine + migration check)": s[LEDGER_OPEN] + c[LEDGER_OPEN],
        "expected state: read x2, write": s[EXPECTED_READ] + c[EXPECTED_READ]
        + c[EXPECTED_WRITE],
        "config load x2": s["config"] + c["config"],
        "snapshot rest (hint match, write snapshot parquet)": s["total"] - sum(
            s[k] for k in ("config", LEDGER_OPEN, LEDGER_READ, "scan", "read", EXPECTED_READ)),
        "diff (tokenizer, read snapshot, Differ, write change set)": c["total"] - sum(
            c[k] for k in ("config", LEDGER_OPEN, LEDGER_READ, EXPECTED_READ, EXPECTED_WRITE)),
        "read (notes whose hint changed: none expected)": s["read"],
    }
    breakdown["other"] = seconds - sum(breakdown.values())
    breakdown[GC_PAUSES] = pauses["seconds"]
    breakdown[GC_FULL] = pauses["full"]
    return seconds, breakdown, {**changes, "snapshot": snapshot}


GC_PAUSES = "cyclic GC pauses (inside the figures above)"
GC_FULL = "full (gen 2) collections"


@contextmanager
def gc_pauses() -> Iterator[dict[str, float]]:
    """Time spent in the cyclic garbage collector, and how many full collections ran."""
    found = {"seconds": 0.0, "full": 0}
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            found["seconds"] += time.perf_counter() - started[0]
            found["full"] += info["generation"] == 2

    gc.callbacks.append(callback)
    try:
        yield found
    finally:
        gc.callbacks.remove(callback)


# --- (b) and (c) ----------------------------------------------------------------------------

NOOP_KEYS = ("added", "updated", "payload_updated", "deleted", "failed", "chunks_embedded")


def check_noop(counts: dict[str, int], notes: int) -> list[str]:
    problems = [f"{k} = {counts.get(k)}" for k in NOOP_KEYS if counts.get(k) != 0]
    if counts.get("unchanged") != notes:
        problems.append(f"unchanged = {counts.get('unchanged')}, expected {notes}")
    return problems


def cli_sync(config_file: Path, env: dict[str, str]) -> tuple[float, dict[str, Any], int]:
    command = [str(Path(sys.executable).with_name("vector-sync")), "sync",
               "--config", str(config_file), "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"vector-sync sync exited {done.returncode} without JSON") from None
    return seconds, report, done.returncode


def import_only(env: dict[str, str]) -> float:
    """A process that only imports what `vector-sync sync` imports before its run."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import vector_sync.cli, vector_sync.defs.run"],
                   env=env, check=True)
    return time.perf_counter() - started


def in_process_sync(config_file: Path) -> tuple[float, dict[str, Any], Any]:
    """sync_source, timed, with the Dagster result (for the per-step breakdown)."""
    from vector_sync.config import load_config

    return sync_with_result(config_file, load_config(config_file), SOURCE)


# --- main -----------------------------------------------------------------------------------


def _stats(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f} s"
    return (f"median {statistics.median(values):.3f} s, best {min(values):.3f} s "
            f"({', '.join(f'{v:.3f}' for v in values)})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=20_000, help="notes in the vault")
    parser.add_argument("--min-words", type=int, default=100)
    parser.add_argument("--max-words", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 500 notes, one run of each measurement")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--verbose", action="store_true", help="show the Dagster run logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.notes, args.repeats = min(args.notes, 500), 1

    os.environ.pop("DAGSTER_HOME", None)  # an ephemeral instance: no run history written
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    root = Path(tempfile.mkdtemp(prefix="vector_sync_noop_"))
    try:
        return run(args, root, env)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path, env: dict[str, str]) -> int:
    notes = args.notes
    log_file = root / "dagster.log"

    def quiet() -> Any:
        return nullcontext() if args.verbose else dagster_log(log_file)

    print(f"noop_resync: {notes} notes of {args.min_words}-{args.max_words} words, "
          f"{args.repeats} run(s) per measurement, {os.cpu_count()} CPUs, in {root}")
    print(f"code: {code_version()}")

    started = time.perf_counter()
    size = generate_vault(root / "vault", notes, args.min_words, args.max_words, args.seed)
    config_file = write_config(root)
    print(f"setup: generated the vault ({size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s, not measured")

    started = time.perf_counter()
    from vector_sync.config import load_config
    from vector_sync.defs.run import sync_source

    with cheap_setup(), quiet():
        initial = sync_source(config_file, load_config(config_file), SOURCE)
    counts = initial["collections"][COLLECTION]
    print(f"setup: initial sync with a stand-in embedder, not measured "
          f"({time.perf_counter() - started:.1f} s: {counts['added']} added, "
          f"{counts['chunks_embedded']} chunks given stand-in vectors; embedded Qdrant's "
          "SQLite without an fsync per point during the setup only)")
    if initial["error"] or counts["added"] != notes or counts["failed"]:
        print(f"setup failed: {initial}")
        if log_file.exists():
            print(log_file.read_text()[-5000:])
        return 1

    failures: list[str] = []

    # (a)
    scan_runs = []
    for _ in range(args.repeats):
        seconds, breakdown, diff = scan_and_diff(config_file)
        scan_runs.append((seconds, breakdown))
        problems = check_noop({**diff, "chunks_embedded": diff["chunks_to_embed"]}, notes)
        if problems or diff["snapshot"]["skipped_unchanged"] != notes:
            failures.append(f"(a) the diff is not a no-op: {problems}, {diff}")
    median_a = statistics.median(s for s, _ in scan_runs)
    median_breakdown = sorted(scan_runs, key=lambda r: r[0])[len(scan_runs) // 2][1]
    docs_per_s = notes / median_a

    # (b)
    cli_runs, import_runs = [], []
    for _ in range(args.repeats):
        seconds, report, code = cli_sync(config_file, env)
        cli_runs.append(seconds)
        source_report = report["sources"][SOURCE]
        problems = check_noop(source_report["collections"][COLLECTION], notes)
        if code or source_report["error"] or problems:
            failures.append(f"(b) vector-sync sync (exit {code}) did not report a no-op: "
                            f"{problems or source_report}")
        import_runs.append(import_only(env))

    # (c)
    inproc_runs = []
    for _ in range(args.repeats):
        with quiet():
            seconds, report, result = in_process_sync(config_file)
        inproc_runs.append((seconds, result))
        problems = check_noop(report["collections"][COLLECTION], notes)
        if report["error"] or problems:
            failures.append(f"(c) sync_source did not report a no-op: {problems or report}")
    median_c, median_result = sorted(inproc_runs, key=lambda r: r[0])[len(inproc_runs) // 2]

    verdict = "MEETS" if docs_per_s >= TARGET_DOCS_PER_S else "MISSES"
    median_b = statistics.median(cli_runs)
    print()
    print("=" * 78)
    print(f"no-op re-sync of {notes} notes (nothing changed); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("-" * 78)
    print(f"(a) scan + diff (snapshot + changes, no Dagster): {_stats([s for s, _ in scan_runs])}")
    print(f"    {docs_per_s:,.0f} documents/s (median run)   target >= {TARGET_DOCS_PER_S:,}"
          f" documents/s: {verdict}"
          + ("" if notes >= 20_000 else " (the target is for vaults of 20,000 notes)"))
    print("    breakdown (median run):")
    for name, value in median_breakdown.items():
        figure = f"{int(value):8d}" if name == GC_FULL else f"{value:8.3f} s"
        print(f"      {name:<58}{figure}")
    print(f"(b) `vector-sync sync --json` process: {_stats(cli_runs)}")
    print(f"    ({notes / median_b:,.0f} documents/s end to end)")
    print(f"    of which imports (a process that only imports vector_sync.cli and "
          f"vector_sync.defs.run): {_stats(import_runs)}")
    print(f"(c) in-process sync_source (Dagster run): {_stats([s for s, _ in inproc_runs])}")
    print(f"    ({notes / median_c:,.0f} documents/s)")
    print("    Dagster steps (median run):")
    for line in step_table(median_c, step_seconds(median_result),
                           asset_durations(median_result)):
        print(line)
    print(f"    (b) - (c), i.e. interpreter start-up, imports, first-run costs: "
          f"{median_b - median_c:.3f} s")
    print(f"no-op checks (0 added/updated/payload_updated/deleted/failed, 0 chunks embedded, "
          f"{notes} unchanged): {'OK' if not failures else 'FAILED'}")
    for failure in failures:
        print(f"  {failure}")
    print("=" * 78)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
