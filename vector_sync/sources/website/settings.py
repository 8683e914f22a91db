"""The keys of a `kind: website` source, and what follows from them alone: the URL prefixes
the crawl may enter and the polite fetcher. Everything in the package reads these; the face
(`WebsiteConfig`) adds what opens and watches the source."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, TypeAdapter, field_validator, model_validator

from vector_sync.core.source import SourceConfig
from vector_sync.sources.website.fetch import Fetcher
from vector_sync.sources.website.pages import default_prefix, fetch_url

_URL = TypeAdapter(HttpUrl)


class WebsiteSettings(SourceConfig):
    """The keys of a website source (`WebsiteConfig`, the face, adds open() and look())."""

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
    def _somewhere_to_start(self) -> WebsiteSettings:
        if not self.start_urls and not self.sitemaps:
            raise ValueError("a website source needs start_urls or sitemaps (or both)")
        return self

    def allowed_prefixes(self) -> list[str]:
        return self.allow or [default_prefix(url) for url in self.start_urls] + [
            default_prefix(fetch_url(url, "/") or url) for url in self.sitemaps]

    def where(self) -> str:
        return "pages of " + ", ".join(self.start_urls + self.sitemaps)

    def fetcher(self) -> Fetcher:
        return Fetcher(self.user_agent, self.rate_limit_per_s, self.timeout_s,
                       self.max_page_bytes, self.max_retry_after_s)
