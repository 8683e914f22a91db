"""One entry point for the headline figures that have targets (initial sync throughput and
memory, no-op and edit re-syncs, scan + diff at 20,000 notes, verify, Git), each next to a
baseline measured in the same run: `make bench`, or
`.venv/bin/python benchmarks/run.py [--quick] [--only NAMES] [--json PATH]`. Prints one
Markdown table; `--json` writes the same rows with raw values.

Every figure but the scan + diff and verify rows is a whole process (the real
`vector-sync sync --config X --json`, Python start-up, imports and model load included),
timed from outside, its peak resident memory from the kernel (`wait4`, see _measure.py).
Timings are the median of 3 runs, except the initial sync and LangChain's initial index.

  raw        raw fastembed: the exact chunk texts of the 173-note vault (vector_sync's own
             chunker), in document order, embedded by a process that only loads the model
  initial    initial sync of that vault: chunks/s against raw's, peak memory
  noop       no-op re-sync of it, against `python -c pass` and the CLI's imports
  edit       a sentence appended to 5 notes: chunks embedded against chunk texts changed
             (chunked before and after), and the seconds against LangChain's
  langchain  LangChain index() (SQLRecordManager, cleanup="incremental", langchain_qdrant on
             qdrant-client local mode, the same model and chunk texts): initial and edit
  noop20k    20,000 notes: scan + diff notes/s (in-process, against a bare os.walk + stat)
             and the whole no-op process
  verify     benchmarks/verify_100k.py (100,000 points), its printed figures
  git        50,000-file Git repository, a commit changing 10 files, against a no-op sync
  million    benchmarks/million.py: a vault and a SurrealDB table of 100,000, 300,000 and
             1,000,000 documents (--quick: 3,000, 6,000), every command at each size; hours,
             so only with --only million

Setups that need an already synced state (20,000 notes, 50,000 files) sync once in this
process with a stand-in embedder (benchmarks/_vault.py, cheap_setup), not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from _langchain_index import index_counts, langchain_missing, vault_chunks
from _measure import (
    Measured,
    ProcessFailed,
    environment,
    last_line,
    measure,
    median,
    median_seconds,
    peak,
    repeat,
)
from _vault import COLLECTION, SOURCE, cheap_setup, code_version, dagster_log, scratch, sentence
from _vault import write_config as vault_config
from migration import run_rows as migration_rows
from million import run_rows as million_rows

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
CLI = str(Path(PYTHON).with_name("vector-sync"))
REPEATS = 3
GROUPS = ("raw", "initial", "noop", "edit", "langchain", "noop20k", "verify", "git",
          "migration", "million")
NOOP_KEYS = ("added", "updated", "payload_updated", "deleted", "failed", "chunks_embedded")
RAW_EMBED = """
import json, sys
from vector_sync.config import load_config
from vector_sync.core.text.embedder import Embedder
texts = json.load(open(sys.argv[2]))
Embedder(load_config(sys.argv[1]).embedding).embed(texts)
"""
# start-up baselines; the last one is what `sync` imports before it works, and it exits the
# way the CLI does (os._exit, no interpreter teardown)
STARTUP = {"python -c pass": "pass", "import vector_sync.cli": "import vector_sync.cli",
           "+ vector_sync.cli.runner": "import os, vector_sync.cli, vector_sync.cli.runner\n"
                                       "os._exit(0)"}


@dataclass(frozen=True)
class Sizes:
    notes: int = 173
    large_notes: int = 20_000
    git_files: int = 50_000
    verify_args: tuple[str, ...] = ()


QUICK = Sizes(30, 2_000, 5_000, ("--quick",))
Rows = list[dict[str, Any]]
Chunks = dict[str, list[str]]  # doc_id -> chunk texts


@dataclass
class Round:
    """One edit round: vector_sync's sync and LangChain's index (or why there is none)."""

    sync: Measured
    counts: dict[str, int]
    changed: int  # chunk texts that are new after the edit
    langchain: Measured | str | None


def row(group: str, name: str, figure: str, baseline: str = "", ratio: float | None = None,
        target: str = "", met: bool | None = None, **values: Any) -> dict[str, Any]:
    return {"group": group, "name": name, "figure": figure, "baseline": baseline,
            "ratio": "" if ratio is None else f"{ratio:.2f}", "target": target,
            "met": "" if met is None else ("yes" if met else "no"), "values": values}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cli_sync(config: Path) -> tuple[Measured, dict[str, int]]:
    run = measure([CLI, "sync", "--config", str(config), "--json"], config.parent)
    return run, run.json()["sources"][SOURCE]["collections"][COLLECTION]


def check_noop(counts: dict[str, int]) -> None:
    if any(counts.get(key) for key in NOOP_KEYS):
        raise RuntimeError(f"the no-op sync was not a no-op: {counts}")


def in_process_setup(config: Path) -> None:
    """An already synced state, quickly: one in-process sync with the stand-in embedder."""
    from vector_sync.cli.runner import sync_source
    from vector_sync.config import load_config

    with cheap_setup(), dagster_log(config.parent / "dagster.log"):
        report = sync_source(config, load_config(config), SOURCE)
    if report["error"] or report["collections"][COLLECTION]["failed"]:
        raise RuntimeError(f"setup sync failed: {report}")


# --- the 173-note vault: raw, initial, noop, edit, langchain ---------------------------------


def raw_fastembed(root: Path, config: Path, texts: list[str], rows: Rows) -> Measured:
    (root / "texts.json").write_text(json.dumps(texts))
    progress(f"raw fastembed: {len(texts)} chunks")
    raw = measure([PYTHON, "-c", RAW_EMBED, str(config), str(root / "texts.json")], root)
    rows.append(row("raw", "raw fastembed, whole process", f"{len(texts) / raw.seconds:.1f} "
                    f"chunks/s ({len(texts)} chunks, {raw.seconds:.1f} s, {raw.peak_mib:.0f} "
                    "MiB)", seconds=raw.seconds, chunks=len(texts), peak_mib=raw.peak_mib))
    return raw


def initial(config: Path, texts: list[str], raw: Measured | None, rows: Rows) -> Measured:
    progress("initial sync")
    sync, counts = cli_sync(config)
    chunks = counts["chunks_embedded"]
    if chunks != len(texts):
        raise RuntimeError(f"the sync embedded {chunks} chunks, the chunker made {len(texts)}")
    rate, raw_rate = chunks / sync.seconds, len(texts) / raw.seconds if raw else None
    rows.append(row("initial", "initial sync, whole process", f"{sync.seconds:.1f} s, "
                    f"{chunks} chunks, {rate:.1f} chunks/s",
                    f"raw fastembed {raw_rate:.1f} chunks/s" if raw_rate else "raw failed",
                    rate / raw_rate if raw_rate else None, ">= 0.95 x raw",
                    rate >= 0.95 * raw_rate if raw_rate else None, seconds=sync.seconds,
                    chunks=chunks))
    rows.append(row("initial", "initial sync, peak memory", f"{sync.peak_mib:.0f} MiB",
                    f"raw fastembed {raw.peak_mib:.0f} MiB" if raw else "",
                    sync.peak_mib / raw.peak_mib if raw else None, "<= 1,024 MiB",
                    sync.peak_mib <= 1024, peak_mib=sync.peak_mib))
    return sync


@cache
def startup() -> dict[str, list[Measured]]:
    return {label: repeat([PYTHON, "-c", code], REPEATS) for label, code in STARTUP.items()}


def noops(config: Path) -> list[Measured]:
    runs = repeat([CLI, "sync", "--config", str(config), "--json"], REPEATS, config.parent)
    for run in runs:
        check_noop(run.json()["sources"][SOURCE]["collections"][COLLECTION])
    return runs


def noop(config: Path, rows: Rows) -> None:
    progress("no-op sync, small vault")
    runs, starts = noops(config), startup()
    seconds, imports = median_seconds(runs), median_seconds(starts["+ vector_sync.cli.runner"])
    baseline = "; ".join(f"{label} {median_seconds(r):.2f} s" for label, r in starts.items())
    rows.append(row("noop", "no-op re-sync, whole process", f"{seconds:.2f} s", baseline,
                    seconds / imports, "<= 3 s", seconds <= 3, seconds=seconds,
                    startup={label: median_seconds(r) for label, r in starts.items()}))
    import_peak = peak(starts["+ vector_sync.cli.runner"])
    rows.append(row("noop", "no-op re-sync, peak memory", f"{peak(runs):.0f} MiB",
                    f"+ vector_sync.cli.runner {import_peak:.0f} MiB", peak(runs) / import_peak,
                    "<= 250 MiB", peak(runs) <= 250, peak_mib=peak(runs)))


def langchain(root: Path, config: Path) -> Measured:
    return measure([PYTHON, str(HERE / "_langchain_index.py"), str(config),
                    str(root / "langchain")], root)


def langchain_initial(root: Path, config: Path, sync: Measured, rows: Rows) -> str | None:
    """LangChain's initial index; None, or why the edit rounds cannot use LangChain."""
    progress("LangChain initial index")
    lc = langchain(root, config)
    rows.append(row("langchain", "LangChain index(), initial, whole process",
                    f"{lc.seconds:.1f} s: {index_counts(lc.json())}",
                    f"vector_sync initial sync {sync.seconds:.1f} s", sync.seconds / lc.seconds,
                    seconds=lc.seconds, peak_mib=lc.peak_mib, result=lc.json()))
    return None


