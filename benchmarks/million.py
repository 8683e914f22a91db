"""The million-document benchmark: how each everyday command scales with the number of
documents, for a Markdown vault and a SurrealDB table (change feed), at each of `--sizes`
(default 100,000, 300,000, 1,000,000).

Setup per size and kind (printed, not measured against a target): the source is generated
(small notes spread over folders, or records inserted in bulk into an embedded SurrealKV
table defined with `CHANGEFEED 1d`), then synced once in a child process with the stand-in
embedder (benchmarks/_vault.py, cheap_setup). Its vectors have the real model's dimension, so
the state is one the real CLI accepts.

Measured, each a whole process of the real CLI (benchmarks/_measure.py: wall seconds, kernel
peak RSS), median of `--repeats` where the command changes nothing: a no-op sync (for
SurrealDB from a contiguous checkpoint, where the full listing is skipped, and again with
`full_listing_every_s: 0`, which lists every id), an edit of 10 documents, a deletion of
1,000 (the real model embeds only the 10 edited documents), `verify`, `verify --sample 0.01`
and `status`. Baselines of the same run: a bare listing (os.walk + stat; `SELECT id,
updated_at FROM t`), a raw qdrant-edge load + scroll of every payload, each in its own
process; sizes on disk: the ledger, `state.dir` without Qdrant's storage, Qdrant's storage,
and the vectors alone (points x dimension x 4 bytes).

Prints one Markdown table per kind (rows: figures; columns: sizes, the slope per 100,000
documents, the value projected to 1,000,000, the target, met or missed).

Run: `.venv/bin/python benchmarks/million.py [--sizes 20000,100000] [--kinds markdown,surrealdb]
[--repeats 3] [--json PATH] [--keep]`, or as the `million` group of benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from _measure import Measured, environment, linear_fit, measure, median_seconds, peak
from _vault import (
    COLLECTION,
    SOURCE,
    WORDS,
    bare_walk,
    code_version,
    scratch,
    sentence,
    short_body,
    write_small_vault,
)

from vector_sync.core.storage import disk_usage

HERE = Path(__file__).resolve()
PYTHON = sys.executable
CLI = str(Path(PYTHON).with_name("vector-sync"))
KINDS = ("markdown", "surrealdb")
DEFAULT_SIZES = [100_000, 300_000, 1_000_000]
EDITS, DELETIONS, MILLION, PER = 10, 1_000, 1_000_000, 100_000
MIB, GB_MIB = 1024 * 1024, 1e9 / (1024 * 1024)  # targets in GB: 1 GB = 953.7 MiB
TABLE = "article"
# figure -> {"s": seconds, "mib": peak, "size": MiB, "x": ratio} or {"failed": why}
Figures = dict[str, dict[str, Any]]


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- children: everything that touches the data runs in its own process ----------------------


def child(op: str, args: list[str]) -> None:
    """`million.py --child OP ARGS`: setup and baseline work, each in a fresh process (its own
    peak memory; the embedded SurrealKV and Qdrant stores are opened by one process at a
    time)."""
    if op == "setup":
        from _vault import cheap_setup, dagster_log

        from vector_sync.cli.runner import sync_source
        from vector_sync.config import load_config

        config = Path(args[0])
        with cheap_setup(), dagster_log(config.parent / "dagster.log"):
            report = sync_source(config, load_config(config), SOURCE)
        print(json.dumps(report, default=str))
    elif op == "walk":
        print(bare_walk(Path(args[0])))
    elif op == "scroll":  # every shard under the embedded storage, payloads, no vectors
        import qdrant_edge as edge

        points, dimension = 0, 0
        for shard_dir in sorted(Path(args[0]).glob("*/edge_config.json")):
            dimension = json.loads(shard_dir.read_text())["vectors"][""]["size"]
            shard, offset = edge.EdgeShard.load(str(shard_dir.parent)), None
            while True:
                records, offset = shard.scroll(edge.ScrollRequest(
                    offset=offset, limit=8192, with_payload=True, with_vector=False))
                points += len(records)
                if offset is None:
                    break
            shard.close()
        print(json.dumps({"points": points, "dimension": dimension}))
    else:
        surreal(op, args[0], args[1:])


def surreal(op: str, url: str, args: list[str]) -> None:
    from surrealdb import RecordID, Surreal

    db = Surreal(url)
    db.use("bench", "cms")
    rng = random.Random(int(args[-1]) if op in ("fill", "edit") else 0)
    if op == "fill":  # records `start` to `end` - 1, the table defined with the first
        start, end = int(args[0]), int(args[1])
        rng = random.Random(int(args[-1]) * 1_000_003 + start)
        if start == 0:
            db.query(f"DEFINE TABLE {TABLE} CHANGEFEED 1d")
        for first in range(start, end, 10_000):
            db.query(f"INSERT INTO {TABLE} $rows RETURN NONE", {"rows": [
                {"id": i, "title": " ".join(sentence(rng, 3, 6)), "body": short_body(rng),
                 "tags": rng.sample(WORDS, 2), "updated_at": i}
                for i in range(first, min(first + 10_000, end))]})
    elif op == "edit":
        for i in json.loads(args[0]):
            db.query(f"UPDATE {TABLE}:{i} SET body = $body, updated_at = time::unix()",
                     {"body": short_body(rng)})
    elif op == "delete":
        db.query("DELETE $ids", {"ids": [RecordID(TABLE, i) for i in json.loads(args[0])]})
    elif op == "bare":
        rows: Any = db.query(f"SELECT id, updated_at FROM {TABLE}")
        print(len(rows))
    db.close()


def run_child(*args: str) -> Measured:
    return measure([PYTHON, str(HERE), "--child", *args], HERE.parent)


# --- generated sources ------------------------------------------------------------------------


def write_config(root: Path, kind: str, count: int, listing_every: float | None = None,
                 name: str = "vector_sync.yaml") -> Path:
    if kind == "markdown":
        source: dict[str, Any] = {"kind": "markdown", "path": "vault"}
        fields = {"embed": ["title", "body"], "payload": ["tags", "path", "modified_at"]}
    else:
        source = {"kind": "surrealdb", "url": f"surrealkv://{root / 'db'}",
                  "namespace": "bench", "database": "cms", "table": TABLE}
        if listing_every is not None:
            source["full_listing_every_s"] = listing_every
        fields = {"embed": ["title", "body"], "payload": ["tags", "updated_at"]}
    if DELETIONS / count >= 0.5:  # the default mass-delete guard would stop the deletion
        source["max_delete_fraction"] = 1.0
    config = {"state": {"dir": "state"},
              "embedding": {"model": "sentence-transformers/all-MiniLM-L6-v2"},
              "sources": {SOURCE: {**source, "collections": [COLLECTION]}},
              "collections": {COLLECTION: fields}}
    (root / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return root / name


# --- measuring one size of one kind -----------------------------------------------------------


def counts(run: Measured) -> dict[str, int]:
    report = run.json()["sources"][SOURCE]
    if report.get("error"):
        raise RuntimeError(f"sync failed: {report['error']}")
    return dict(report["collections"][COLLECTION])


def sync(config: Path, expect: dict[str, int], times: int = 1) -> list[Measured]:
    runs = [measure([CLI, "sync", "--config", str(config), "--json"], config.parent)
            for _ in range(times)]
    for run in runs:
        found = counts(run)
        wrong = {k: found.get(k) for k, v in expect.items() if found.get(k) != v}
        if wrong:
            raise RuntimeError(f"sync of {config.name} reported {wrong}, expected {expect}: "
                               f"{found}")
    return runs


def timed(runs: Sequence[Measured]) -> dict[str, float]:
    return {"s": median_seconds(runs), "mib": peak(runs)}


SETUP_STEP = 100_000  # documents generated and synced at a time: the setup's memory stays
# that of a 100,000-document initial sync whatever the size


def set_up(root: Path, kind: str, count: int, seed: int) -> Figures:
    """Generate the source and sync it with the stand-in embedder, in steps of SETUP_STEP
    documents (each step's sync adds only the new ones). `root/setup.json` records the steps
    done, so a kept `--data` folder is set up once and measured again by later runs."""
    done_file, url = root / "setup.json", f"surrealkv://{root / 'db'}"
    done: dict[str, Any] = json.loads(done_file.read_text()) if done_file.exists() else {
        "documents": 0, "generate_s": 0.0, "sync_s": 0.0, "sync_mib": 0.0}
    config = write_config(root, kind, count)
    while done["documents"] < count:
        first, end = done["documents"], min(done["documents"] + SETUP_STEP, count)
        progress(f"{kind} {count:,}: generating documents {first:,} to {end:,}")
        started = time.perf_counter()
        if kind == "markdown":
            write_small_vault(root / "vault", end, seed, first)
        else:
            run_child("fill", url, str(first), str(end), str(seed))
        done["generate_s"] += time.perf_counter() - started
        setup = run_child("setup", str(config))
        report = json.loads(setup.stdout.strip().splitlines()[-1])
        if report["error"] or report["collections"][COLLECTION]["added"] != end - first:
            raise RuntimeError(f"setup sync failed: {report}")
        done.update(documents=end, sync_s=done["sync_s"] + setup.seconds,
                    sync_mib=max(done["sync_mib"], setup.peak_mib))
        done_file.write_text(json.dumps(done))
        progress(f"{kind} {count:,}: setup sync of {end - first:,} documents "
                 f"{setup.seconds:.0f} s, {setup.peak_mib:.0f} MiB")
    return {"setup: generate the source": {"s": done["generate_s"]},
            f"setup: sync, stand-in embedder (steps of {SETUP_STEP:,})": {
                "s": done["sync_s"], "mib": done["sync_mib"]}}


def one_size(root: Path, kind: str, count: int, repeats: int, seed: int) -> Figures:
    """Setup, then every figure of one kind at one size. A figure that fails is recorded as
    {"failed": why} and the others are still measured."""
    noop_keys = {k: 0 for k in ("added", "updated", "deleted", "failed", "chunks_embedded")}
    url, state = f"surrealkv://{root / 'db'}", root / "state"

    def figure(name: str, step: Callable[[], dict[str, float]]) -> None:
        try:
            figures[name] = step()
        except Exception as error:  # noqa: BLE001 - the table says which figure and why
            figures[name] = {"failed": str(error).strip().splitlines()[-1][-160:]}
            progress(f"{kind} {count:,}: {name} failed: {error}")

    figures: Figures = set_up(root, kind, count, seed)
    config = root / "vector_sync.yaml"
    progress(f"{kind} {count:,}: measuring")

    if kind == "markdown":
        bare, noop = "bare listing (os.walk + stat)", "no-op sync"
        figure(bare, lambda: timed([run_child("walk", str(root / "vault"))
                                    for _ in range(repeats)]))
        figure(noop, lambda: timed(sync(config, noop_keys, repeats)))
    else:
        bare, noop = "bare listing (SELECT id, updated_at)", "no-op sync, full listing"
        figure(bare, lambda: timed([run_child("bare", url) for _ in range(repeats)]))
        figure("no-op sync, contiguous checkpoint",
               lambda: timed(sync(config, noop_keys, repeats)))
        listing = write_config(root, kind, count, listing_every=0, name="listing.yaml")
        figure(noop, lambda: timed(sync(listing, noop_keys, repeats)))
    figure("no-op / bare listing", lambda: {"x": figures[noop]["s"] / figures[bare]["s"],
                                            "of": [noop, bare, "s", 1]})

    def scrolled() -> dict[str, float]:
        run = run_child("scroll", str(state / "qdrant" / "shards"))
        return {**timed([run]), **json.loads(run.stdout)}

    figure(scroll := "raw qdrant-edge load + scroll of every payload", scrolled)
    figures["ledger (SQLite) on disk"] = {"size": sum(  # with its -wal and -shm files
        disk_usage(p) for p in state.glob("ledger.sqlite*")) / MIB}
    qdrant = disk_usage(state / "qdrant")  # allocated blocks, as `du` and `status --storage`
    figures["state.dir without Qdrant storage"] = {"size": (disk_usage(state) - qdrant) / MIB}
    figures["Qdrant storage"] = {"size": qdrant / MIB}
    figure("vectors alone (points x dim x 4 B)", lambda: {
        "size": figures[scroll]["points"] * figures[scroll]["dimension"] * 4 / MIB})
    figures["(ledger + state.dir) / Qdrant storage"] = {
        "pct": 100 * figures["state.dir without Qdrant storage"]["size"]
        / figures["Qdrant storage"]["size"],
        "of": ["state.dir without Qdrant storage", "Qdrant storage", "size", 100]}

    for name, times in (("status", repeats), ("verify", 1), ("verify --sample 0.01", 1)):
        command = [CLI, *name.split()[:1], "--config", str(config), "--json",
                   *name.split()[1:]]
        figure(name, lambda c=command, t=times: timed(  # type: ignore[misc]
            [measure(c, root) for _ in range(t)]))

    # what is edited and deleted is picked among the documents there now (a kept folder was
    # measured before: the deletions of earlier runs are gone)
    rng, deleted_file = random.Random(seed + 1), root / "deleted.json"
    if kind == "markdown":
        paths = sorted(Path(folder, name) for folder, _, names in os.walk(root / "vault")
                       for name in names)
        picked = rng.sample(range(len(paths)), EDITS + DELETIONS)
        for i in picked[:EDITS]:
            with paths[i].open("a") as out:
                out.write(f"\n{short_body(rng)}\n")
    else:
        gone = set(json.loads(deleted_file.read_text())) if deleted_file.exists() else set()
        picked = rng.sample(sorted(set(range(count)) - gone), EDITS + DELETIONS)
        deleted_file.write_text(json.dumps(sorted(gone | set(picked[EDITS:]))))
        run_child("edit", url, json.dumps(picked[:EDITS]), str(seed))
    figure(f"{EDITS} documents edited, sync" + (", contiguous checkpoint" if kind != "markdown"
                                                else ""), lambda: timed(
        sync(config, {"updated": EDITS, "failed": 0})))
    if kind == "markdown":
        for i in picked[EDITS:]:
            paths[i].unlink()
    else:
        run_child("delete", url, json.dumps(picked[EDITS:]))
    figure(f"{DELETIONS:,} documents deleted, sync", lambda: timed(
        sync(config, {"deleted": DELETIONS, "failed": 0})))
    return figures


# --- the table --------------------------------------------------------------------------------

GB = f"(1 GB = {GB_MIB:.0f} MiB)"
TARGETS: dict[str, tuple[str, Callable[[dict[str, float]], bool]]] = {
    "no-op sync": ("<= 30 s, <= 1 GB", lambda v: v["s"] <= 30 and v["mib"] <= GB_MIB),
    "no-op sync, full listing": ("<= 30 s, <= 1 GB",
                                 lambda v: v["s"] <= 30 and v["mib"] <= GB_MIB),
    "no-op sync, contiguous checkpoint": ("<= 5 s", lambda v: v["s"] <= 5),
    "no-op / bare listing": ("<= 3x", lambda v: v["x"] <= 3),
    f"{EDITS} documents edited, sync": ("<= 35 s", lambda v: v["s"] <= 35),
    f"{EDITS} documents edited, sync, contiguous checkpoint": ("<= 5 s", lambda v: v["s"] <= 5),
    f"{DELETIONS:,} documents deleted, sync": ("<= 40 s", lambda v: v["s"] <= 40),
    "verify": ("<= 60 s, <= 1.5 GB", lambda v: v["s"] <= 60 and v["mib"] <= 1.5 * GB_MIB),
    "verify --sample 0.01": ("<= 10 s", lambda v: v["s"] <= 10),
    "status": ("<= 2 s", lambda v: v["s"] <= 2),
    "(ledger + state.dir) / Qdrant storage": ("<= 25%", lambda v: v["pct"] <= 25),
}
GROWTH_MIB = 300e6 / MIB  # peak memory growth from 100k to 1M documents, per figure


UNITS = {"s": ("{:.2f} s", "{:+.2f} s"), "mib": ("{:.0f} MiB", "{:+.1f} MiB"),
         "size": ("{:.1f} MiB", "{:+.1f} MiB"), "x": ("{:.2f}x", "{:+.3f}x"),
         "pct": ("{:.1f}%", "{:+.2f}%")}


def summarize(sizes: list[int], results: dict[int, Figures]) -> list[list[str]]:
    """Per figure: [name, a cell per size, slope per 100,000, linear value at 1M, target,
    met]; a figure that failed at any size: [name, why]."""
    found = []
    for name in results[sizes[0]]:
        failed = [f"{n:,}: {results[n][name]['failed']}" for n in sizes
                  if "failed" in results[n][name]]
        if failed:
            found.append([name, f"failed: {'; '.join(failed)}"])
            continue
        units = [u for u in UNITS if u in results[sizes[0]][name]]
        cells = [", ".join(UNITS[u][0].format(results[n][name][u]) for u in units)
                 for n in sizes]
        slopes, at_million, growth = [], [], None
        for u in units:
            if line := linear_fit(sizes, [results[n][name][u] for n in sizes]):
                slopes.append(UNITS[u][1].format(line[1] * PER))
                at_million.append(UNITS[u][0].format(line[0] + line[1] * MILLION))
                growth = line[1] * (MILLION - PER) if u == "mib" else growth
        if len(sizes) > 1 and "of" in results[sizes[-1]][name]:  # a ratio: of the projections
            top, bottom, key, scale = results[sizes[-1]][name]["of"]
            top_fit, bottom_fit = (linear_fit(sizes, [results[n][f][key] for n in sizes])
                                   for f in (top, bottom))
            if top_fit and bottom_fit:
                slopes = ["-"]
                at_million = [UNITS[units[0]][0].format(
                    scale * (top_fit[0] + top_fit[1] * MILLION)
                    / (bottom_fit[0] + bottom_fit[1] * MILLION))]
        target, check = TARGETS.get(name, ("", None))
        verdict = ["met" if check(results[sizes[-1]][name]) else "missed"] if check else []
        if growth is not None:
            target += f"{'; ' if target else ''}memory growth 100k->1M ({growth:+.0f} MiB)"
            if check:  # a target per figure of the CLI's, not of the setup or the baselines
                target += " <= 300 MB"
                verdict.append("growth " + ("met" if growth <= GROWTH_MIB else "missed"))
        found.append([name, *cells, ", ".join(slopes) or "-", ", ".join(at_million) or "-",
                      target, "; ".join(verdict)])
    return found


def table(kind: str, sizes: list[int], results: dict[int, Figures]) -> str:
    lines = [f"### {kind}", "", "| figure | " + " | ".join(f"{n:,}" for n in sizes)
             + " | per 100,000 docs | at 1,000,000 (linear) | target at 1M, 2 cores | met |",
             "|---" * (len(sizes) + 5) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in summarize(sizes, results)]
    lines += ["", f"Targets are for 1,000,000 documents; met/missed is judged on the value "
              f"measured at {sizes[-1]:,} (a time or memory target missed there is missed at 1M "
              "too) and the memory growth on the slope. The linear projection is a hint only: "
              f"fixed costs (start-up, model load) dominate small sizes. {GB}."]
    return "\n".join(lines)


def run_rows(root: Path, quick: bool, row: Any) -> list[dict[str, Any]]:
    """The `million` group of benchmarks/run.py: a row per figure and kind (--quick: 3,000
    and 6,000 documents; else the default sizes, which take hours). The data goes to
    temporary folders of its own, not under `root` (each size is deleted once measured)."""
    del root
    sizes = [3_000, 6_000] if quick else DEFAULT_SIZES
    found = []
    for kind, results in run_all(sizes, KINDS, 3, 13).items():
        for name, *cells in summarize(sizes, results):
            if len(cells) == 1:
                found.append(row("million", f"{kind}: {name}", cells[0]))
                continue
            *values, slope, _, target, verdict = cells
            found.append(row(
                "million", f"{kind}: {name}", "; ".join(
                    f"{n:,}: {v}" for n, v in zip(sizes, values, strict=True)),
                f"per 100,000 docs {slope}", target=target,
                met=None if not verdict else "missed" not in verdict,
                **{str(n): results[n][name] for n in sizes}))
    return found


def status_storage(config: Path) -> str | None:
    """`vector-sync status --storage`, if this version has it (shown, not measured)."""
    if "--storage" not in subprocess.run([CLI, "status", "--help"], capture_output=True,
                                         text=True, env=environment()).stdout:
        return None
    done = subprocess.run([CLI, "status", "--storage", "--config", str(config)],
                          capture_output=True, text=True, env=environment(), cwd=config.parent)
    return done.stdout + done.stderr


@contextmanager
def data_folder(kind: str, count: int, keep: bool, data: Path | None) -> Iterator[Path]:
    """Where one size of one kind lives: `data/<kind>_<count>`, kept and set up once, or a
    temporary folder removed afterwards (unless `keep`)."""
    if data is None:
        with scratch(f"vector_sync_million_{kind}_{count}_", keep) as root:
            yield root
            progress(f"{kind} {count:,}: removing the generated data (minutes for a large "
                     "vault: unlinking is slower than writing)" if not keep else
                     f"{kind} {count:,}: keeping {root}")
        return
    root = data / f"{kind}_{count}"
    root.mkdir(parents=True, exist_ok=True)
    yield root


def run_all(sizes: list[int], kinds: Sequence[str], repeats: int, seed: int,
            keep: bool = False, data: Path | None = None,
            setup_only: bool = False) -> dict[str, dict[int, Figures]]:
    os.environ.pop("DAGSTER_HOME", None)
    found: dict[str, dict[int, Figures]] = {kind: {} for kind in kinds}
    for kind in kinds:
        for count in sizes:
            with data_folder(kind, count, keep, data) as root:
                if setup_only:
                    found[kind][count] = set_up(root, kind, count, seed)
                    continue
                found[kind][count] = one_size(root, kind, count, repeats, seed)
                progress(f"{kind} {count:,}: done")
                if (shown := status_storage(root / "vector_sync.yaml")) is not None:
                    print(f"vector-sync status --storage, {kind}, {count:,} documents "
                          f"(after the deletions):\n{shown}", flush=True)
    return found


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        type=lambda s: sorted(int(x) for x in s.split(",")))
    parser.add_argument("--kinds", default=",".join(KINDS), type=lambda s: s.split(","))
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each figure that changes nothing (median)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", type=Path, help="also write the raw values here")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--data", type=Path, help="a folder for the generated data, kept: "
                        "each kind and size is set up once there and measured by every run "
                        "(a run deletes 1,000 documents: later runs measure slightly fewer)")
    parser.add_argument("--setup-only", action="store_true",
                        help="with --data: set up the sources, measure nothing")
    args = parser.parse_args(argv)
    if set(args.kinds) - set(KINDS) or min(args.sizes) <= EDITS + DELETIONS:
        parser.error(f"--kinds from {KINDS}; every size above {EDITS + DELETIONS}")
    load, started = os.getloadavg()[0], time.perf_counter()
    results = run_all(args.sizes, args.kinds, args.repeats, args.seed, args.keep, args.data,
                      args.setup_only)
    if args.setup_only:
        return
    print(f"benchmarks/million.py --sizes {','.join(map(str, args.sizes))}: code "
          f"{code_version()}; {os.cpu_count()} CPUs, load average {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f}; {(time.perf_counter() - started) / 60:.1f} min. "
          f"The {DELETIONS:,} deletions stay under the default max_delete_fraction 0.5 at "
          f"every size above {2 * DELETIONS:,} (below it the config sets 1.0).\n")
    for kind in args.kinds:
        print(table(kind, args.sizes, results[kind]) + "\n")
    if args.json:
        args.json.write_text(json.dumps({kind: {str(n): f for n, f in r.items()}
                                         for kind, r in results.items()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
