"""The website source's cheap look, for its watch sensor: has the site changed since the last
crawl, without crawling it?

Three signals, against what the last crawl kept in its cache: each sitemap's digest (a page
added, removed or given a new lastmod changes it), the start URLs (where new pages get
linked), and a rotating sample of `look_sample` known pages asked for with their validators
(a 304 is a few hundred bytes). Anything else that answers differently (a changed validator, a
redirect, a 404) is a change. A page that fails is no evidence either way; when everything
fails, the site is unavailable and the sensor skips.
"""

from __future__ import annotations

from typing import Any

from vector_sync.core.source import ChangeCheck, SourceUnavailable
from vector_sync.sources.website.cache import read_cache
from vector_sync.sources.website.crawl import conditional_headers, sitemap_digest, version_of
from vector_sync.sources.website.pages import normalize_url
from vector_sync.sources.website.settings import WebsiteSettings


def look(name: str, settings: WebsiteSettings, state: dict[str, Any] | None) -> ChangeCheck:
    """Whether source `name` changed since the last crawl; the state kept is where the
    sample rotation is."""
    cache = read_cache(settings.cache_file)
    pages: dict[str, Any] = cache.get("pages", {})
    where = settings.where()
    if not pages:
        return ChangeCheck(True, f"{where}: not crawled yet", {"offset": 0})
    known = sorted(pages)
    offset = (state or {}).get("offset", 0) % len(known)
    sample = (known + known)[offset:offset + min(settings.look_sample, len(known))]
    starts = [doc_id for doc_id in (normalize_url(u) for u in settings.start_urls) if doc_id]
    asked = failed = 0
    changes: list[str] = []
    with settings.fetcher() as fetcher:
        for sitemap in settings.sitemaps:
            asked += 1
            answer = fetcher.get(sitemap)
            if answer.failed:
                failed += 1
            elif answer.status != 200 or sitemap_digest(answer.body) != \
                    cache.get("sitemaps", {}).get(sitemap):
                changes.append(f"sitemap {sitemap}")
        for doc_id in dict.fromkeys(starts + sample):
            entry = pages.get(doc_id)
            if entry is None:  # a start URL that redirects: its target is in the sample
                continue
            asked += 1
            answer = fetcher.get(entry["url"], conditional_headers(entry))
            if answer.failed:
                failed += 1
            elif answer.status != 304 and (answer.status != 200 or version_of(answer, lastmod(
                    entry["version"])) != entry["version"]):
                changes.append(f"{doc_id} (HTTP {answer.status})")
    if not changes and asked and failed == asked:
        raise SourceUnavailable(f"website source {name!r}: none of {asked} URLs answered")
    new_state = {"offset": (offset + len(sample)) % len(known)}
    summary = f"{len(changes)} of {asked} URLs changed: {', '.join(changes[:5])}" + (
        ", ..." if len(changes) > 5 else "") if changes else f"{asked - failed} URLs unchanged"
    return ChangeCheck(bool(changes), f"{where}: {summary}", new_state)

def lastmod(version: str) -> str | None:
    """The sitemap lastmod a version came from (a change of it shows in the sitemap)."""
    return version.removeprefix("lastmod:") if version.startswith("lastmod:") else None
