"""End to end through the CLI against a real documentation site: the example vault built by
MkDocs and served over loopback HTTP with ETags (vector_sync_tests/support/doc_site.py), the real
model, embedded Qdrant and real Dagster runs. Every claim is checked in what Qdrant holds and
in what the site was asked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vector_sync.config import load_config
from vector_sync_tests.support import Project
from vector_sync_tests.support.doc_site import FOOTER, DocSite

NOTHING = {"added": 0, "updated": 0, "deleted": 0, "failed": 0, "chunks_embedded": 0}


class SiteProject(Project):
    """A served MkDocs site plus a config whose source `docs` crawls it into `docs`."""

    def __init__(self, root: Path, site: DocSite, **settings: Any) -> None:
        root.mkdir()
        super().__init__(root)
        self.site = site
        self.config["sources"] = {"docs": {
            "kind": "website", "rate_limit_per_s": 500, "collections": ["docs"],
            **({"start_urls": [site.url]} if "sitemaps" not in settings else {}), **settings}}
        self.config["collections"] = {"docs": {
            "embed": ["title", "body"],
            "payload": ["url", "title", "description", "breadcrumbs", "language",
                        "modified_at"]}}
        self.save()

    def sync(self, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
        self.site.requests.clear()
        code, report = self.cli("sync", capsys=capsys)
        return code, report["sources"]["docs"]

    def url(self, page: str) -> str:
        return self.site.url + page.rstrip("/") if page else self.site.url


def synced(report: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in report["collections"]["docs"].items() if k in NOTHING}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DocSite]:
    site = DocSite(tmp_path / "web")
    with site.serve():
        site.create()
        site.build()
        yield site


@pytest.fixture
def project(tmp_path: Path, site: DocSite) -> SiteProject:
    return SiteProject(tmp_path / "project", site)


def public(site: DocSite) -> list[str]:
    return [p for p in site.pages if not p.startswith("private/")]


def test_crawl_syncs_the_main_content_of_every_public_page(project, site, capsys):
    code, report = project.sync(capsys)
    pages = public(site)
    points = project.points("docs")
    chunks = sum(len(p) for p in points.values())
    assert code == 0 and synced(report) == {**NOTHING, "added": len(pages),
                                            "chunks_embedded": chunks}
    assert set(points) == {project.url(p) for p in pages}
    # robots.txt: the private folder is neither synced nor even asked for
    assert not [path for path, _ in site.requests if path.startswith("/private/")]
    starter = points[project.url("cooking/sourdough-starter/")]
    assert starter[0]["title"] == "Sourdough Starter"
    assert starter[0]["breadcrumbs"] == ["Cooking", "Sourdough Starter"]
    assert starter[0]["language"] == "en" and starter[0]["modified_at"]
    # headings survive extraction: the chunker cut at them and names the section (under the
    # title line, which the page's title heading does not repeat)
    assert any(p["text"].startswith("title: Sourdough Starter\nWhat a starter needs\n\n")
               for p in starter)
    assert all(p["text"].count("Sourdough Starter") == 1 for p in starter)
    texts = [p["text"] for chunks in points.values() for p in chunks]
    # the theme's footer, previous/next buttons and sidebar are not content
    assert not any(FOOTER in t or "Kitchen Notes" in t or "Next »" in t for t in texts)


def test_indexed_text_is_what_a_reader_sees_without_markdown_escapes(project, site, capsys):
    # as served, the HTML says refresh_minutes and *literally*; trafilatura's Markdown
    # escapes them, which a reader of the page never sees; code keeps its backslashes
    site.write("settings.md", "# Settings\n\nSet refresh_minutes to 5, the stars "
               "(\\*literally\\*) and [brackets] stay, `max_pages` too.\n\n"
               "    path = C:\\temp\\_cache\n")
    site.build()
    assert "refresh_minutes" in (site.built / "settings" / "index.html").read_text()
    code, report = project.sync(capsys)
    assert code == 0
    text = project.points("docs")[project.url("settings/")][0]["text"]
    assert "Set refresh_minutes to 5, the stars (*literally*) and [brackets] stay, " \
        "`max_pages` too." in text, text
    assert "C:\\temp\\_cache" in text
    code, hits = project.cli("search", "docs", "refresh minutes", "--limit", "1",
                             capsys=capsys)
    assert hits[0]["text"] == text and "\\_" not in text.replace("C:\\temp\\_cache", "")


def test_unchanged_site_costs_304s_and_nothing_is_read_or_embedded(project, site, capsys):
    project.sync(capsys)
    code, report = project.sync(capsys)
    assert code == 0 and synced(report) == NOTHING
    assert site.fetched(200) == 0 and site.fetched(304) == len(public(site))


def test_edited_page_is_read_and_embedded_alone(project, site, capsys):
    project.sync(capsys)
    site.write("cooking/sourdough-starter.md", (site.docs / "cooking/sourdough-starter.md")
               .read_text() + "\nA starter named Clint Yeastwood lives in our fridge.\n")
    site.build()
    code, report = project.sync(capsys)
    assert code == 0 and synced(report)["updated"] == 1
    assert synced(report)["added"] == synced(report)["deleted"] == 0
    assert 1 <= synced(report)["chunks_embedded"] <= 2  # the last section, not the page
    assert report["collections"]["docs"]["chunks_reused"] > 0
    starter = project.points("docs")[project.url("cooking/sourdough-starter/")]
    assert "Clint Yeastwood" in starter[-1]["text"]


def test_page_moved_with_301_leaves_old_url_and_reuses_vectors(project, site, capsys):
    project.sync(capsys)
    text = (site.docs / "cooking/knife-skills.md").read_text()
    site.remove("cooking/knife-skills.md")
    site.write("kitchen/knives.md", text)
    # the home page still links the old address, which now redirects
    site.write("index.md", (site.docs / "index.md").read_text() +
               "\nSee [knife skills](cooking/knife-skills/).\n")
    site.build()
    site.rules["/cooking/knife-skills/"] = (301, {"Location": "/kitchen/knives/"})
    code, report = project.sync(capsys)
    counted = synced(report)
    assert code == 0 and (counted["added"], counted["deleted"]) == (1, 1)
    assert site.requests[("/cooking/knife-skills/", 301)] == 1
    points = project.points("docs")
    assert project.url("cooking/knife-skills/") not in points
    assert points[project.url("kitchen/knives/")][0]["title"] == "Knife Skills"
    # the moved page's text is unchanged: its vectors were read back, not embedded; only
    # the home page's new closing line may need one
    assert counted["chunks_embedded"] <= 1
    assert report["collections"]["docs"]["chunks_reused"] >= len(
        points[project.url("kitchen/knives/")])


def test_404_and_410_remove_pages(project, site, capsys):
    project.sync(capsys)
    site.rules["/garden/tomatoes/"] = (404, {})
    site.rules["/garden/raised-beds/"] = (410, {})
    code, report = project.sync(capsys)
    assert code == 0 and synced(report) == {**NOTHING, "deleted": 2}
    points = project.points("docs")
    assert project.url("garden/tomatoes/") not in points
    assert project.url("garden/raised-beds/") not in points
    assert len(points) == len(public(site)) - 2


def test_failing_page_keeps_its_points_and_recovers(project, site, capsys):
    project.sync(capsys)
    page = project.url("travel/jet-lag/")
    before = project.points("docs")[page]
    site.rules["/travel/jet-lag/"] = (500, {})
    code, report = project.sync(capsys)
    assert synced(report) == {**NOTHING, "failed": 1}
    assert project.points("docs")[page] == before  # nothing deleted because it failed
    code, status = project.cli("status", capsys=capsys)
    assert "http_500" in str(status)

    del site.rules["/travel/jet-lag/"]
    code, report = project.sync(capsys)
    assert code == 0 and synced(report)["failed"] == 0 and synced(report)["chunks_embedded"] == 0
    code, verified = project.cli("verify", capsys=capsys)
    assert code == 0, verified


def test_site_down_leaves_qdrant_untouched_and_exits_1(project, site, capsys):
    project.sync(capsys)
    before = project.points("docs")
    site.down = True
    code, report = project.sync(capsys)
    assert code == 1 and "503" in report["error"]
    assert project.points("docs") == before
    site.down = False
    code, report = project.sync(capsys)
    assert code == 0 and synced(report) == NOTHING


def test_sitemap_only_crawl_reads_gzip_sitemap(tmp_path, site, capsys):
    project = SiteProject(tmp_path / "by-sitemap", site,
                          sitemaps=[site.url + "sitemap.xml.gz"], max_depth=0)
    code, report = project.sync(capsys)
    assert code == 0 and synced(report)["added"] == len(public(site))
    assert set(project.points("docs")) == {project.url(p) for p in public(site)}


def test_watch_look_sees_an_edit_and_nothing_else(project, site, capsys):
    project.config["sources"]["docs"]["look_sample"] = 100
    project.save()
    project.sync(capsys)
    source = load_config(project.config_file).sources["docs"]
    check = source.look("docs", None)
    assert not check.changed, check.summary
    site.write("travel/packing-list.md", (site.docs / "travel/packing-list.md").read_text()
               + "\nPack a spare charger.\n")
    site.build()
    check = source.look("docs", check.new_state)
    assert check.changed and "packing-list" in check.summary
