"""Change detection in a large Git repository: one commit touching 10 files.

Generates a bare repository of 50,000 Markdown files (``--files``) in one commit with
``git fast-import``, syncs it once (setup, not measured), then commits 10 changes (8 files
modified, 2 added) and measures, on that new head:

(a) detection by the source alone: GitSource.scan() (pin the head, ``git ls-tree`` of the
    whole tree, include/ignore rules) plus changed_since(<last synced commit>) (``git
    diff-tree``). Target: < 2 s.
(b) the ``source_snapshot`` stage (vector_sync.core.pipeline.snapshot.snapshot, no
    Dagster): (a) plus the ledger look-ups, the hint comparison of every file, reading the
    changed blobs and
    writing the snapshot Parquet. Counts the blobs actually taken from ``git cat-file``:
    it must be exactly the 10 changed files.
(c) the whole ``vector-sync sync --json`` process for that commit (Python start-up,
    imports, the Dagster run, the real model embedding the 10 files), with its counts.
(d) for a second such commit, the same Dagster run in-process (no start-up or imports),
    by step, to show where the rest of (c) goes.

Setup (not measured): the initial sync runs in-process with a stand-in embedder and
embedded Qdrant (benchmarks/_vault.py, cheap_setup), since the
point here is detection, not embedding.

Run: ``.venv/bin/python benchmarks/git_commit_diff.py [--files N] [--repeats R] [--quick]``.
Generated data lives in a temporary folder that is deleted at the end (``--keep`` keeps it).
DAGSTER_HOME is unset, so runs use an ephemeral Dagster instance and leave no history.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import yaml
from _vault import (
    COLLECTION,
    SOURCE,
    asset_durations,
    cheap_setup,
    code_version,
    dagster_log,
    folders,
    frontmatter,
    scratch,
    sentence,
    step_seconds,
    step_table,
    sync_with_result,
    titles,
)
from noop_resync import cli_sync, import_only

TARGET_S = 2.0
MODIFIED, ADDED = 8, 2


# --- the repository ---------------------------------------------------------------------------


def note(rng: random.Random, title: str) -> bytes:
    body = [" ".join(sentence(rng)) + "." for _ in range(rng.randint(2, 6))]
    return "\n".join([*frontmatter(rng, title), f"# {title}", "", " ".join(body), ""]).encode()


def blob_command(path: str, data: bytes) -> bytes:
    return b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data)


def commit(repo: Path, message: str, when: int, changes: list[bytes], parent: bool) -> None:
    """One commit on main from fast-import commands (M/D lines with inline data)."""
    header = (b"commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\n"
              b"data %d\n%s\n" % (when, len(message), message.encode()))
    if parent:
        header += b"from refs/heads/main^0\n"
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"],
                   input=header + b"".join(changes), check=True)


def generate_repo(repo: Path, files: int, seed: int) -> list[str]:
    """A bare repository with `files` notes in one commit; returns their paths."""
    subprocess.run(["git", "init", "--bare", "--quiet", "-b", "main", str(repo)], check=True)
    rng = random.Random(seed)
    places = folders()
    paths = [f"{rng.choice(places)}/{title}.md" for title in titles(rng, files)]
    commit(repo, "all notes", 1_700_000_000,
           [blob_command(path, note(rng, path)) for path in paths], parent=False)
    return paths


def touch(repo: Path, paths: list[str], seed: int) -> list[str]:
    """A commit modifying MODIFIED files and adding ADDED; returns the touched paths."""
    rng = random.Random(seed)
    changed = rng.sample(paths, MODIFIED) + [f"new/added {seed} {i}.md" for i in range(ADDED)]
    commit(repo, "touch 10 files", 1_700_000_000 + seed,
           [blob_command(path, note(rng, path) + b"\nEdited.\n") for path in changed],
           parent=True)
    return changed


def write_config(root: Path) -> Path:
    config = {
        "state": {"dir": "state"},
        "sources": {SOURCE: {"kind": "git", "repo": "repo", "branch": "main",
                             "collections": [COLLECTION]}},
        "collections": {COLLECTION: {"embed": ["title", "body"],
                                     "payload": ["tags", "path", "commit", "committed_at"]}},
    }
    path = root / "vector_sync.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- measurements -----------------------------------------------------------------------------


@contextmanager
def counted_blobs() -> Iterator[list[str]]:
    """The blob ids the Git source takes from `git cat-file` (git/objects.py, Blobs.get), in
    order: counted, then passed on to the real method."""
    from vector_sync.sources.git.objects import Blobs

    taken: list[str] = []
    original = Blobs.get

    def get(self: Any, sha: str) -> bytes:
        taken.append(sha)
        return original(self, sha)

    Blobs.get = get  # type: ignore[method-assign]
    try:
        yield taken
    finally:
        Blobs.get = original  # type: ignore[method-assign]


def detect(config: Any) -> tuple[float, int, set[str], dict[str, Any]]:
    """(a): seconds, files listed, paths to read, detection metadata."""
    from vector_sync.core.ledger import open_ledger
    from vector_sync.core.pipeline.checkpoints import last_checkpoint

    with open_ledger(config.state) as ledger:
        last = last_checkpoint(ledger, SOURCE, [COLLECTION])
    source: Any = config.open_source(SOURCE)
    started = time.perf_counter()
    listed = sum(1 for _ in source.scan())
    changed = source.changed_since(last)
    return time.perf_counter() - started, listed, changed, source.detection


def snapshot_stage(config: Any) -> tuple[float, dict[str, Any], list[str]]:
    """(b): seconds, the stage's metadata, the blobs read."""
    from vector_sync.core.pipeline.snapshot import snapshot

    with counted_blobs() as taken:
        started = time.perf_counter()
        metadata = snapshot(config, SOURCE)
        seconds = time.perf_counter() - started
    return seconds, metadata, taken


