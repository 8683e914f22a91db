"""Edit-to-searchable latency under the real ``dagster dev`` (webserver + daemon), next to a
baseline measured in the same run: the same kind of edit synced by hand with the CLI.

Public surfaces only: the ``vector-sync`` CLI, ``dagster dev`` in its own process group and
its GraphQL endpoint (run records, step stats, sensor ticks). On a copy of examples/vault
(embedded Qdrant, everything in a temporary folder), after an initial ``vector-sync sync``:

- baseline, per edit: append to a note, then ``vector-sync sync`` and ``vector-sync search``,
  each a whole new process; the baseline is the sum;
- under ``dagster dev`` (a fresh DAGSTER_HOME with the repository's dagster.yaml), once the
  ``watch_<source>`` sensor's first run has finished, per edit: wait a random part of the
  sensor interval, append to another note, and run ``vector-sync search ... --json
  --limit 1`` (at most once a second) until the top hit has the new text.
  Stages: edit -> the tick that requested the run -> run queued -> started -> finished ->
  searchable (the end of the search that found it); they add up to the total.

An edit is a level-2 heading and a sentence with a unique nonsense phrase: the heading starts
a chunk of its own (level-1/2 headings are hard chunk boundaries, see
docs/chunking-and-embedding.md), so a search for the phrase ranks it first. Target: 30 s;
exit code 1 when an edit missed it.

    .venv/bin/python benchmarks/dev_latency.py [--repeats 3] [--seed N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from _vault import COLLECTION, SOURCE, code_version, scratch

from vector_sync.config import load_config
from vector_sync.defs.jobs import SYNC_JOB  # "sync": the job the sensor requests

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
TARGET_S = 30.0
POLL_S, TIMEOUT_S = 1.0, 180.0  # a search starts at most once a second; per edit, at most
SENSOR = f"watch_{SOURCE}"
SYLLABLES = ["bra", "dro", "fen", "glim", "kra", "lun", "mop", "nix", "plo", "quor", "rab",
             "snu", "tov", "vex", "wib", "zan", "yol", "thra", "ulm", "ezz"]


def cli(config: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """`vector-sync <args> --config <config>`, timed as a whole process."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "QDRANT_URL")}
    started = time.time()
    done = subprocess.run([str(BIN / "vector-sync"), *args, "--config", str(config)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    return time.time() - started, done


def search_finds(config: Path, phrase: str) -> tuple[bool, float]:
    """(the top hit contains the phrase, seconds the search process took)."""
    seconds, done = cli(config, "search", COLLECTION, phrase, "--json", "--limit", "1")
    hits = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else []
    top = " ".join(str(hits[0].get("text") or "").split()).lower() if hits else ""
    return phrase in top, seconds


def edit(note: Path, rng: random.Random) -> str:
    phrase = " ".join("".join(rng.choices(SYLLABLES, k=3)) for _ in range(3))
    with note.open("a") as handle:
        handle.write(f"\n## The {phrase}\n\nRemember that the {phrase} lives on the second "
                     "shelf.\n")
    return phrase


def setup(root: Path) -> tuple[Path, list[Path]]:
    """The vault copy, its config, and its notes smallest first (ignored folders left out)."""
    vault = root / "vault"
    shutil.copytree(REPO / "examples" / "vault", vault)
    config = yaml.safe_load((REPO / "vector_sync.yaml").read_text())
    config["qdrant"] = {}  # embedded storage, never a server
    config["state"] = {**config.get("state", {}), "dir": str(root / "state")}
    config["sources"][SOURCE]["path"] = str(vault)
    config_file = root / "vector_sync.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    ignore = vault / ".vectorsyncignore"  # folders, in the example vault
    ignored = {line.strip().rstrip("/") for line in ignore.read_text().splitlines()
               if line.strip() and not line.startswith("#")} if ignore.exists() else set()
    notes = [p for p in vault.rglob("*.md") if not ignored & {*p.relative_to(vault).parts}]
    return config_file, sorted(notes, key=lambda p: p.stat().st_size)


class DagsterDev:
    """`dagster dev` in its own process group, stopped with SIGTERM (background processes
    ignore SIGINT), SIGKILL for whatever is left after the grace period."""

    def __init__(self, root: Path, config_file: Path) -> None:
        home = root / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "deploy/dagster-local.yaml", home / "dagster.yaml")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {**os.environ, "DAGSTER_HOME": str(home), "VECTOR_SYNC_CONFIG": str(config_file),
               "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("QDRANT_URL", None)
        self.log_path = root / "dagster_dev.log"
        self.started = time.time()
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [str(BIN / "dagster"), "dev", "-m", "vector_sync.definitions",
                 "-h", "127.0.0.1", "-p", str(self.port)], cwd=REPO, env=env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql", headers={"Content-Type": "application/json"},
            data=json.dumps({"query": query, "variables": variables}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL: {answer['errors']}")
        return dict(answer["data"])

    def finished_run(self, after: float, timeout: float) -> dict[str, Any]:
        """The first run the sensor created after `after` (epoch seconds), once finished."""
        query = """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results {
            runId status creationTime startTime endTime stepStats { stepKey startTime endTime }
            } } } }"""
        wanted = {"pipelineName": SYNC_JOB, "createdAfter": after,
                  "tags": [{"key": "dagster/sensor_name", "value": SENSOR}]}
        deadline = time.time() + timeout
        while time.time() < deadline and self.process.poll() is None:
            try:
                runs = self.graphql(query, f=wanted)["runsOrError"].get("results", [])
            except OSError:  # the webserver is not up yet
                runs = []
            run = min(runs, key=lambda r: r["creationTime"]) if runs else None
            if run and run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                return run
            time.sleep(0.5)
        raise TimeoutError(f"no finished {SENSOR} run within {timeout:.0f} s; see {self.log_path}")

    def requesting_tick(self, run_id: str, after: float) -> dict[str, Any] | None:
        repositories = self.graphql(
            """query($after: Float) { repositoriesOrError { ... on RepositoryConnection {
                 nodes { sensors { name sensorState {
                   ticks(afterTimestamp: $after, limit: 200) { timestamp runIds } } } } } } }""",
            after=after)["repositoriesOrError"]["nodes"]
        ticks = [t for r in repositories for s in r["sensors"] if s["name"] == SENSOR
                 for t in s["sensorState"]["ticks"]]
        return next((t for t in ticks if run_id in t["runIds"]), None)

    def stop(self, grace: float = 30.0) -> None:
        group = self.process.pid  # start_new_session: the leader's pid is the group's id
        try:
            os.killpg(group, signal.SIGTERM)
            deadline = time.time() + grace
            while time.time() < deadline:
                self.process.poll()
                os.killpg(group, 0)  # raises once no process of the group is left
                time.sleep(0.5)
            print(f"  dagster dev outlived SIGTERM by {grace:.0f} s: SIGKILL to its group")
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def measure(dev: DagsterDev, config_file: Path, note: Path, rng: random.Random
            ) -> dict[str, Any]:
    phrase = edit(note, rng)
    edited, found_at, polls = time.time(), None, 0
    while time.time() < edited + TIMEOUT_S:
        started = time.time()
        found, _ = search_finds(config_file, phrase)
        polls += 1
        if found:
            found_at = time.time()
            break
        time.sleep(max(0.0, started + POLL_S - time.time()))
    run = dev.finished_run(edited, TIMEOUT_S)
    tick = dev.requesting_tick(run["runId"], edited - 60)
    points = [(name, at) for name, at in [
        ("edit", edited), ("requesting tick", tick and tick["timestamp"]),
        ("run queued", run["creationTime"]), ("run started", run["startTime"]),
        ("run finished", run["endTime"]), ("searchable", found_at)] if at is not None]
    result: dict[str, Any] = {"note": note.name, "polls": polls, "stages": {
        f"{a} -> {b}": end - start for (a, start), (b, end) in pairwise(points)},
        "total": None if found_at is None else found_at - edited}
    result["run"] = f"run {run['runId'][:8]} {run['status']}; steps: " + ", ".join(
        f"{s['stepKey']} {(s['endTime'] or s['startTime']) - s['startTime']:.2f} s"
        for s in sorted(run["stepStats"], key=lambda s: s["startTime"] or 0) if s["startTime"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="edits to measure (each way)")
    parser.add_argument("--seed", type=int, default=None, help="picks notes and phrases")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    with scratch("vector_sync_dev_latency_", args.keep) as root:
        return run(root, args)


def run(root: Path, args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    config_file, notes = setup(root)
    interval = float(load_config(config_file).sensors.interval_s)
    count = min(2 * args.repeats, len(notes))  # a fresh note for every edit
    picked = rng.sample(notes[: max(count, len(notes) // 2)], count)
    print(f"dev_latency: examples/vault ({len(notes)} notes), {args.repeats} edit(s) each "
          f"way, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; code: {code_version()}")
    seconds, done = cli(config_file, "sync")
    if done.returncode != 0:
        print(f"initial `vector-sync sync` failed:\n{done.stderr[-2000:]}")
        return 1
    print(f"  initial `vector-sync sync`: {seconds:.1f} s")

    baseline = []
    for note in picked[: args.repeats]:
        phrase = edit(note, rng)
        sync_s, done = cli(config_file, "sync", "--source", SOURCE)
        found, search_s = search_finds(config_file, phrase)
        baseline.append(sync_s + search_s)
        print(f"  baseline {note.name!r}: sync {sync_s:.2f} s + search {search_s:.2f} s"
              + ("" if found and done.returncode == 0 else " (NOT searchable: see setup)"))

    dev, results = DagsterDev(root, config_file), []
    try:
        first = dev.finished_run(dev.started - 1, 600)
        print(f"  dagster dev: {SENSOR}'s first run {first['status']} "
              f"{first['endTime'] - dev.started:.1f} s after the start; sensor interval "
              f"{interval:g} s")
        for index, note in enumerate(picked[args.repeats:], 1):
            if first["status"] != "SUCCESS":
                break
            time.sleep(rng.uniform(0, interval))  # anywhere in the sensor's cycle
            results.append(measure(dev, config_file, note, rng))
            total = results[-1]["total"]
            print(f"  edit {index} {note.name!r}: " + (
                f"searchable after {total:.2f} s" if total is not None else "NOT found")
                + f" ({results[-1]['polls']} searches); {results[-1]['run']}")
    finally:
        dev.stop()
    errors = [line for line in dev.log_path.read_text(errors="replace").splitlines()
              if "Traceback" in line or " - ERROR - " in line]
    print(f"  dagster dev log: {len(errors)} error/traceback line(s)"
          + "".join(f"\n    {line[:200]}" for line in errors[:10]))

    def line(name: str, values: list[float]) -> None:
        median = f"   median {statistics.median(values):6.2f} s" if values else "   -"
        print(f"  {name:<38}" + "".join(f"{v:8.2f}" for v in values) + median)

    print(f"\nseconds, each edit then the median (target: searchable within {TARGET_S:g} s)")
    for name in dict.fromkeys(name for r in results for name in r["stages"]):
        line(name, [r["stages"][name] for r in results if name in r["stages"]])
    totals = [r["total"] for r in results if r["total"] is not None]
    line("total: edit -> searchable", totals)
    line("baseline: CLI sync + search", baseline)
    if totals and baseline:
        print(f"  dagster dev / baseline (medians): "
              f"{statistics.median(totals) / statistics.median(baseline):.2f}x")
    ok = len(totals) == len(results) == args.repeats and all(t <= TARGET_S for t in totals)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
