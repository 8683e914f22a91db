"""The `website` source kind: the pages of a (documentation) site, crawled politely and
incrementally.

scan() crawls: conditional GETs make an unchanged page a 304 without a body, so a no-op sync
of a large site transfers almost nothing. read() extracts the main content of the pages the
scan fetched and fetches again only a page that answered 304 but must be read anyway (a sync
that crashed after the crawl, `--full`, a config change).

- settings.py: the keys (`WebsiteSettings`), the crawl's scope and its fetcher.
- crawl.py: the crawl, breadth first, and each page's version hint.
- cache.py: the crawl cache file (what the last crawl saw, for conditional GETs).
- fetch.py: polite HTTP (rate limit, robots.txt, Retry-After, error codes).
- pages.py: URLs, sitemaps, links and a page's main content.
- watch.py: the watch sensor's cheap look (sitemaps, start URLs, a rotating sample).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.core.source import ChangeCheck, Source
from vector_sync.sources.website.cache import read_cache, write_cache
from vector_sync.sources.website.crawl import Crawler, Page, version_of
from vector_sync.sources.website.pages import parse_page
from vector_sync.sources.website.settings import WebsiteSettings
from vector_sync.sources.website.watch import look

log = logging.getLogger(__name__)


class WebsiteConfig(WebsiteSettings):
    """The pages of a website (e.g. a product's public documentation), crawled from start
    URLs and/or sitemaps."""

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        return WebsiteSource(name, self)

    def open_read_only(self, name: str, fields: Sequence[str] | None) -> Source:
        # the crawl still asks with the cache's validators, but leaves the cache as it was
        return WebsiteSource(name, self, keep_cache=False)

    def look(self, name: str, state: dict[str, Any] | None) -> ChangeCheck:
        return look(name, self, state)

    def resolved(self, name: str, absolute: Callable[[Path], Path], state_dir: Path) -> Self:
        cache = absolute(self.cache_file) if self.cache_file else \
            state_dir / "website" / f"{name}.json"
        return self.model_copy(update={"cache_file": cache})


class WebsiteSource:
    scoped_reads = False  # a page's scope is known only from a crawl

    def __init__(self, name: str, settings: WebsiteConfig, keep_cache: bool = True) -> None:
        self.name = name
        self.settings = settings
        self._keep_cache = keep_cache  # False: a dry run, which writes nothing
        self._pages: dict[str, Page] = {}

    def scan(self) -> Iterator[SourceEntry]:
        with self.settings.fetcher() as fetcher:
            crawl = Crawler(self.name, self.settings, fetcher,
                            read_cache(self.settings.cache_file)).run()
        if self.settings.cache_file and self._keep_cache:
            write_cache(self.settings.cache_file, crawl.cache)
        self._pages = crawl.pages
        log.info("%s: crawled %d pages: %s", self.name, len(crawl.pages),
                 ", ".join(f"{count} {kind}" for kind, count in sorted(crawl.counts.items())))
        for page in crawl.pages.values():
            yield SourceEntry(page.doc_id, page.version)

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        refetch: list[str] = []
        for doc_id in doc_ids:
            page = self._pages.get(doc_id)
            if page is None or (page.body is None and page.error is None):
                refetch.append(doc_id)
            else:
                yield self._document(page)
        if not refetch:
            return
        with self.settings.fetcher() as fetcher:
            for doc_id in refetch:
                # the engine scans this source before reading (scoped_reads is False), so
                # a page is unknown only to a caller that did not: its id is its URL
                scanned = self._pages.get(doc_id)
                answer = fetcher.get(scanned.url if scanned else doc_id)
                version = scanned.version if scanned else version_of(answer, None)
                if answer.failed or answer.status != 200:
                    if answer.status in (404, 410) or 300 <= answer.status < 400:
                        continue  # gone since the scan: the next sync removes it
                    yield ReadFailure(doc_id, version, answer.error or f"http_{answer.status}",
                                      answer.message or f"the server answered {answer.status}")
                    continue
                yield self._document(Page(doc_id, answer.url, version, answer.body,
                                          last_modified=answer.header("last-modified")))

    def _document(self, page: Page) -> Document | ReadFailure:
        if page.error is not None:
            return ReadFailure(page.doc_id, page.version, page.error, page.message)
        assert page.body is not None
        try:
            fields = parse_page(page.body, page.doc_id, page.last_modified)
        except ValueError as error:
            return ReadFailure(page.doc_id, page.version, "no_content", str(error))
        return Document(page.doc_id, page.version, fields)