def changed_chunks(before: Chunks, after: Chunks) -> int:
    return sum((Counter(texts) - Counter(before.get(doc, []))).total()
               for doc, texts in after.items())


def edit_rounds(root: Path, config: Path, before: Chunks, lc_why: str | None,
                seed: int) -> list[Round]:
    """REPEATS rounds: a sentence appended to 5 other notes, then vector_sync syncs it and
    LangChain indexes it (unless lc_why says why not), each as a whole process."""
    rng = random.Random(seed)
    picked = rng.sample(sorted((root / "vault").rglob("*.md")), 5 * REPEATS)
    rounds = []
    for n in range(REPEATS):
        progress(f"edit round {n + 1} of {REPEATS}")
        for note in picked[5 * n:5 * n + 5]:
            with note.open("a") as out:
                out.write("\n" + " ".join(sentence(rng)) + ".\n")
        after = vault_chunks(config)
        sync, counts = cli_sync(config)
        lc: Measured | str | None = lc_why
        if lc_why is None:
            try:
                lc = langchain(root, config)
            except ProcessFailed as error:
                lc = lc_why = f"failed: {error}"
        rounds.append(Round(sync, counts, changed_chunks(before, after), lc))
        before = after
    return rounds


def edit_rows(rounds: list[Round], only: set[str], rows: Rows) -> None:
    embedded = [r.counts["chunks_embedded"] for r in rounds]
    reused = [r.counts["chunks_reused"] for r in rounds]
    changed = [r.changed for r in rounds]
    seconds = median_seconds([r.sync for r in rounds])
    if "edit" in only:
        rows.append(row("edit", "edit 5 notes: chunks embedded (3 rounds)",
                        f"{', '.join(map(str, embedded))} (reused {', '.join(map(str, reused))})",
                        f"chunk texts changed {', '.join(map(str, changed))}",
                        sum(embedded) / max(sum(changed), 1), "<= changed",
                        all(e <= c for e, c in zip(embedded, changed, strict=True)),
                        embedded=embedded, reused=reused, changed=changed))
    lc_runs = [r.langchain for r in rounds if isinstance(r.langchain, Measured)]
    if len(lc_runs) < len(rounds):
        why = next(r.langchain for r in rounds if not isinstance(r.langchain, Measured))
        rows.append(row("edit", "edit 5 notes, whole process (median of 3)", f"{seconds:.2f} s",
                        f"LangChain {why}", target="<= 2 x LangChain", seconds=seconds))
        return
    lc_seconds, result = median_seconds(lc_runs), median(lc_runs).json()
    rows.append(row("edit", "edit 5 notes, whole process (median of 3)", f"{seconds:.2f} s",
                    f"LangChain {lc_seconds:.2f} s", seconds / lc_seconds, "<= 2 x LangChain",
                    seconds <= 2 * lc_seconds, seconds=seconds, langchain_seconds=lc_seconds))
    rows.append(row("langchain", "LangChain index(), 5-note edit, whole process",
                    f"{lc_seconds:.2f} s: {index_counts(result)}; embedded {result['embedded']}",
                    f"vector_sync embedded {statistics.median(embedded):.0f}",
                    seconds=lc_seconds, result=result))


