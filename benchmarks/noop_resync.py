"""No-op re-sync of a large vault: what a sync costs when nothing changed.

Measures, on a generated vault of 20,000 Markdown notes (``--notes``) that is already
fully synced:

(a) scan + diff: what the ``source_snapshot`` and ``changes_<collection>`` assets run,
    without Dagster: the config load each asset does, vector_sync.core.pipeline.snapshot.snapshot
    (source.scan, the ledger look-ups, the hint comparison, the snapshot Parquet) and
    vector_sync.core.pipeline.diff.changes (the ledger rows and expected state, Differ.changes, the
    change-set Parquet, the expected state kept in the ledger). Target: >= 20,000
    documents/s. The breakdown times the stages from the outside (nothing in them is
    replaced), then the public calls they are made of, each on its own on the same state,
    and one more run under cProfile, own time by module (``--no-profile`` skips it).
(b) the whole ``vector-sync sync --config <cfg> --json`` process (Python start-up, imports,
    the Dagster run); its JSON must report nothing added/updated/payload_updated/deleted,
    0 chunks embedded and every note unchanged.
(c) the in-process ``vector_sync.cli.runner.sync_source`` call (the Dagster run without the
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
import cProfile
import gc
import json
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
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


# --- (a) scan + diff -----------------------------------------------------------------------


def scan_and_diff(config_file: Path) -> tuple[float, dict[str, float], dict[str, Any]]:
    """What the source_snapshot and changes_<collection> assets run, without Dagster: the
    config load each asset does, then vector_sync.core.pipeline.snapshot.snapshot and
    vector_sync.core.pipeline.diff.changes (they write the snapshot and the change set into
    the state dir and the expected state into the ledger, as a run does). Timed from the
    outside only:
    nothing in them is replaced or wrapped. Returns (seconds, the stages' times, the changes
    metadata + the snapshot metadata)."""
    from vector_sync.config import load_config
    from vector_sync.core.pipeline.diff import changes
    from vector_sync.core.pipeline.snapshot import snapshot

    times: dict[str, float] = {}
    with gc_pauses() as pauses:
        started = time.perf_counter()
        settings = load_config(config_file)
        loaded = time.perf_counter()
        snapshot_metadata = snapshot(settings, SOURCE)
        snapshotted = time.perf_counter()
        settings = load_config(config_file)
        reloaded = time.perf_counter()
        changes_metadata = changes(settings, SOURCE, COLLECTION)
        done = time.perf_counter()
    times[CONFIG] = (loaded - started) + (reloaded - snapshotted)
    times[SNAPSHOT_STAGE] = snapshotted - loaded
    times[CHANGES_STAGE] = done - reloaded
    times[GC_PAUSES] = pauses["seconds"]
    times[GC_FULL] = pauses["full"]
    return done - started, times, {**changes_metadata, "snapshot": snapshot_metadata}


CONFIG = "config load x2 (load_config, as each asset does)"
SNAPSHOT_STAGE = "snapshot stage (vector_sync.core.pipeline.snapshot.snapshot)"
CHANGES_STAGE = "changes stage (vector_sync.core.pipeline.diff.changes)"
SCAN = "source.scan() alone (list folders, stat files)"
LEDGER_OPEN = "open_ledger alone (engine, schema check)"


def stage_parts(config_file: Path) -> dict[str, float]:
    """What the source contract and the ledger cost on their own, on the state the stages
    just left: source.scan() and open_ledger, each timed apart from the stages (which call
    them once each). The stages themselves are not touched."""
    from vector_sync.config import load_config
    from vector_sync.core.ledger import open_ledger

    config = load_config(config_file)
    started = time.perf_counter()
    listed = sum(1 for _ in config.open_source(SOURCE).scan())
    scanned = time.perf_counter()
    with open_ledger(config.state):
        opened = time.perf_counter()
    return {SCAN: scanned - started, LEDGER_OPEN: opened - scanned, "listed": listed}


def breakdown_lines(times: dict[str, float], parts: dict[str, float]) -> list[str]:
    """The stages' times (measured in the run) with, under each, the parts timed on their
    own and the remainder (stage minus parts: an estimate, the parts ran separately)."""
    lines = [f"{CONFIG:<72}{times[CONFIG]:8.3f} s"]
    layout = {
        SNAPSHOT_STAGE: ([SCAN, LEDGER_OPEN],
                         "rest: ledger look-ups, hint comparison, snapshot Parquet"),
        CHANGES_STAGE: ([LEDGER_OPEN],
                        "rest: ledger reads, tokenizer, Differ, change-set Parquet"),
    }
    for stage, (names, rest) in layout.items():
        lines.append(f"{stage:<72}{times[stage]:8.3f} s")
        for name in names:
            lines.append(f"  {name:<70}{parts[name]:8.3f} s")
        remainder = times[stage] - sum(parts[name] for name in names)
        lines.append(f"  {rest:<70}{remainder:8.3f} s")
    lines.append(f"{GC_PAUSES:<72}{times[GC_PAUSES]:8.3f} s")
    lines.append(f"{GC_FULL:<72}{int(times[GC_FULL]):8d}")
    return lines


def profile_by_module(config_file: Path, top: int = 14) -> tuple[float, list[tuple[str, float]]]:
    """One more scan + diff under cProfile (not one of the measured runs): own time per
    module, a C function's time counted in the module that called it. Returns (the
    profiled run's seconds, [(module, seconds)] largest first)."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(scan_and_diff, config_file)
    seconds = time.perf_counter() - started
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    by_module: defaultdict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, own, _, callers) in stats.items():
        if filename != "~":
            by_module[module_of(filename)] += own
            continue
        for (caller_file, _, _), (_, _, own_from_caller, _) in callers.items():
            by_module[module_of(caller_file) if caller_file != "~" else "C called by C"] \
                += own_from_caller
    ranked = sorted(by_module.items(), key=lambda item: -item[1])
    return seconds, ranked[:top]


