"""One entry point for the figures of issue 11, each next to a baseline measured in the same
run: `make bench`, or `.venv/bin/python benchmarks/run.py [--quick] [--json PATH]`.

Every figure is a whole process (Python start-up, imports, model load included), timed from
the outside, with its peak resident memory from the kernel (`wait4`). On a generated vault of
173 notes (`--notes`):

  raw fastembed     the exact chunk texts the initial sync embedded, in their naive order,
                    embedded by a process that loads the same model and does nothing else
  initial sync      `vector-sync sync` of the fresh vault; ratio = its chunks/s over raw's
  no-op sync        the same again with nothing changed (median of 3)
  edit 5 notes      one sentence appended to each of 5 notes, then `vector-sync sync`:
                    chunks embedded against the chunks whose text actually changed
  LangChain edit    a LangChain process for the same edit: imports, model load, and
                    `index()` (SQLRecordManager, cleanup="incremental", Qdrant local mode)
                    over the same chunk texts; the baseline of the edit's seconds
  delete 2 notes    `vector-sync sync` after two notes are deleted

and, from the dedicated scripts (run as they are, their printed figures parsed):
`verify_100k.py` (100,000 points) and `git_commit_diff.py` (50,000 files, 10 changed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from _vault import COLLECTION, SOURCE, scratch, write_config
from initial_sync import generate_vault

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
CLI = str(Path(PYTHON).with_name("vector-sync"))

RAW_EMBED = """
import json, sys, time
from vector_sync.config import load_config
from vector_sync.core.embedder import Embedder
texts = json.load(open(sys.argv[2]))
Embedder(load_config(sys.argv[1]).embedding).embed(texts)
"""


def run(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, stdout) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True,
                             env={**os.environ, "DAGSTER_HOME": ""})
    out = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{command[:3]} failed: {out[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, out


def sync(root: Path) -> tuple[float, float, dict[str, int]]:
    seconds, peak, out = run([CLI, "sync", "--config", str(root / "vector_sync.yaml"),
                              "--json"], root)
    return seconds, peak, json.loads(out)["sources"][SOURCE]["collections"][COLLECTION]


def chunk_sets(root: Path) -> dict[str, list[str]]:
    """doc_id -> chunk texts of the last change set's added and updated documents."""
    table = pq.read_table(root / "state" / "changes" / COLLECTION / f"{SOURCE}.parquet",
                          columns=["doc_id", "action", "chunks"]).to_pylist()
    return {r["doc_id"]: r["chunks"] for r in table if r["action"] in ("added", "updated")}


def langchain_index(root: Path, chunks: dict[str, list[str]]) -> tuple[float, float, str]:
    """A LangChain process indexing `chunks` (doc_id -> texts) incrementally."""
    docs = root / "langchain_docs.json"
    docs.write_text(json.dumps(chunks))
    return run([PYTHON, str(HERE / "_langchain_index.py"), str(root / "vector_sync.yaml"),
                str(docs), str(root / "langchain")], root)


def edit(vault: Path, notes: list[Path], rng: random.Random) -> None:
    for note in notes:
        note.write_text(note.read_text() + f"\nOne more thing about {rng.random():.6f}.\n")