def small_vault(root: Path, sizes: Sizes, only: set[str], seed: int, rows: Rows) -> None:
    from initial_sync import generate_vault

    generate_vault(root / "vault", sizes.notes, 200, 1200, seed)
    config = vault_config(root)
    before = vault_chunks(config)
    texts = [text for doc in before.values() for text in doc]
    raw = guarded(rows, "raw", lambda: raw_fastembed(root, config, texts, rows)) \
        if {"raw", "initial"} & only else None
    if not {"initial", "noop", "edit", "langchain"} & only:
        return
    sync = initial(config, texts, raw, rows)  # the rest needs it: no guard
    if "initial" not in only:
        rows[:] = [r for r in rows if r["group"] != "initial"]
    lc_why = langchain_missing() if "langchain" in only else "not run (--only)"
    if lc_why is None:
        lc_why = guarded(rows, "langchain", lambda: langchain_initial(root, config, sync, rows),
                         failed="failed (initial index)")
    elif "langchain" in only:
        rows.append(row("langchain", "LangChain index()", lc_why))
    if "noop" in only:
        guarded(rows, "noop", lambda: noop(config, rows))
    if {"edit", "langchain"} & only:
        edit_rows(edit_rounds(root, config, before, lc_why, seed), only, rows)


# --- large no-op, verify, Git ----------------------------------------------------------------


