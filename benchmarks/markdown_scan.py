"""Benchmark: the Markdown source's listing, `MarkdownSource.scan()`, against a bare
`os.walk` + `os.stat` of the same vault, measured in the same run.

The bare walk is the floor: the system calls any listing pays (one listing per folder, one
stat per file). The ratio is what the scan adds on top: the include/exclude globs, the
ignore-file layers, the dot-folder rule, the symlink checks, the name order and one
SourceEntry (doc_id + version hint) per note. Nothing is read but the stat: a no-op sync
pays this for every note of the vault.

This writes a vault of --count small notes (benchmarks/_vault.py `write_small_vault`, the
million-note benchmark's layout: about 480 folders, buckets of at most 500 notes) with the
page cache warm, then times the two in turn, A B A B ..., each figure the median of
--runs. Garbage collection stays on, as in a sync. Both wall and CPU time (user + system of
this process) are printed: on a shared machine the wall time also holds the time spent
waiting for a processor, the CPU time does not.

    .venv/bin/python benchmarks/markdown_scan.py [--count 100000] [--runs 5] [--keep]
        [--ignore PATTERN ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from _vault import bare_walk, code_version, scratch, write_small_vault

from vector_sync.sources.markdown import MarkdownConfig, MarkdownSource


def scan(vault: Path) -> int:
    config = MarkdownConfig(kind="markdown", collections=["notes"], path=vault)
    return sum(1 for _ in MarkdownSource("notes", config).scan())


def timed(action: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process: user + system, the count)."""
    started, cpu = time.perf_counter(), time.process_time()
    counted = action()
    return time.perf_counter() - started, time.process_time() - cpu, counted


def figures(label: str, runs: list[tuple[float, float]], unit: str, count: int) -> str:
    wall, cpu = (statistics.median(run[i] for run in runs) for i in (0, 1))
    return f"{label:<24}{wall:6.3f} s wall, {cpu:6.3f} s CPU  ({count / wall:,.0f} {unit}/s)"


def ratio(label: str, scans: list[tuple[float, float]], walks: list[tuple[float, float]],
          index: int) -> str:
    pairs = sorted(scan[index] / walk[index] for scan, walk in zip(scans, walks, strict=True))
    median = statistics.median(s[index] for s in scans) / statistics.median(
        w[index] for w in walks)
    return (f"scan / bare walk, {label}: {median:5.2f}x  "
            f"(pair by pair: min {pairs[0]:.2f}x, max {pairs[-1]:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="notes in the vault")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the generated vault")
    parser.add_argument("--ignore", action="append", default=[], metavar="PATTERN",
                        help="a line of a .vectorsyncignore at the vault's root (repeatable; "
                        "every note is then checked against it)")
    args = parser.parse_args()
    print(f"code: {code_version()}")
    with scratch("vector_sync_scan_", keep=args.keep) as root:
        vault = root / "vault"
        started = time.perf_counter()
        write_small_vault(vault, args.count, args.seed)
        print(f"vault: {args.count:,} notes, written in {time.perf_counter() - started:.1f} s")
        if args.ignore:  # patterns the notes must not match, or the counts would differ
            (vault / ".vectorsyncignore").write_text("".join(f"{line}\n" for line in args.ignore))
            print(f"root .vectorsyncignore: {args.ignore}")
        scan(vault), bare_walk(vault)  # warm-up: imports, page cache, dentry cache
        scans, walks = [], []
        for _ in range(args.runs):
            wall, cpu, listed = timed(lambda: scan(vault))
            scans.append((wall, cpu))
            wall, cpu, walked = timed(lambda: bare_walk(vault))
            walks.append((wall, cpu))
            assert listed == args.count == walked - bool(args.ignore), (listed, walked)
        print(f"medians of {args.runs} runs each, in turn:")
        print(figures("bare os.walk + os.stat", walks, "files", args.count))
        print(figures("MarkdownSource.scan()", scans, "notes", args.count))
        print(ratio("wall", scans, walks, 0))
        print(ratio("CPU ", scans, walks, 1))


if __name__ == "__main__":
    main()