def blob_ids(repo: Path, paths: list[str]) -> set[str]:
    listed = subprocess.run(["git", "-C", str(repo), "ls-tree", "main", "--", *paths],
                            capture_output=True, text=True, check=True).stdout
    return {line.split()[2] for line in listed.splitlines()}


def median(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s (" + ", ".join(
        f"{v:.3f}" for v in values) + ")"


# --- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2,000 files, one run each")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--verbose", action="store_true", help="show the Dagster run logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.repeats = min(args.files, 2_000), 1
    os.environ.pop("DAGSTER_HOME", None)
    with scratch("vector_sync_git_", args.keep) as root:
        return run(args, root)


def run(args: argparse.Namespace, root: Path) -> int:
    from vector_sync.cli.runner import sync_source
    from vector_sync.config import load_config

    print(f"git_commit_diff: {args.files} files, {args.repeats} run(s) per measurement, "
          f"{os.cpu_count()} CPUs, in {root}")
    print(f"code: {code_version()}")
    repo = root / "repo"
    started = time.perf_counter()
    paths = generate_repo(repo, args.files, args.seed)
    config_file = write_config(root)
    config = load_config(config_file)
    print(f"setup: generated the repository with git fast-import in "
          f"{time.perf_counter() - started:.1f} s, not measured")

    started = time.perf_counter()
    def quiet() -> Any:
        return nullcontext() if args.verbose else dagster_log(root / "dagster.log")

    with cheap_setup(), quiet():
        initial = sync_source(config_file, config, SOURCE)
    counts = initial["collections"][COLLECTION]
    print(f"setup: initial sync with a stand-in embedder in {time.perf_counter() - started:.1f}"
          f" s, not measured ({counts['added']} added)")
    if initial["error"] or counts["added"] != args.files:
        print(f"setup failed: {initial}")
        return 1

    changed = touch(repo, paths, args.seed + 1)
    wanted_blobs = blob_ids(repo, changed)
    failures: list[str] = []

    detections = [detect(config) for _ in range(args.repeats)]
    _, listed, to_read, detection = detections[-1]
    if to_read != set(changed):
        failures.append(f"(a) the diff found {sorted(to_read)}, expected {sorted(changed)}")

    snapshots = [snapshot_stage(config) for _ in range(args.repeats)]
    _, metadata, taken = snapshots[-1]
    if set(taken) != wanted_blobs or len(taken) != len(wanted_blobs):
        failures.append(f"(b) read {len(taken)} blobs, expected exactly the "
                        f"{len(wanted_blobs)} changed ones")

    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    imports = import_only(env)
    seconds, report, code = cli_sync(config_file, env)
    synced = report["sources"][SOURCE]["collections"][COLLECTION]
    if code or synced["updated"] != MODIFIED or synced["added"] != ADDED:
        failures.append(f"(c) vector-sync sync exited {code} with {synced}")

    touch(repo, paths, args.seed + 2)
    with quiet():
        inproc, report, result = sync_with_result(config_file, config, SOURCE)
    if report["error"] or report["collections"][COLLECTION]["updated"] != MODIFIED:
        failures.append(f"(d) the in-process sync reported {report}")

    detect_median = statistics.median(s for s, *_ in detections)
    snapshot_median = statistics.median(s for s, *_ in snapshots)
    print()
    print("=" * 78)
    print(f"one commit touching {len(changed)} of {args.files} files ({MODIFIED} modified, "
          f"{ADDED} added); load average {os.getloadavg()[0]:.1f}")
    print("-" * 78)
    print(f"(a) detection (scan + changed_since): {median([s for s, *_ in detections])}")
    print(f"    {listed} files listed; {detection['detection_reason']}")
    print(f"    target < {TARGET_S:.0f} s: {'MEETS' if detect_median < TARGET_S else 'MISSES'}")
    print(f"(b) source_snapshot stage: {median([s for s, *_ in snapshots])}")
    print(f"    read {metadata['read']} documents, {metadata['skipped_unchanged']} skipped; "
          f"blobs taken from git cat-file: {len(taken)} (expected {len(wanted_blobs)})")
    print(f"    target < {TARGET_S:.0f} s: {'MEETS' if snapshot_median < TARGET_S else 'MISSES'}")
    print(f"(c) `vector-sync sync --json` process: {seconds:.3f} s "
          f"(a process that only imports vector_sync.cli and .cli.runner: {imports:.3f} s)")
    print(f"    {', '.join(f'{k} {v}' for k, v in synced.items())}")
    print(f"(d) in-process Dagster run for a second 10-file commit: {inproc:.3f} s, by step:")
    for line in step_table(inproc, step_seconds(result), asset_durations(result)):
        print(line)
    print(f"checks: {'OK' if not failures else 'FAILED'}")
    for failure in failures:
        print(f"  {failure}")
    print("=" * 78)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