def bare_walk(vault: Path) -> float:
    started = time.perf_counter()
    for folder, _, files in os.walk(vault):
        for name in files:
            os.stat(os.path.join(folder, name))
    return time.perf_counter() - started


def large_noop(root: Path, notes: int, seed: int, rows: Rows) -> None:
    from noop_resync import generate_vault, scan_and_diff

    progress(f"{notes}-note vault: setup (not measured)")
    generate_vault(root / "vault", notes, 100, 400, seed)
    config = vault_config(root)
    in_process_setup(config)
    walk = statistics.median(bare_walk(root / "vault") for _ in range(REPEATS))
    scans = []
    for _ in range(REPEATS):
        seconds, _, diff = scan_and_diff(config)
        check_noop({**diff, "chunks_embedded": diff["chunks_to_embed"]})
        scans.append(seconds)
    rate, walk_rate = notes / statistics.median(scans), notes / walk
    progress(f"{notes}-note vault: no-op sync")
    runs = noops(config)
    imports = median_seconds(startup()["+ vector_sync.cli.runner"])
    seconds = median_seconds(runs)
    rows += [
        row("noop20k", f"no-op, {notes:,} notes: scan + diff (in-process)",
            f"{rate:,.0f} notes/s ({statistics.median(scans):.2f} s)",
            f"bare os.walk + stat {walk_rate:,.0f} notes/s", rate / walk_rate,
            ">= 50,000 notes/s", rate >= 50_000, notes_per_s=rate, walk_notes_per_s=walk_rate),
        row("noop20k", f"no-op, {notes:,} notes, whole process",
            f"{seconds:.2f} s, {peak(runs):.0f} MiB", f"+ vector_sync.cli.runner {imports:.2f} s",
            seconds / imports, "<= 5 s", seconds <= 5, seconds=seconds, peak_mib=peak(runs)),
    ]


MIB = re.compile(r"([\d,.]+) Mi?B")


def verify(sizes: Sizes, rows: Rows) -> None:
    """verify_100k.py as it is, its consistent-verify line parsed: seconds and peak MiB."""
    progress("verify_100k.py")
    done = subprocess.run([PYTHON, str(HERE / "verify_100k.py"), *sizes.verify_args],
                          cwd=HERE, env=environment(), capture_output=True, text=True)
    out = done.stdout
    line = next((x for x in out.splitlines() if x.startswith("consistent verify")), "")
    line = re.sub(r"\(target[^)]*\)", "", line)  # "(target <= 600 MiB)" is not a figure
    found = re.search(r"([\d.]+) s\b", line)
    memory = [x for x in out.splitlines() if "RSS" in x or "peak" in x]
    peaks = MIB.findall(line) or MIB.findall(memory[-1] if memory else "")
    points = re.search(r"for ([\d,]+) points", line)
    name = f"verify of {points[1] if points else '?'} points (verify_100k.py, consistent)"
    if done.returncode or found is None:
        rows.append(row("verify", name, f"failed: {last_line(done.stderr or out)}"))
        return
    seconds = float(found[1])
    mib = float(peaks[-1].replace(",", "")) if peaks else float("nan")
    rows.append(row("verify", name, f"{seconds:.2f} s, {mib:.0f} MiB",
                    target="<= 5 s, <= 600 MiB", met=seconds <= 5 and mib <= 600,
                    seconds=seconds, peak_mib=mib))


