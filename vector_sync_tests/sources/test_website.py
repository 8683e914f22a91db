"""The website source's parts: URL normalisation, scope, sitemaps, page extraction, the
polite fetcher and the crawl, against the MkDocs-built site of vector_sync_tests/support/doc_site.py
(scan and read only: no model, no Qdrant)."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from vector_sync.core.documents import Document, ReadFailure
from vector_sync.core.source import SourceUnavailable
from vector_sync.sources.website import WebsiteConfig
from vector_sync.sources.website.fetch import Fetcher
from vector_sync.sources.website.pages import (
    Scope,
    html_tree,
    normalize_url,
    page_links,
    parse_page,
    parse_sitemap,
)
from vector_sync_tests.support.doc_site import FOOTER, ROBOTS, DocSite


@pytest.mark.parametrize(("url", "expected"), [
    ("HTTPS://Docs.Example.com:443/guide/index.html?utm_source=x&b=2&a=1#top",
     "https://docs.example.com/guide?a=1&b=2"),
    ("https://docs.example.com/guide/", "https://docs.example.com/guide"),
    ("http://docs.example.com", "http://docs.example.com/"),
    ("http://docs.example.com:8080/a?gclid=1", "http://docs.example.com:8080/a"),
    ("mailto:someone@example.com", None),
    ("javascript:void(0)", None),
    ("http://[bad", None),
])
def test_urls_are_normalized_to_one_doc_id(url, expected):
    assert normalize_url(url) == expected


def test_relative_links_resolve_against_the_page_and_its_base():
    tree = html_tree(b"<html><head><base href='/docs/v2/'><link rel='canonical' "
                     b"href='https://ex.com/docs/v2/intro/'></head><body>"
                     b"<a href='setup/#step-1'>a</a><a href='setup/'>dup</a>"
                     b"<a href='/admin' rel='nofollow'>x</a><a href='mailto:x@y.z'>m</a>"
                     b"</body></html>")
    canonical, links = page_links(tree, "https://ex.com/docs/v2/intro/?utm_medium=mail")
    assert canonical == "https://ex.com/docs/v2/intro"
    assert links == {"https://ex.com/docs/v2/setup": "https://ex.com/docs/v2/setup/"}


def test_scope_keeps_prefixes_drops_excluded_and_files():
    scope = Scope(["https://ex.com/docs/"], ["*/changelog/*"])
    assert "https://ex.com/docs/setup" in scope
    assert "https://ex.com/docs" in scope
    assert "https://ex.com/blog/post" not in scope
    assert "https://ex.com/docs/changelog/v1" not in scope
    assert "https://ex.com/docs/logo.png" not in scope


def test_default_scope_is_the_folder_of_each_start_url():
    config = WebsiteConfig(kind="website", collections=["c"],
                           start_urls=["https://ex.com/docs/guide/intro"],
                           sitemaps=["https://other.org/sitemap.xml"])
    assert config.allowed_prefixes() == ["https://ex.com/docs/guide/", "https://other.org/"]


@pytest.mark.parametrize("settings", [
    {}, {"start_urls": ["ftp://ex.com/"]}, {"start_urls": ["not a url"]},
    {"start_urls": ["https://ex.com/"], "rate_limit_per_s": 0}])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValidationError):
        WebsiteConfig(kind="website", collections=["c"], **settings)


SITEMAP = (b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
           b"<url><loc>https://ex.com/a/</loc><lastmod>2026-01-02</lastmod></url>"
           b"<url><loc>https://ex.com/b</loc></url></urlset>")


def test_sitemaps_plain_gzip_and_index():
    expected = [("https://ex.com/a/", "2026-01-02"), ("https://ex.com/b", None)]
    assert parse_sitemap(SITEMAP, "s") == (expected, [])
    assert parse_sitemap(gzip.compress(SITEMAP), "s") == (expected, [])
    index = (b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap>'
             b"<loc>https://ex.com/s1.xml.gz</loc></sitemap></sitemapindex>")
    assert parse_sitemap(index, "s") == ([], ["https://ex.com/s1.xml.gz"])


def test_sitemap_entities_are_not_expanded_and_junk_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    hostile = (f'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file://{secret}">]>'
               '<urlset><url><loc>https://ex.com/&x;</loc></url></urlset>').encode()
    pages, _ = parse_sitemap(hostile, "s")
    assert "TOP-SECRET" not in str(pages)
    for junk in (b"<html><body>not a sitemap</body></html>", b"\x1f\x8bnot gzip", b"<urlset"):
        with pytest.raises(ValueError):
            parse_sitemap(junk, "s")


# --- against the real site ------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocSite]:
    site = DocSite(tmp_path_factory.mktemp("site"))
    with site.serve():
        site.create()
        site.build()
        yield site


@pytest.fixture(autouse=True)
def _clean_site(site: DocSite) -> None:
    site.rules.clear()
    site.requests.clear()
    site.down = False


def source(tmp_path: Path, site: DocSite, **settings: Any):
    settings.setdefault("start_urls", [site.url])
    return WebsiteConfig(kind="website", collections=["c"], rate_limit_per_s=1000,
                         cache_file=tmp_path / "cache.json", **settings).open("docs", None)


def test_page_fields_are_main_content_with_metadata(site):
    page = site.built / "cooking" / "sourdough-starter" / "index.html"
    fields = parse_page(page.read_bytes(), "https://ex.com/starter",
                        "Tue, 01 Dec 2026 10:00:00 GMT")
    assert fields["title"] == "Sourdough Starter"
    assert fields["breadcrumbs"] == ["Cooking", "Sourdough Starter"]
    assert fields["language"] == "en"
    assert fields["modified_at"] == "2026-12-01T10:00:00+00:00"
    assert "## What a starter needs" in fields["body"]  # headings kept for the chunker
    assert FOOTER not in fields["body"] and "Previous" not in fields["body"]


def test_title_falls_back_to_the_title_tag_without_the_site_name():
    fields = parse_page(b"<html><head><title>Install guide - Acme Docs</title></head><body>"
                        b"<article><p>" + b"Run the installer and follow the steps. " * 20 +
                        b"</p></article></body></html>", "https://ex.com/install")
    assert fields["title"] == "Install guide"
    with pytest.raises(ValueError, match="no main content"):
        parse_page(b"<html><body><nav><a href='/'>Home</a></nav></body></html>", "u")


def test_body_has_no_markdown_escapes_outside_code():
    prose = b"Set refresh_minutes, a_b\\_c and [x] *as is* here. " * 4
    fields = parse_page(b"<html><body><article><h1>Opts</h1><p>" + prose + b"</p>"
                        b"<p># not a heading</p><p>- not a list</p>"
                        b"<p>Use <code>my_var</code> in code.</p>"
                        b"<pre><code>a\\_b = c_d</code></pre></article></body></html>", "u")
    body = fields["body"]
    assert prose.decode().strip() in body  # as the page shows it, backslash included
    assert "\\# not a heading" in body  # escaped still: it is no heading
    assert "- not a list" in body and "`my_var`" in body and "a\\_b = c_d" in body


def test_crawl_is_deterministic_under_max_pages(tmp_path, site):
    first = [e.doc_id for e in source(tmp_path / "a", site, max_pages=5).scan()]
    second = [e.doc_id for e in source(tmp_path / "b", site, max_pages=5).scan()]
    assert len(first) == 5 and first == second and first[0] == site.url


def test_start_url_without_slash_is_one_page_and_scope_is_its_folder(tmp_path, site):
    found = {e.doc_id for e in source(tmp_path, site,
                                      start_urls=[site.url + "travel/jet-lag"]).scan()}
    assert site.url + "travel/jet-lag" in found
    assert found and all(doc_id.startswith(site.url + "travel/") for doc_id in found)
    assert len(found) == 4


def test_depth_zero_reads_only_the_start_page(tmp_path, site):
    assert [e.doc_id for e in source(tmp_path, site, max_depth=0).scan()] == [site.url]


def test_excluded_pages_are_never_fetched(tmp_path, site):
    found = {e.doc_id for e in source(tmp_path, site, exclude=["*/garden/*"]).scan()}
    assert found and not any("/garden/" in doc_id for doc_id in found)
    assert not [path for path, _ in site.requests if path.startswith("/garden/")]


def test_read_refetches_a_page_that_answered_304(tmp_path, site):
    list(source(tmp_path, site).scan())
    site.requests.clear()
    again = source(tmp_path, site)
    entries = list(again.scan())
    assert site.fetched(304) == len(entries) and site.fetched(200) == 0
    page = site.url + "garden/tomatoes"
    [document] = list(again.read([page]))
    assert isinstance(document, Document) and document.fields["title"] == "Growing Tomatoes"
    assert site.requests[("/garden/tomatoes/", 200)] == 1


def test_the_crawl_cache_is_kept_where_earlier_versions_kept_it(tmp_path, site):
    # <state.dir>/website/<source>.json, as JSON: a site crawled before an upgrade is asked
    # with its validators after it
    config = WebsiteConfig(kind="website", collections=["c"], start_urls=[site.url],
                           rate_limit_per_s=1000).resolved("docs", lambda p: p, tmp_path)
    assert config.cache_file == tmp_path / "website" / "docs.json"
    entries = list(config.open("docs", None).scan())
    cached = json.loads(config.cache_file.read_text())
    assert entries and {e.doc_id for e in entries} <= set(cached["pages"])
    site.requests.clear()
    assert len(list(config.open("docs", None).scan())) == len(entries)
    assert site.fetched(304) == len(entries) and site.fetched(200) == 0


def test_failed_page_reads_as_failure_with_its_code(tmp_path, site):
    site.rules["/garden/tomatoes/"] = (502, {})
    crawl = source(tmp_path, site)
    entries = {e.doc_id: e.version for e in crawl.scan()}
    page = site.url + "garden/tomatoes"
    assert entries[page] == "failed:http_502"
    [failure] = list(crawl.read([page]))
    assert isinstance(failure, ReadFailure) and failure.error_code == "http_502"


def test_robots_txt_that_fails_means_the_site_is_unavailable(tmp_path, site):
    site.rules["/robots.txt"] = (500, {})
    with pytest.raises(SourceUnavailable, match="robots.txt"):
        list(source(tmp_path, site).scan())


def test_robots_txt_disallowing_everything_is_said(tmp_path, site):
    (site.built / "robots.txt").write_text("User-agent: *\nDisallow: /\n")
    try:
        with pytest.raises(SourceUnavailable, match="robots.txt disallows every page"):
            list(source(tmp_path, site).scan())
    finally:
        (site.built / "robots.txt").write_text(ROBOTS)


def test_missing_sitemap_means_the_site_is_unavailable(tmp_path, site):
    with pytest.raises(SourceUnavailable, match="sitemap"):
        list(source(tmp_path, site, start_urls=[], sitemaps=[site.url + "nope.xml"]).scan())


def test_429_waits_a_short_retry_after_and_gives_up_on_a_long_one(site):
    with Fetcher("t", 1000, 5, 1000, max_retry_after_s=1.0) as fetcher:
        site.rules["/busy/"] = (429, {"Retry-After": "0"})
        answer = fetcher.get(site.url + "busy/")
        assert answer.error == "rate_limited" and site.requests[("/busy/", 429)] == 4
        site.rules["/busy/"] = (429, {"Retry-After": "3600"})
        answer = fetcher.get(site.url + "busy/")
        assert answer.error == "rate_limited" and "3600" in answer.message
        assert site.requests[("/busy/", 429)] == 5  # asked once: an hour is not waited for


def test_fetch_errors_have_codes(site):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with Fetcher("t", 1000, 5, 2000, 1) as fetcher:
        assert fetcher.get(f"http://127.0.0.1:{closed_port}/").error == "connection_failed"
        assert fetcher.get(site.url + "cooking/sourdough-starter/").error == "too_large"
        site.down = True
        assert fetcher.get(site.url).error == "http_503"
