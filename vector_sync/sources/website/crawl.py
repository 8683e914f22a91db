"""The website source's crawl: which pages the site has now, each with a version hint.

Breadth first from the sitemaps' pages and the start URLs (depth 0), one depth level at a
time, each level fetched by `concurrency` threads and taken in sorted order, so the same site
gives the same pages whatever answers first (and `max_pages` cuts at the same place).

What the last crawl saw is kept in a cache file (cache.py): each page's URL, validators, version and
links. A page is asked for with `If-None-Match`/`If-Modified-Since`, so an unchanged one
costs a 304 and no body, and its links come from the cache. What answers mean:
- 200: a page (HTML only); its `<link rel=canonical>`, when in scope, is its doc id.
- 304: unchanged since the last crawl: the cached version and links.
- a redirect: the page now lives at the target, which is crawled at the same depth (a 301
  to a known page moves the document: the old id leaves, the new one arrives).
- 404, 410 and other 4xx: no page (it leaves Qdrant); 401/403 of a known page: failed.
- 5xx, 429 after Retry-After, timeouts, TLS and connection errors: the page is failed (kept
  in Qdrant as it was) and its cached links are still followed. When no page answers, or a
  start URL or sitemap fails, the site is unavailable and nothing is concluded.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from vector_sync.core.source import SourceUnavailable
from vector_sync.sources.website.fetch import Fetched, Fetcher
from vector_sync.sources.website.pages import (
    Scope,
    fetch_url,
    html_tree,
    normalize_url,
    page_links,
    parse_sitemap,
)
from vector_sync.sources.website.settings import WebsiteSettings

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
MAX_SITEMAP_NESTING = 3
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class Page:
    """A page as the crawl found it. `body` is set when it answered 200 (read() parses it);
    `error` when it failed."""

    doc_id: str
    url: str
    version: str
    body: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    message: str = ""


@dataclass
class Crawl:
    """What one crawl saw, and the cache the next crawl starts from."""

    pages: dict[str, Page] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)


def sitemap_digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def version_of(answer: Fetched, lastmod: str | None) -> str:
    """The page's version hint: its validator, else the sitemap's lastmod, else a hash."""
    if answer.header("etag"):
        return f"etag:{answer.header('etag')}"
    if answer.header("last-modified"):
        return f"modified:{answer.header('last-modified')}"
    if lastmod:
        return f"lastmod:{lastmod}"
    return "sha:" + hashlib.blake2b(answer.body, digest_size=16).hexdigest()


def conditional_headers(entry: dict[str, Any] | None) -> dict[str, str]:
    headers = {}
    if entry and entry.get("etag"):
        headers["If-None-Match"] = entry["etag"]
    if entry and entry.get("last_modified"):
        headers["If-Modified-Since"] = entry["last_modified"]
    return headers


class Crawler:
    """One crawl of a site with the source's settings, from the last crawl's cache."""

    def __init__(self, name: str, settings: WebsiteSettings, fetcher: Fetcher,
                 cache: dict[str, Any]) -> None:
        self.name = name
        self.settings = settings
        self.fetcher = fetcher
        self.known: dict[str, Any] = cache.get("pages", {})
        self.scope = Scope(settings.allowed_prefixes(), settings.exclude)
        self.result = Crawl()
        self.lastmods: dict[str, str | None] = {}  # from the sitemaps

    def unavailable(self, problem: str) -> SourceUnavailable:
        return SourceUnavailable(f"website source {self.name!r}: {problem}")

    def run(self) -> Crawl:
        level: dict[str, str] = {}  # doc id -> URL to fetch, at the current depth
        sitemaps: dict[str, str] = {}
        for sitemap in self.settings.sitemaps:
            self._read_sitemap(sitemap, 0, level, sitemaps)
        starts = set()
        for url in self.settings.start_urls:
            doc_id = normalize_url(url)
            if doc_id:
                starts.add(doc_id)
                level.setdefault(doc_id, fetch_url(url) or url)
        seen = set(level)
        links_of: dict[str, dict[str, str]] = {}

        def follow(links: dict[str, str], into: dict[str, str]) -> None:
            for target, url in links.items():
                if target not in seen and target in self.scope:
                    seen.add(target)
                    into[target] = url

        with ThreadPoolExecutor(self.settings.concurrency) as pool:
            for depth in range(self.settings.max_depth + 1):
                following: dict[str, str] = {}
                batch = level
                while batch:  # the level, then the targets of its redirects
                    todo = self._within_max_pages(sorted(batch.items()), depth)
                    batch = {}
                    if not todo:
                        break
                    answers = pool.map(self._fetch, *zip(*todo, strict=True))
                    for (doc_id, _), (kind, page, links) in zip(todo, answers, strict=True):
                        self.result.counts[kind] += 1
                        if kind == "failed" and doc_id in starts and not links:
                            raise self.unavailable(f"start URL {page.url if page else doc_id} "
                                                   f"failed: {page.message if page else ''}")
                        if kind == "moved":
                            follow(links, batch)
                        elif page is not None and page.doc_id not in self.result.pages:
                            seen.add(page.doc_id)
                            self.result.pages[page.doc_id] = page
                            links_of[page.doc_id] = links
                            follow(links, following)
                level = following
                if not level or depth == self.settings.max_depth:
                    break
        counts = self.result.counts
        if counts and counts["failed"] + counts["robots"] == counts.total():
            first = next(iter(self.result.pages.values()), None)
            agent = self.fetcher.user_agent
            raise self.unavailable(f"no page answered: {first.message}" if first else
                                   f"robots.txt disallows every page for {agent!r}")
        self.result.cache = {"sitemaps": sitemaps, "pages": {
            doc_id: self._cache_entry(page, links_of[doc_id])
            for doc_id, page in self.result.pages.items()
            if page.error is None or doc_id in self.known}}
        return self.result

    def _within_max_pages(self, todo: list[tuple[str, str]], depth: int
                          ) -> list[tuple[str, str]]:
        room = max(0, self.settings.max_pages - len(self.result.pages))
        if len(todo) > room:
            log.warning("%s: max_pages (%d) reached at depth %d: %d more linked pages are not "
                        "synced", self.name, self.settings.max_pages, depth, len(todo) - room)
        return todo[:room]

    def _cache_entry(self, page: Page, links: dict[str, str]) -> dict[str, Any]:
        if page.error is not None:  # failed now: what the last good crawl saw stays
            return dict(self.known[page.doc_id])
        return {"url": page.url, "version": page.version, "etag": page.etag,
                "last_modified": page.last_modified, "links": links}

    def _read_sitemap(self, url: str, nesting: int, level: dict[str, str],
                      digests: dict[str, str]) -> None:
        answer = self.fetcher.get(url)
        if answer.status != 200 or answer.failed:
            raise self.unavailable(f"sitemap {url}: " + (
                answer.message or f"the server answered {answer.status}"))
        digests[url] = sitemap_digest(answer.body)
        try:
            found, nested = parse_sitemap(answer.body, url)
        except ValueError as error:
            raise self.unavailable(str(error)) from None
        for loc, lastmod in found:
            doc_id = normalize_url(loc)
            if doc_id and doc_id in self.scope:
                level.setdefault(doc_id, fetch_url(loc) or loc)
                self.lastmods[doc_id] = lastmod
        for inner in nested if nesting < MAX_SITEMAP_NESTING else ():
            self._read_sitemap(inner, nesting + 1, level, digests)

    def _fetch(self, doc_id: str, url: str) -> tuple[str, Page | None, dict[str, str]]:
        """("page" | "unchanged" | "failed" | "moved" | "gone" | "robots" | "skipped", the
        page or None, its links, or a redirect's target)."""
        known = self.known.get(doc_id)
        for _ in range(MAX_REDIRECTS + 1):
            rules = self.fetcher.robots(url)
            if isinstance(rules, Fetched):
                raise self.unavailable(f"robots.txt of {url} cannot be read ({rules.message}),"
                                       " which means nothing may be crawled")
            if not rules.can_fetch(self.fetcher.user_agent, url):
                return "robots", None, {}
            same = known is not None and known.get("url") == url
            answer = self.fetcher.get(url, conditional_headers(known) if same else None)
            if answer.status in (301, 302, 303, 307, 308) and answer.header("location"):
                target, address = (normalize_url(answer.header("location") or "", url),
                                   fetch_url(answer.header("location") or "", url))
                if not target or not address:
                    return "gone", None, {}
                if target != doc_id:
                    return "moved", None, {target: address}
                url = address  # the same page at another address (a trailing slash)
                continue
            return self._answer(doc_id, url, answer, known, self.lastmods.get(doc_id))
        return "gone", None, {}

    def _answer(self, doc_id: str, url: str, answer: Fetched, known: dict[str, Any] | None,
                lastmod: str | None) -> tuple[str, Page | None, dict[str, str]]:
        cached_links: dict[str, str] = (known or {}).get("links", {})
        if answer.status == 304 and known:
            return "unchanged", Page(doc_id, url, known["version"], etag=known.get("etag"),
                                     last_modified=known.get("last_modified")), cached_links
        if answer.failed or (answer.status in (401, 403) and known):
            code = answer.error or f"http_{answer.status}"
            message = answer.message or f"the server answered {answer.status}"
            return "failed", Page(doc_id, url, f"failed:{code}", error=code,
                                  message=message), cached_links
        if answer.status != 200:
            return "gone", None, {}
        content_type = (answer.header("content-type") or "text/html").split(";")[0].strip()
        if content_type.lower() not in HTML_TYPES:
            return "skipped", None, {}
        try:
            canonical, links = page_links(html_tree(answer.body), url)
        except ValueError as error:
            return "failed", Page(doc_id, url, "failed:not_html", error="not_html",
                                  message=str(error)), cached_links
        if canonical and canonical != doc_id and canonical in self.scope:
            doc_id = canonical
        return "page", Page(doc_id, url, version_of(answer, lastmod), answer.body,
                            answer.header("etag"), answer.header("last-modified")), links
