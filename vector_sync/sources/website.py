"""Website source: the pages of a (documentation) site, crawled politely and incrementally.

scan() crawls (web_crawl.py): conditional GETs make an unchanged page a 304 without a body,
so a no-op sync of a large site transfers almost nothing. read() extracts the main content
of the pages the scan fetched (web_pages.py) and fetches again only a page that answered 304
but must be read anyway (a sync that crashed after the crawl, `--full`, a config change).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, HttpUrl, TypeAdapter, field_validator, model_validator

from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.core.pipeline.state_files import read_json, write_json
from vector_sync.core.source import ChangeCheck, Source, SourceConfig
from vector_sync.sources.web_crawl import Crawler, Page, version_of
from vector_sync.sources.web_fetch import Fetcher
from vector_sync.sources.web_pages import default_prefix, fetch_url, parse_page

log = logging.getLogger(__name__)

_URL = TypeAdapter(HttpUrl)


class WebsiteConfig(SourceConfig):
    """The pages of a website (e.g. a product's public documentation), crawled from start
    URLs and/or sitemaps."""

    kind: Literal["website"]
    start_urls: list[str] = Field([], description="pages the crawl starts from (depth 0)")
    sitemaps: list[str] = Field([], description="sitemap or sitemap index URLs (gzip too); "
                                "their pages are crawled at depth 0")
    allow: list[str] = Field([], description="URL prefixes the crawl may enter; default: the "
                             "folder of each start URL and the site of each sitemap")
    exclude: list[str] = Field([], description="glob patterns of URLs to leave out, e.g. "
                               "'*/changelog/*'")
    max_pages: int = Field(10_000, gt=0, description="at most this many pages; the crawl "
                           "stops there (with a warning) and the rest is not synced")
    max_depth: int = Field(10, ge=0, description="links followed at most this many hops from "
                           "a start URL or sitemap page")
    rate_limit_per_s: float = Field(5.0, gt=0, description="requests per second at most, for "
                                    "the whole crawl (a robots.txt Crawl-delay lowers it)")
    concurrency: int = Field(4, gt=0, le=64, description="requests in flight at once")
    timeout_s: float = Field(30.0, gt=0, description="how long one request may take")
    max_page_bytes: int = Field(5_000_000, gt=0, description="larger pages fail as too_large")
    max_retry_after_s: float = Field(60.0, ge=0, description="a 429 whose Retry-After is "
                                     "longer fails the page as rate_limited instead of waiting")
    user_agent: str = Field("vector-sync (website source)", min_length=1,
                            description="the User-Agent sent, and matched in robots.txt")
    look_sample: int = Field(20, ge=0, description="pages the watch sensor asks about per "
                             "look (conditional GETs, rotating through the site)")
    cache_file: Path | None = Field(None, description="what the last crawl saw (validators, "
                                    "links); default <state.dir>/website/<source>.json")

    @field_validator("start_urls", "sitemaps", "allow")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            _URL.validate_python(url)
        return urls

    @model_validator(mode="after")
    def _somewhere_to_start(self) -> WebsiteConfig:
        if not self.start_urls and not self.sitemaps:
            raise ValueError("a website source needs start_urls or sitemaps (or both)")
        return self

    def allowed_prefixes(self) -> list[str]:
        return self.allow or [default_prefix(url) for url in self.start_urls] + [
            default_prefix(fetch_url(url, "/") or url) for url in self.sitemaps]

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        return WebsiteSource(name, self)

    def open_read_only(self, name: str, fields: Sequence[str] | None) -> Source:
        # the crawl still asks with the cache's validators, but leaves the cache as it was
        return WebsiteSource(name, self, keep_cache=False)

    def look(self, name: str, state: dict[str, Any] | None) -> ChangeCheck:
        from vector_sync.sources.web_watch import look

        return look(name, self, state)

    def where(self) -> str:
        return "pages of " + ", ".join(self.start_urls + self.sitemaps)

    def resolved(self, name: str, absolute: Callable[[Path], Path], state_dir: Path) -> Self:
        cache = absolute(self.cache_file) if self.cache_file else \
            state_dir / "website" / f"{name}.json"
        return self.model_copy(update={"cache_file": cache})

    def fetcher(self) -> Fetcher:
        return Fetcher(self.user_agent, self.rate_limit_per_s, self.timeout_s,
                       self.max_page_bytes, self.max_retry_after_s)

    def cache(self) -> dict[str, Any]:
        return read_json(self.cache_file, {}) if self.cache_file else {}


class WebsiteSource:
    scoped_reads = False  # a page's scope is known only from a crawl

    def __init__(self, name: str, settings: WebsiteConfig, keep_cache: bool = True) -> None:
        self.name = name
        self.settings = settings
        self._keep_cache = keep_cache  # False: a dry run, which writes nothing
        self._pages: dict[str, Page] = {}

    def scan(self) -> Iterator[SourceEntry]:
        with self.settings.fetcher() as fetcher:
            crawl = Crawler(self.name, self.settings, fetcher, self.settings.cache()).run()
        if self.settings.cache_file and self._keep_cache:
            write_json(self.settings.cache_file, crawl.cache)
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
