"""The website source on a local documentation site of `--pages` pages (default 2,000): the
initial crawl and sync, a no-op re-sync, one edited page, and the crawl alone, each next to a
baseline measured in the same run.

The site is real HTML: Markdown pages written from benchmarks/_vault.py's word list, built by
MkDocs (readthedocs theme) and served over loopback HTTP by vector_sync_tests/support/doc_site.py
(ETag, Last-Modified, 304s), in this process's threads. Home → 20 section pages → the pages
(depth 2), as documentation sites are organised.

  raw      the chunk texts Qdrant holds after the initial sync, embedded in-process by the
           same Embedder the sync uses, shortest first as the embed stage does (model load
           excluded): the embedding ceiling
  initial  whole process `vector-sync sync`: pages/s and chunks/s, against raw's chunks/s
  noop     whole process, median of 3: every page a 304, nothing read; against the crawl
           alone (warm) and `vector-sync --help` (start-up)
  edit     one page edited: chunks embedded and whole-process seconds
  crawl    in-process scan(): cold (no cache: every page a 200 with its body) and warm
           (conditional GETs: every page a 304), pages/s

Run: ``.venv/bin/python benchmarks/website_crawl.py [--pages N]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from _measure import measure, repeat
from _vault import WORDS, scratch, sentence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vector_sync.config import load_config  # noqa: E402
from vector_sync.core.pipeline.embed import embed_by_length  # noqa: E402
from vector_sync.core.store import open_store  # noqa: E402
from vector_sync.core.text.embedder import Embedder  # noqa: E402
from vector_sync_tests.support.doc_site import DocSite  # noqa: E402

SECTIONS = 20
CLI = str(Path(sys.executable).with_name("vector-sync"))


def write_site(site: DocSite, pages: int, rng: random.Random) -> list[str]:
    """Markdown sources: a home page, section pages linking their pages, the pages."""
    paths = []
    per_section = -(-pages // SECTIONS)
    for s in range(SECTIONS):
        section = f"section-{s:02d}"
        links = []
        for p in range(min(per_section, pages - s * per_section)):
            title = " ".join(w.capitalize() for w in rng.choices(WORDS, k=3)) + f" {s}.{p}"
            body = [f"# {title}", ""]
            for part in range(rng.randint(2, 5)):
                body += [f"## Part {part}", "", " ".join(
                    " ".join(sentence(rng)) + "." for _ in range(rng.randint(4, 12))), ""]
            site.write(f"{section}/page-{p:04d}.md", "\n".join(body))
            links.append(f"- [{title}](page-{p:04d}.md)")
            paths.append(f"{section}/page-{p:04d}.md")
        site.write(f"{section}/index.md", f"# Section {s}\n\n" + "\n".join(links) + "\n")
    site.write("index.md", "# Handbook\n\n" + "\n".join(
        f"- [Section {s}](section-{s:02d}/index.md)" for s in range(SECTIONS)) + "\n")
    return paths


def build(site: DocSite) -> None:
    """MkDocs with a short nav (the sections): a full nav of 2,000 links on every page would
    make the build quadratic and every page 200 KB of sidebar."""
    site.build(nav=[{"Home": "index.md"}] + [{f"Section {s}": f"section-{s:02d}/index.md"}
                                             for s in range(SECTIONS)])


def sync(config_file: Path) -> tuple[float, dict[str, Any]]:
    run = measure([CLI, "sync", "--config", str(config_file), "--json"])
    return run.seconds, run.json()["sources"]["docs"]["collections"]["docs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(15)
    with scratch("website-bench-") as root:
        site = DocSite(root / "site")
        with site.serve():
            started = time.perf_counter()
            paths = write_site(site, args.pages, rng)
            build(site)
            print(f"built {len(paths)} pages with MkDocs in {time.perf_counter() - started:.0f} s"
                  " (not measured)")
            config_file = root / "vector_sync.yaml"
            config_file.write_text(yaml.safe_dump({
                "state": {"dir": "state"},
                "sources": {"docs": {"kind": "website", "start_urls": [site.url],
                                     "rate_limit_per_s": 1000, "concurrency": 4,
                                     "max_pages": args.pages + 100, "collections": ["docs"]}},
                "collections": {"docs": {"embed": ["title", "body"],
                                         "payload": ["url", "breadcrumbs"]}}}))
            rows = measure_all(site, config_file, paths)
    print("\n| figure | value | baseline (same run) |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def measure_all(site: DocSite, config_file: Path, paths: list[str]) -> list[tuple[str, ...]]:
    rows = []
    site.requests.clear()
    seconds, counts = sync(config_file)
    pages = counts["added"]
    chunks = counts["chunks_embedded"]
    config = load_config(config_file)
    with open_store(config.qdrant, config.state) as store:
        texts = [p.payload["text"] for p in store.scroll("docs", None)]
    embedder = Embedder(config.embedding_for("docs"))
    embedder.embed(texts[:32])  # load the model outside the timing
    started = time.perf_counter()
    embed_by_length(embedder.embed, texts)  # as the embed stage hands them over
    raw = len(texts) / (time.perf_counter() - started)
    rows.append(("raw embedding of the same chunks", f"{raw:.1f} chunks/s", "-"))
    rows.append(("initial sync (whole process)",
                 f"{seconds:.1f} s: {pages} pages, {chunks} chunks; {pages / seconds:.1f} "
                 f"pages/s, {chunks / seconds:.1f} chunks/s",
                 f"raw {raw:.1f} chunks/s (ratio {chunks / seconds / raw:.2f})"))

    crawl_settings = config.sources["docs"].model_copy(update={"cache_file": None})
    started = time.perf_counter()
    cold = len(list(crawl_settings.open("docs", None).scan()))
    cold_s = time.perf_counter() - started
    warm_source = config.sources["docs"].open("docs", None)
    warm_runs = []
    for _ in range(3):
        started = time.perf_counter()
        warm = len(list(warm_source.scan()))
        warm_runs.append(time.perf_counter() - started)
    warm_s = statistics.median(warm_runs)
    rows.append(("crawl alone, in-process (scan)",
                 f"warm: {warm / warm_s:.0f} pages/s (every page a 304)",
                 f"cold: {cold / cold_s:.0f} pages/s (every page a 200 with its body)"))

    site.requests.clear()
    noop = repeat([CLI, "sync", "--config", str(config_file), "--json"], 3)
    noop_s = statistics.median(run.seconds for run in noop)
    not_modified = site.fetched(304) // 3
    bodies = site.fetched(200) // 3
    assert all(run.json()["sources"]["docs"]["collections"]["docs"]["updated"] == 0
               for run in noop)
    help_s = statistics.median(run.seconds for run in repeat([CLI, "--help"], 3))
    rows.append(("no-op re-sync (whole process, median of 3)",
                 f"{noop_s:.2f} s: {not_modified} pages answered 304, {bodies} bodies, "
                 f"peak {max(run.peak_mib for run in noop):.0f} MiB",
                 f"crawl alone {warm_s:.2f} s; `vector-sync --help` {help_s:.2f} s"))

    page = site.docs / paths[len(paths) // 2]
    page.write_text(page.read_text() + "\nOne more sentence about the edited page.\n")
    build(site)
    seconds, counts = sync(config_file)
    rows.append(("one page edited (whole process)",
                 f"{seconds:.2f} s: {counts['updated']} updated, "
                 f"{counts['chunks_embedded']} chunk(s) embedded, {counts['chunks_reused']} "
                 "reused", f"no-op {noop_s:.2f} s"))
    return rows


if __name__ == "__main__":
    main()
