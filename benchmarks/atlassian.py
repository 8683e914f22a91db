"""The Atlassian sources against their loopback stand-ins (vector_sync_tests/support/: NOT the
real services, which cannot be reached from here; the stand-ins answer in this process's
threads, so their own cost is in the figures): the initial sync and a no-op re-sync of
`--pages` Confluence pages and `--issues` Jira issues (default 1,000 each), each next to a
baseline measured in the same run.

The pages are the repository's own prose (vector_sync_tests/support/prose.py: README, docs/
and the example vault split by heading, about 300 sections) repeated under distinct titles
until there are enough, in two spaces, each file's later sections children of its first.
The issues are the same prose, one section each as summary and description (ADF), in three
projects, with 0 to 2 comments each (the opening paragraphs of other sections).

  raw      the chunk texts Qdrant holds after the initial sync, embedded in-process by the
           same Embedder the sync uses, shortest first as the embed stage does (model load
           excluded): the embedding ceiling
  initial  whole process `vector-sync sync`: pages/s and chunks/s, against raw's chunks/s
  noop     whole process, median of 3: one listing, no body read, nothing embedded; against
           the listing alone (in-process scan) and `vector-sync --help` (start-up)

Run: ``.venv/bin/python benchmarks/atlassian.py [--pages N] [--issues N] [--only jira]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from _measure import measure, repeat
from _vault import scratch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vector_sync.config import load_config  # noqa: E402
from vector_sync.core.pipeline.embed import embed_by_length  # noqa: E402
from vector_sync.core.store import open_store  # noqa: E402
from vector_sync.core.text.embedder import Embedder  # noqa: E402
from vector_sync_tests.support import prose  # noqa: E402
from vector_sync_tests.support.confluence_standin import ConfluenceStandIn  # noqa: E402
from vector_sync_tests.support.jira_standin import JiraStandIn  # noqa: E402

CLI = str(Path(sys.executable).with_name("vector-sync"))
Row = tuple[str, str, str]


def seed_pages(wiki: ConfluenceStandIn, count: int) -> None:
    """`count` pages of the repository's prose; the n-th round of it gets "(n)" titles."""
    pieces = prose.pieces()
    wiki.spaces.update({"DOCS": "Documentation", "NOTES": "Team notes"})
    first: dict[tuple[int, str], str] = {}
    for n in range(count):
        piece, round_ = pieces[n % len(pieces)], n // len(pieces)
        space = "NOTES" if piece.source.startswith("examples/") else "DOCS"
        title = piece.title if round_ == 0 else f"{piece.title} ({round_ + 1})"
        parent = first.get((round_, piece.source))
        page = wiki.add(space, title, prose.storage_xhtml(piece.markdown), parent=parent,
                        labels=[piece.source.split("/")[0].lower()])
        first.setdefault((round_, piece.source), page.id)


def write_config(root: Path, source: dict[str, Any], name: str) -> Path:
    config_file = root / "vector_sync.yaml"
    config_file.write_text(yaml.safe_dump({
        "state": {"dir": "state"}, "sources": {name: {**source, "collections": [name]}},
        "collections": {name: {"embed": ["title", "body"], "payload": ["title", "url"]}}}))
    return config_file


def sync_counts(config_file: Path, name: str) -> tuple[float, float, dict[str, int]]:
    run = measure([CLI, "sync", "--config", str(config_file), "--json"])
    return run.seconds, run.peak_mib, run.json()["sources"][name]["collections"][name]


def raw_embedding(config_file: Path, collection: str) -> float:
    """Chunks per second of the model alone on the chunk texts Qdrant holds."""
    config = load_config(config_file)
    with open_store(config.qdrant, config.state) as store:
        texts = [p.payload["text"] for p in store.scroll(collection, None)]
    embedder = Embedder(config.embedding_for(collection))
    embedder.embed(texts[:32])  # load the model outside the timing
    started = time.perf_counter()
    embed_by_length(embedder.embed, texts)
    return len(texts) / (time.perf_counter() - started)


