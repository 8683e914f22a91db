"""Peak memory and speed of the initial sync of a vault of LONG notes, as a whole process.

Every model call is padded to its longest text, and onnxruntime keeps (in its memory arena)
the largest working set any call needed: a batch of chunks that all fill the chunker's
budget sets the process's peak. This benchmark generates a vault of ``--notes`` (200) long
notes, each many ``##`` sections of text that the chunker cuts into chunks near
``max_tokens``, and runs ``vector-sync sync --json`` on a fresh state with:

- bounded: the configuration as shipped (``embedding.max_batch_tokens`` left at its default:
  each model call holds at most ``batch_size`` texts and that many padded tokens);
- count only (the baseline, the bound before ``max_batch_tokens`` existed): the same config
  with ``max_batch_tokens`` so large that only ``batch_size`` bounds a call.

The same pair then runs on a normal vault (benchmarks/initial_sync.py's notes of 300-900
words, most chunks far shorter than the budget), where the token bound should change
nothing. Each run is one process measured from outside (wall time, peak resident memory
from the kernel, see _measure.py); chunks/s is chunks embedded over that wall time, model
load and Dagster start-up included. With ``--repeats N`` every variant runs N times,
interleaved (the first of a pair alternates), and the median wall time and the highest peak
are shown. Figures only: on a
shared machine wall times swing with other processes' load, compare the ratios of one run.

Run: ``.venv/bin/python benchmarks/long_notes_memory.py [--notes N] [--repeats N]
[--skip-normal] [--quick]``. The vaults live in a temporary folder deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from _measure import Measured, measure
from _vault import (
    COLLECTION,
    SOURCE,
    code_version,
    folders,
    frontmatter,
    scratch,
    sentence,
    titles,
    write_config,
)
from initial_sync import generate_vault as normal_vault

CLI = str(Path(sys.executable).with_name("vector-sync"))
COUNT_ONLY = 1_000_000_000  # max_batch_tokens of the baseline: no call is ever cut by tokens


def long_note(rng: random.Random, title: str, sections: int) -> str:
    """`sections` `##` sections, each 2-4 paragraphs of 90-140 words: 180-560 words, which
    the chunker cuts into chunks at or near its 256-token budget."""
    lines = [*frontmatter(rng, title), f"# {title}", ""]
    for _ in range(sections):
        lines += [f"## {' '.join(sentence(rng, 2, 5))}", ""]
        for _ in range(rng.randint(2, 4)):
            words: list[str] = []
            while len(words) < rng.randint(90, 140):
                words += sentence(rng, 8, 18)
                words[-1] += "."
            lines += [" ".join(words), ""]
    return "\n".join(lines)


def long_vault(vault: Path, notes: int, sections: tuple[int, int], seed: int) -> int:
    rng = random.Random(seed)
    places = folders()
    size = 0
    for title in titles(rng, notes):
        folder = vault / rng.choice(places)
        folder.mkdir(parents=True, exist_ok=True)
        data = long_note(rng, title, rng.randint(*sections)).encode()
        (folder / f"{title}.md").write_bytes(data)
        size += len(data)
    return size


def config_file(root: Path, name: str, batch_size: int, max_batch_tokens: int | None) -> Path:
    """The benchmarks' quick-start config for root/vault, state in root/state-<name>."""
    path = write_config(root, batch_size=batch_size, state=f"state-{name}",
                        name=f"{name}.yaml")
    if max_batch_tokens is not None:
        config = yaml.safe_load(path.read_text())
        config["embedding"]["max_batch_tokens"] = max_batch_tokens
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def sync(config: Path) -> tuple[Measured, int]:
    """One initial sync as a whole process: its measurement and the chunks it embedded."""
    run = measure([CLI, "sync", "--config", str(config), "--json"], config.parent)
    counts = run.json()["sources"][SOURCE]["collections"][COLLECTION]
    if counts["failed"]:
        raise SystemExit(f"{config.name}: {counts['failed']} documents failed: {counts}")
    return run, int(counts["chunks_embedded"])