_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def module_of(filename: str) -> str:
    """vector_sync modules by name, other packages by their top-level name."""
    if filename.startswith("<"):  # <frozen ...>, <string>
        return filename
    path = Path(filename)
    if "site-packages" in path.parts:
        return path.parts[path.parts.index("site-packages") + 1].removesuffix(".py")
    import vector_sync

    for root in {Path(vector_sync.__file__).resolve().parent.parent,
                 Path(__file__).resolve().parent.parent}:
        if path.resolve().is_relative_to(root):
            return ".".join(path.resolve().relative_to(root).with_suffix("").parts)
    try:
        return "stdlib " + path.resolve().relative_to(_STDLIB).parts[0].removesuffix(".py")
    except ValueError:
        return filename


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
    subprocess.run([sys.executable, "-c", "import vector_sync.cli, vector_sync.cli.runner"],
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
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the cProfile run of (a)")
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
    from vector_sync.cli.runner import sync_source
    from vector_sync.config import load_config

    with cheap_setup(), quiet():
        initial = sync_source(config_file, load_config(config_file), SOURCE)
    counts = initial["collections"][COLLECTION]
    print(f"setup: initial sync with a stand-in embedder, not measured "
          f"({time.perf_counter() - started:.1f} s: {counts['added']} added, "
          f"{counts['chunks_embedded']} chunks given stand-in vectors)")
    if initial["error"] or counts["added"] != notes or counts["failed"]:
        print(f"setup failed: {initial}")
        if log_file.exists():
            print(log_file.read_text()[-5000:])
        return 1

    failures: list[str] = []

    # (a)
    scan_runs, part_runs = [], []
    for _ in range(args.repeats):
        seconds, times, diff = scan_and_diff(config_file)
        scan_runs.append((seconds, times))
        problems = check_noop({**diff, "chunks_embedded": diff["chunks_to_embed"]}, notes)
        if problems or diff["snapshot"]["skipped_unchanged"] != notes:
            failures.append(f"(a) the diff is not a no-op: {problems}, {diff}")
        part_runs.append(stage_parts(config_file))
        if part_runs[-1]["listed"] != notes:
            failures.append(f"(a) source.scan() listed {part_runs[-1]['listed']} notes")
    median_a = statistics.median(s for s, _ in scan_runs)
    median_times = {name: statistics.median(t[name] for _, t in scan_runs)
                    for name in scan_runs[0][1]}
    median_parts = {name: statistics.median(p[name] for p in part_runs)
                    for name in part_runs[0]}
    docs_per_s = notes / median_a
    profiled_s, modules = profile_by_module(config_file) if args.profile else (0.0, [])

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
    print("    breakdown (medians over the runs; the parts marked 'alone' are timed on their own"
          " after each run):")
    for line in breakdown_lines(median_times, median_parts):
        print("      " + line)
    if modules:
        print(f"    own time by module, one more run under cProfile ({profiled_s:.3f} s with the "
              "profiler's overhead; C calls and GC pauses counted in the module that was "
              "running):")
        for module, seconds in modules:
            print(f"      {module:<50}{seconds:8.3f} s  {seconds / profiled_s:6.1%}")
    print(f"(b) `vector-sync sync --json` process: {_stats(cli_runs)}")
    print(f"    ({notes / median_b:,.0f} documents/s end to end)")
    print(f"    of which imports (a process that only imports vector_sync.cli and "
          f"vector_sync.cli.runner): {_stats(import_runs)}")
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