def measure_source(config_file: Path, name: str, what: str, requests: list[Any],
                   reads_body: Callable[[Any], bool]) -> list[Row]:
    """The initial sync, the raw baseline, the no-op, the listing alone, and the requests one
    no-op makes (`requests`: the stand-in's log; `reads_body`: whether a request read one)."""
    seconds, peak_mib, counts = sync_counts(config_file, name)
    items, chunks = counts["added"], counts["chunks_embedded"]
    raw = raw_embedding(config_file, name)
    rows: list[Row] = [
        (f"{what}: raw embedding of the same chunks", f"{raw:.1f} chunks/s", "-"),
        (f"{what}: initial sync (whole process)",
         f"{seconds:.1f} s: {items} {what}, {chunks} chunks; {items / seconds:.1f} {what}/s, "
         f"{chunks / seconds:.1f} chunks/s; peak {peak_mib:.0f} MiB",
         f"raw {raw:.1f} chunks/s = {items / (chunks / raw):.1f} {what}/s "
         f"(ratio {chunks / seconds / raw:.2f})")]
    noop = repeat([CLI, "sync", "--config", str(config_file), "--json"], 3)
    assert all(run.json()["sources"][name]["collections"][name]["unchanged"] == items
               for run in noop)
    noop_s = statistics.median(run.seconds for run in noop)
    source = load_config(config_file).sources[name].open(name, None)
    started = time.perf_counter()
    assert len(list(source.scan())) == items
    listing_s = time.perf_counter() - started
    help_s = statistics.median(run.seconds for run in repeat([CLI, "--help"], 3))
    rows.append((f"{what}: no-op re-sync of {items} (whole process, median of 3)",
                 f"{noop_s:.2f} s, peak {max(run.peak_mib for run in noop):.0f} MiB",
                 f"listing alone {listing_s:.2f} s; `vector-sync --help` {help_s:.2f} s"))
    requests.clear()
    measure([CLI, "sync", "--config", str(config_file), "--json"])
    bodies = sum(map(reads_body, requests))
    rows.append((f"{what}: requests of one no-op sync",
                 f"{len(requests)} ({bodies} reading bodies)",
                 f"{-(-items // 100)} listing pages of 100"))
    return rows


def confluence(args: argparse.Namespace) -> list[Row]:
    pages = args.pages
    with scratch("confluence-bench-") as root, ConfluenceStandIn() as wiki:
        seed_pages(wiki, pages)
        os.environ["ATLASSIAN_TOKEN"] = wiki.token
        config_file = write_config(root, {
            "kind": "confluence", "url": wiki.url, "spaces": ["DOCS", "NOTES"],
            "username": wiki.username, "token": "${ATLASSIAN_TOKEN}"}, "wiki")
        return measure_source(config_file, "wiki", "pages", wiki.requests,
                              lambda r: "body" in r.query.get("expand", ""))


def jira(args: argparse.Namespace) -> list[Row]:
    issues = args.issues
    with scratch("jira-bench-") as root, JiraStandIn() as site:
        site.seed(issues)
        os.environ["ATLASSIAN_TOKEN"] = site.token
        config_file = write_config(root, {
            "kind": "jira", "url": site.url, "jql": "project in (ENG, OPS, DOCS)",
            "username": site.username, "token": "${ATLASSIAN_TOKEN}"}, "tickets")
        config = yaml.safe_load(config_file.read_text())
        config["collections"]["tickets"] = {"embed": ["summary", "description", "comments"],
                                            "payload": ["key", "status", "url", "updated_at"]}
        config_file.write_text(yaml.safe_dump(config))
        return measure_source(config_file, "tickets", "issues", site.requests,
                              lambda r: r.query.get("fields") != "updated")


# a part takes the parsed arguments and returns its rows (another kind adds its own here)
PARTS = {"confluence": confluence, "jira": jira}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000, help="Confluence pages")
    parser.add_argument("--issues", type=int, default=1000, help="Jira issues")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts: {', '.join(PARTS)}")
    args = parser.parse_args()
    rows: list[Row] = []
    for part in args.only.split(","):
        rows += PARTS[part](args)
    print("\n| figure | value | baseline (same run) |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