def compare(root: Path, label: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both variants on the vault in root/vault, `args.repeats` times each, interleaved."""
    variants = {"count only": COUNT_ONLY, "bounded": args.max_batch_tokens}
    runs: dict[str, list[tuple[Measured, int]]] = {name: [] for name in variants}
    for n in range(args.repeats):
        # every other repeat the other variant first: the second run of a pair tends to
        # find the page cache warm and the machine's load changed
        for name, bound in list(variants.items())[::1 if n % 2 == 0 else -1]:
            tag = f"{label}-{name.replace(' ', '-')}-{n}"
            runs[name].append(sync(config_file(root, tag, args.batch_size, bound)))
            measured, chunks = runs[name][-1]
            print(f"  {label:>6} {name:<10} run {n + 1}: {measured.seconds:6.1f} s, "
                  f"{chunks} chunks, {chunks / measured.seconds:5.1f} chunks/s, peak "
                  f"{measured.peak_mib:5.0f} MiB, load average {os.getloadavg()[0]:.1f}",
                  flush=True)
    figures: dict[str, Any] = {}
    for name, done in runs.items():
        counts = {c for _, c in done}
        if len(counts) != 1:
            raise SystemExit(f"{label} {name}: runs embedded different chunk counts {counts}")
        seconds = statistics.median(m.seconds for m, _ in done)
        figures[name] = {"chunks": counts.pop(), "seconds": seconds,
                         "peak_mib": max(m.peak_mib for m, _ in done)}
        figures[name]["rate"] = figures[name]["chunks"] / seconds
    return figures


def report(label: str, figures: dict[str, Any]) -> None:
    base, bounded = figures["count only"], figures["bounded"]
    for name, f in figures.items():
        print(f"{label:<12} {name:<11} {f['chunks']:7d} {f['seconds']:9.1f} "
              f"{f['rate']:9.1f} {f['peak_mib']:10.0f}")
    print(f"{label:<12} bounded / count only: chunks/s x{bounded['rate'] / base['rate']:.2f}, "
          f"peak memory x{bounded['peak_mib'] / base['peak_mib']:.2f} "
          f"({bounded['peak_mib'] - base['peak_mib']:+.0f} MiB)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=200, help="long notes in the vault")
    parser.add_argument("--sections", type=int, nargs=2, default=(3, 6),
                        help="## sections per long note, at least and at most")
    parser.add_argument("--normal-notes", type=int, default=150,
                        help="notes in the normal vault (300-900 words)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="embedding.batch_size of both variants (the default is 16)")
    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help="embedding.max_batch_tokens of the bounded variant "
                        "(default: left out of the config, so the shipped default)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-normal", action="store_true", help="the long vault only")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 notes each")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.notes, args.normal_notes = min(args.notes, 20), min(args.normal_notes, 20)
    args.repeats = max(1, args.repeats)

    os.environ.pop("DAGSTER_HOME", None)  # an ephemeral Dagster instance, no history
    print(f"long_notes_memory: {args.notes} long notes ({args.sections[0]}-{args.sections[1]}"
          f" sections), batch_size {args.batch_size}, {args.repeats} run(s) per variant, "
          f"{os.cpu_count()} CPUs; code: {code_version()}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    with scratch("vector_sync_long_", args.keep) as root:
        size = long_vault(root / "long" / "vault", args.notes, args.sections, args.seed)
        print(f"long vault: {size / 1e6:.1f} MB", flush=True)
        results["long notes"] = compare(root / "long", "long", args)
        if not args.skip_normal:
            size = normal_vault(root / "normal" / "vault", args.normal_notes, 300, 900,
                                args.seed)
            print(f"normal vault: {args.normal_notes} notes, {size / 1e6:.1f} MB", flush=True)
            results["normal notes"] = compare(root / "normal", "normal", args)
    print()
    print("=" * 78)
    print(f"{'vault':<12} {'variant':<11} {'chunks':>7} {'wall s':>9} {'chunks/s':>9} "
          f"{'peak MiB':>10}")
    print("-" * 78)
    for label, figures in results.items():
        report(label, figures)
    print("=" * 78)
    return 0


if __name__ == "__main__":
    sys.exit(main())