def git(root: Path, files: int, seed: int, rows: Rows) -> None:
    import git_commit_diff as g

    progress(f"Git, {files} files: setup (not measured)")
    paths = g.generate_repo(root / "repo", files, seed)
    config = g.write_config(root)
    in_process_setup(config)
    runs = []
    for n in range(REPEATS):
        progress(f"Git, {files} files: commit {n + 1} of 10 files")
        g.touch(root / "repo", paths, seed + 1 + n)
        run, counts = cli_sync(config)
        if (counts["updated"], counts["added"]) != (g.MODIFIED, g.ADDED):
            raise RuntimeError(f"the sync of 10 changed files reported {counts}")
        runs.append(run)
    seconds, baseline = median_seconds(runs), median_seconds(noops(config))
    rows.append(row("git", f"Git: 10 changed files of {files:,}, whole process",
                    f"{seconds:.2f} s, {peak(runs):.0f} MiB", f"no-op sync {baseline:.2f} s",
                    seconds / baseline, "<= 5 s", seconds <= 5, seconds=seconds,
                    noop_seconds=baseline, peak_mib=peak(runs)))


# --- main ------------------------------------------------------------------------------------


def guarded(rows: Rows, group: str, step: Callable[[], Any], failed: Any = None) -> Any:
    """What `step` returns; if it fails, `failed` and a row saying why (the table still
    prints)."""
    try:
        return step()
    except Exception as error:
        traceback.print_exc()
        rows.append(row(group, f"{group}: failed", last_line(str(error))))
        return failed


def table(rows: Rows) -> str:
    keys = ("name", "figure", "baseline", "ratio", "target", "met")
    lines = ["| figure | measured | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    ordered = sorted(rows, key=lambda r: GROUPS.index(r["group"]) if r["group"] in GROUPS else 0)
    return "\n".join(lines + ["| " + " | ".join(r[k] for k in keys) + " |" for r in ordered])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 30 notes, 2,000 notes, 10,000 points, 5,000 files")
    parser.add_argument("--only", type=lambda s: set(s.replace(",", " ").split()),
                        default=set(GROUPS) - {"million"},
                        help=f"comma-separated: {', '.join(GROUPS)} (million: only if named)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if args.only - set(GROUPS):
        parser.error(f"unknown --only names {sorted(args.only - set(GROUPS))}")
    sizes = QUICK if args.quick else Sizes()
    os.environ.pop("DAGSTER_HOME", None)  # the in-process setups: an ephemeral instance
    started, load = time.perf_counter(), os.getloadavg()[0]
    rows: Rows = []
    with scratch("vector_sync_bench_") as root:
        for name, needed, step in (
            ("small", {"raw", "initial", "noop", "edit", "langchain"},
             lambda d: small_vault(d, sizes, args.only, args.seed, rows)),
            ("noop20k", {"noop20k"}, lambda d: large_noop(d, sizes.large_notes, args.seed, rows)),
            ("verify", {"verify"}, lambda d: verify(sizes, rows)),
            ("git", {"git"}, lambda d: git(d, sizes.git_files, args.seed, rows)),
            ("migration", {"migration"},
             lambda d: rows.extend(migration_rows(d, args.quick, row))),
            ("million", {"million"}, lambda d: rows.extend(million_rows(d, args.quick, row))),
        ):
            if needed & args.only:
                (root / name).mkdir()
                guarded(rows, name, lambda: step(root / name))  # noqa: B023 - called at once
    meta = {"code": code_version(), "quick": args.quick, "sizes": sizes.__dict__,
            "cpus": os.cpu_count(), "load_start": load, "load_end": os.getloadavg()[0],
            "minutes": (time.perf_counter() - started) / 60}
    print(f"benchmarks/run.py{' --quick' if args.quick else ''}: code {meta['code']}; "
          f"{meta['cpus']} CPUs, load average {load:.1f} -> {meta['load_end']:.1f}; "
          f"{meta['minutes']:.1f} min")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