def measure(notes: int, seed: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with scratch("vector_sync_bench_") as root:
        generate_vault(root / "vault", notes, 200, 1200, seed)
        write_config(root)
        seconds, peak, counts = sync(root)
        initial = chunk_sets(root)
        texts = [t for doc in initial.values() for t in doc]
        (root / "texts.json").write_text(json.dumps(texts))
        raw_s, raw_peak, _ = run([PYTHON, "-c", RAW_EMBED, str(root / "vector_sync.yaml"),
                                  str(root / "texts.json")], root)
        rows.append(row("raw fastembed, whole process", f"{len(texts) / raw_s:.1f} chunks/s",
                        note=f"{len(texts)} chunks in {raw_s:.1f} s, peak {raw_peak:.0f} MiB"))
        ratio = (counts["chunks_embedded"] / seconds) / (len(texts) / raw_s)
        rows.append(row("initial sync, whole process", f"{seconds:.1f} s", f"{raw_s:.1f} s",
                        f"{ratio:.2f} x raw chunks/s", ">= 0.95", ratio >= 0.95,
                        f"{counts['chunks_embedded']} chunks, peak {peak:.0f} MiB (<= 1024)"))
        rows.append(row("initial sync peak memory", f"{peak:.0f} MiB", target="<= 1024 MiB",
                        met=peak <= 1024))
        lc_s, lc_peak, lc_out = langchain_index(root, initial)
        rows.append(row("LangChain index(), initial", f"{lc_s:.1f} s", note=lc_out.strip()))

        noops = [sync(root) for _ in range(3)]
        noop_s = statistics.median(s for s, _, _ in noops)
        noop_peak = max(p for _, p, _ in noops)
        start_s, _, _ = run([PYTHON, "-c", "import vector_sync.cli, vector_sync.defs.run"], root)
        rows.append(row("no-op sync, whole process (median of 3)", f"{noop_s:.2f} s",
                        f"{start_s:.2f} s imports only", target="<= 3 s", met=noop_s <= 3,
                        note=f"peak {noop_peak:.0f} MiB (<= 250)"))
        rows.append(row("no-op sync peak memory", f"{noop_peak:.0f} MiB", target="<= 250 MiB",
                        met=noop_peak <= 250))

        rng = random.Random(seed)
        edited = rng.sample(sorted((root / "vault").rglob("*.md")), 5)
        edit(root / "vault", edited, rng)
        edit_s, _, counts = sync(root)
        after = {**initial, **chunk_sets(root)}
        changed = sum(len(set(after[d]) - set(initial[d])) for d in chunk_sets(root))
        rows.append(row("edit 5 notes: chunks embedded", str(counts["chunks_embedded"]),
                        f"{changed} chunk texts changed", target="<= changed",
                        met=counts["chunks_embedded"] <= changed,
                        note=f"{counts['chunks_reused']} reused"))
        lc_s, _, lc_out = langchain_index(root, after)
        rows.append(row("edit 5 notes, whole process", f"{edit_s:.2f} s",
                        f"{lc_s:.2f} s LangChain", f"{edit_s / lc_s:.2f} x", "<= 2 x",
                        edit_s <= 2 * lc_s, f"LangChain: {lc_out.strip()}"))

        for note in edited[:2]:
            note.unlink()
        delete_s, _, counts = sync(root)
        rows.append(row("delete 2 notes, whole process", f"{delete_s:.2f} s",
                        note=f"deleted {counts['deleted']}"))
    return rows


def from_script(name: str, args: list[str], pattern: str) -> str:
    """The line of a dedicated benchmark's output that starts with `pattern`."""
    out = subprocess.run([PYTHON, str(HERE / name), *args], capture_output=True, text=True,
                         cwd=HERE).stdout
    lines = [line.strip() for line in out.splitlines() if line.strip().startswith(pattern)]
    return lines[0] if lines else f"failed: {out.strip().splitlines()[-1:]}"


def row(name: str, figure: str, baseline: str = "", ratio: str = "", target: str = "",
        met: bool | None = None, note: str = "") -> dict[str, Any]:
    return {"name": name, "figure": figure, "baseline": baseline, "ratio": ratio,
            "target": target, "met": "" if met is None else ("yes" if met else "NO"),
            "note": note}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=173)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="30 notes; smaller scripts")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    notes = 30 if args.quick else args.notes
    print(f"benchmarks/run.py: {notes} notes, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    rows = measure(notes, args.seed)
    verify = from_script("verify_100k.py", ["--quick"] if args.quick else [],
                         "consistent verify")
    rows.append(row("verify, embedded store", verify.split(":")[1].split("(")[0].strip()
                    if ":" in verify else verify, target="<= 5 s, <= 600 MiB", note=verify))
    git = from_script("git_commit_diff.py", ["--repeats", "1"] + (["--quick"] if args.quick
                                                                  else []), "(c)")
    rows.append(row("git: 10 changed files, whole process", git.split(":")[1].split("(")[0]
                    .strip() if ":" in git else git, target="<= 5 s", note=git))
    print("\n| figure | measured | baseline | ratio | target | met | note |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in ("name", "figure", "baseline", "ratio",
                                                    "target", "met", "note")) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
