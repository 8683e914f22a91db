"""The confluence source's parts against a stand-in for Confluence Cloud (NOT the real
service: vector_sync_tests/support/confluence_standin.py, seeded with the repository's own
prose): the listing and its paging, version hints across edits and moves, what vanishes,
reads, storage format as text, errors, rate limits, secrets and the watch's look (scan,
read and look only: no model, no Qdrant)."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from vector_sync.core.documents import Document, ReadFailure
from vector_sync.core.source import SourceUnavailable
from vector_sync.sources.atlassian.client import AtlassianClient
from vector_sync.sources.confluence import ConfluenceConfig, ConfluenceSource
from vector_sync.sources.confluence.storage import storage_to_text
from vector_sync_tests.support import prose
from vector_sync_tests.support.confluence_standin import ConfluenceStandIn

FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# tags of storage format
MARKUP = re.compile(r"</?(?:ac:|ri:|p\b|li\b|td\b|tr\b|h\d\b|strong\b|em\b|code\b|pre\b|a\b)"
                    r"[^>]*>|<!\[CDATA\[")


@pytest.fixture
def wiki() -> Iterator[ConfluenceStandIn]:
    standin = ConfluenceStandIn()
    standin.seed()
    with standin:
        yield standin


def config(wiki: ConfluenceStandIn, **settings: Any) -> ConfluenceConfig:
    return ConfluenceConfig(**{
        "kind": "confluence", "url": wiki.url, "spaces": ["DOCS", "NOTES"],
        "username": wiki.username, "token": wiki.token, "collections": ["wiki"], **settings})


def source(wiki: ConfluenceStandIn, **settings: Any) -> ConfluenceSource:
    opened = config(wiki, **settings).open("wiki", None)
    assert isinstance(opened, ConfluenceSource)
    return opened


def hints(wiki: ConfluenceStandIn, **settings: Any) -> dict[str, str]:
    return {e.doc_id: e.version for e in source(wiki, **settings).scan()}


def read(wiki: ConfluenceStandIn, *ids: str) -> dict[str, Document | ReadFailure]:
    opened = source(wiki)
    list(opened.scan())
    return {r.doc_id: r for r in opened.read(ids)}


def by_title(wiki: ConfluenceStandIn, title: str) -> str:
    return next(p.id for p in wiki.pages.values() if p.title == title)


# --- the listing -----------------------------------------------------------------------------


def test_the_listing_pages_past_the_first_page_under_wiki_and_reads_no_body(wiki):
    listed = hints(wiki)
    assert set(listed) == set(wiki.pages) and len(listed) > 300
    searches = wiki.listed(r"/content/search$")
    # 100 a page at most: the later pages come from _links.next, which leaves out /wiki
    assert len(searches) == -(-len(listed) // 100) and all(
        r.path == "/wiki/rest/api/content/search" and r.status == 200 for r in searches)
    assert all("body" not in r.query.get("expand", "") for r in wiki.requests)


def test_a_paging_link_without_the_wiki_context_is_followed_under_it(wiki):
    client = AtlassianClient(wiki.url, wiki.username, SecretStr(wiki.token), what="Confluence")
    link = "/rest/api/content/search?cql=type+%3D+page&limit=1&start=1&cursor=MQ%3D%3D"
    assert client.url(link) == wiki.url + link
    assert client.url("/wiki" + link) == wiki.url + link  # already under /wiki: kept
    assert len(client.get(link)["results"]) == 1


def test_a_move_keeps_the_version_number_but_changes_the_hint(wiki):
    page = next(p.id for p in wiki.pages.values() if p.parent)
    before = hints(wiki)
    wiki.move(page, None)
    moved = hints(wiki)
    assert wiki.pages[page].version == 1 and moved[page].startswith("1:")
    assert moved[page] != before[page]
    assert {d: h for d, h in moved.items() if d != page} == \
        {d: h for d, h in before.items() if d != page}
    wiki.pages[page].labels.append("archived")  # a label change keeps the version too
    relabelled = hints(wiki)[page]
    assert relabelled.startswith("1:") and relabelled != moved[page]
    wiki.edit(page, storage="<p>Edited.</p>")
    assert hints(wiki)[page].startswith("2:")


def test_trashed_restricted_and_out_of_scope_pages_vanish_and_are_not_read(wiki):
    trashed, hidden, parent = list(wiki.pages)[3], list(wiki.pages)[4], list(wiki.pages)[0]
    children = [p.id for p in wiki.pages.values() if p.parent == parent]
    wiki.trash(trashed)
    wiki.hide(hidden)
    wiki.hide(parent)  # restricting a page hides its children too
    listed = hints(wiki)
    assert not {trashed, hidden, parent, *children} & set(listed)
    assert read(wiki, trashed, hidden, parent) == {}
    notes_page = next(p.id for p in wiki.pages.values() if p.space == "NOTES")
    only_docs = source(wiki, spaces=["DOCS"])
    assert notes_page not in {e.doc_id for e in only_docs.scan()}
    assert list(only_docs.read([notes_page])) == []  # reads keep to the scope


def test_cql_narrows_the_scope(wiki):
    listed = hints(wiki, cql='label = "sources"')
    assert set(listed) == {p.id for p in wiki.pages.values() if "sources" in p.labels}
    assert 0 < len(listed) < 100
    # an ORDER BY cannot stand inside the parentheses the condition is ANDed in: left out
    assert hints(wiki, cql='label = "sources" ORDER BY title desc') == listed


# --- reading ---------------------------------------------------------------------------------


def test_a_page_reads_as_its_fields(wiki):
    child = next(p for p in wiki.pages.values() if p.parent and p.space == "NOTES")
    parent = wiki.pages[child.parent or ""]
    wiki.restrict(child.id)
    document = read(wiki, child.id)[child.id]
    assert isinstance(document, Document)
    fields = document.fields
    assert fields["title"] == child.title and fields["space"] == "NOTES"
    assert fields["ancestors"] == [parent.title]
    assert fields["labels"] == child.labels and fields["author"] == child.creator
    assert fields["version"] == 1 and fields["modified_at"].endswith("Z")
    assert fields["url"].startswith(f"{wiki.url}/spaces/NOTES/pages/{child.id}/")
    assert fields["restricted"] is True
    assert read(wiki, parent.id)[parent.id].fields["restricted"] is False  # type: ignore
    assert document.version == hints(wiki)[child.id]


def test_a_collection_without_the_body_never_fetches_it(wiki):
    opened = config(wiki).open("wiki", ["title", "ancestors"])
    list(opened.scan())
    [document] = opened.read([next(iter(wiki.pages))])
    assert isinstance(document, Document) and "body" not in document.fields
    assert all("body" not in r.query.get("expand", "") for r in wiki.requests)


def test_a_page_too_large_fails_alone_with_its_code(wiki):
    big, small = list(wiki.pages)[:2]
    wiki.edit(big, storage="<p>" + "word " * 1_100_000 + "</p>")
    results = read(wiki, big, small)
    assert isinstance(results[big], ReadFailure) and results[big].error_code == "too_large"
    assert isinstance(results[small], Document)


# --- storage format as text ------------------------------------------------------------------


def test_storage_format_becomes_the_text_a_reader_sees():
    storage = (
        '<h2>Set&nbsp;up</h2><p>Read <strong>this</strong> <a href="https://x.example">the '
        'guide</a> and <ac:link><ri:page ri:content-title="Runbook" /></ac:link>, then '
        '<ac:link><ri:page ri:content-title="Other" /><ac:plain-text-link-body><![CDATA[that '
        'page]]></ac:plain-text-link-body></ac:link>.</p>'
        '<ac:structured-macro ac:name="info"><ac:parameter ac:name="title">Careful'
        '</ac:parameter><ac:rich-text-body><p>Back up &mdash; first.</p></ac:rich-text-body>'
        '</ac:structured-macro><ac:structured-macro ac:name="toc" />'
        '<ul><li>one<ul><li>nested</li></ul></li><li><p>two</p></li></ul><ol><li>first</li>'
        '<li>second</li></ol>'
        '<table><tbody><tr><th>Key</th><th>Meaning</th></tr><tr><td><p>url</p></td>'
        '<td>the <em>site</em></td></tr></tbody></table>'
        '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">python'
        '</ac:parameter><ac:plain-text-body><![CDATA[if a < b and c > d:\n    print("<p>")]]>'
        '</ac:plain-text-body></ac:structured-macro>'
        '<ac:task-list><ac:task><ac:task-status>complete</ac:task-status><ac:task-body>'
        'ship it</ac:task-body></ac:task></ac:task-list>'
        '<p>line one<br />line two <ac:emoticon ac:name="smile" /></p>')
    assert storage_to_text(storage) == (
        "## Set up\n\n"
        "Read this the guide and Runbook, then that page.\n\n"
        "Careful\n\nBack up \u2014 first.\n\n"
        "- one\n  - nested\n- two\n\n1. first\n2. second\n\n"
        "| Key | Meaning |\n| --- | --- |\n| url | the site |\n\n"
        '```python\nif a < b and c > d:\n    print("<p>")\n```\n\n'
        "- [x] ship it\n\n"
        "line one\nline two")


def test_every_seeded_page_reads_without_markup_and_keeps_its_code(wiki):
    opened = source(wiki)
    list(opened.scan())
    documents = list(opened.read(list(wiki.pages)))
    assert len(documents) == len(wiki.pages)
    assert all(isinstance(d, Document) for d in documents)
    texts = {d.doc_id: d.fields["body"] for d in documents if isinstance(d, Document)}
    # a tag in the text must be one the page's prose quotes (the docs write about <pre>)
    markdown = {p.title: p.markdown for p in prose.pieces()}
    markup = {doc_id: found for doc_id, text in texts.items()
              if (found := [tag for tag in MARKUP.findall(FENCED.sub("", text))
                            if tag not in markdown[wiki.pages[doc_id].title]])}
    assert markup == {}
    with_code = [p for p in wiki.pages.values() if 'ac:name="code"' in p.storage]
    assert len(with_code) > 20
    assert all(texts[p.id].count("```") >= 2 for p in with_code)


def test_a_seeded_page_keeps_its_headings_for_the_chunker():
    markdown = "Intro text.\n\n### Details\n\nMore.\n\n```sh\nmake run\n```\n"
    assert storage_to_text(prose.storage_xhtml(markdown)) == \
        "Intro text.\n\n### Details\n\nMore.\n\n```sh\nmake run\n```"


# --- errors, rate limits, secrets ------------------------------------------------------------


def test_a_bad_cql_is_unavailable_with_the_servers_message(wiki):
    with pytest.raises(SourceUnavailable, match=r"rejected the query \(check sources.wiki.cql"
                       r".*Could not parse cql"):
        hints(wiki, cql="label = ")


def test_a_missing_space_stops_the_sync_instead_of_deleting_its_pages(wiki):
    with pytest.raises(SourceUnavailable, match="space ENGG does not exist or the account "
                       "cannot see it"):
        hints(wiki, spaces=["DOCS", "ENGG"])


def test_refused_credentials_and_a_site_down_are_unavailable_without_secrets(wiki):
    credentials = base64.b64encode(f"{wiki.username}:{wiki.token}".encode()).decode()
    configured = config(wiki)
    wiki.revoke()
    with pytest.raises(SourceUnavailable, match="refused the credentials") as refused:
        list(configured.open("wiki", None).scan())
    wiki.down()
    with pytest.raises(SourceUnavailable, match="cannot be reached") as down:
        list(configured.open("wiki", None).scan())
    shown = f"{refused.value} {down.value} {configured!r} {configured.where()} " \
        f"{configured.model_dump()}"
    assert wiki.token not in shown and credentials not in shown


def test_429s_are_waited_out_and_5xx_retried(wiki):
    wiki.fail_every(5, status=429, retry_after=0.2)
    assert set(hints(wiki)) == set(wiki.pages)
    wiki.fail_every(2, status=503, retry_after=None)
    assert set(hints(wiki)) == set(wiki.pages)
    assert [r.status for r in wiki.requests].count(429) >= 1
    assert [r.status for r in wiki.requests].count(503) >= 2


def test_a_retry_after_holds_every_thread_sharing_the_client(wiki):
    client = AtlassianClient(wiki.url, wiki.username, SecretStr(wiki.token), what="Confluence")
    wiki.fail_every(7, retry_after=0.5)

    def work() -> None:
        for _ in range(6):
            client.get("rest/api/space")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log = wiki.requests
    limited = [r.at for r in log if r.status == 429]
    assert limited and sum(r.status == 200 for r in log) == 24
    # requests already on the wire when the 429 came arrive at once; none start in its wait
    started_in_wait = [r for t in limited for r in log if t + 0.1 < r.at < t + 0.45]
    assert started_in_wait == []


def test_bad_settings_are_refused():
    with pytest.raises(ValidationError, match="needs spaces, cql or both"):
        ConfluenceConfig(kind="confluence", url="https://x.atlassian.net/wiki", token="t",
                         collections=["c"])
    with pytest.raises(ValidationError, match="not space keys"):
        ConfluenceConfig(kind="confluence", url="https://x.atlassian.net/wiki", token="t",
                         spaces=['ENG") OR (type = page'], collections=["c"])
    with pytest.raises(ValidationError, match="must not carry credentials"):
        ConfluenceConfig(kind="confluence", url="https://bot:pw@x.atlassian.net/wiki",
                         token="t", spaces=["ENG"], collections=["c"])


# --- the watch's look ------------------------------------------------------------------------


def test_the_look_asks_for_the_newest_change_and_lists_only_when_due(wiki):
    watched = config(wiki, full_listing_every_s=3600)
    first = watched.look("wiki", None)
    assert first.changed
    wiki.requests.clear()
    quiet = watched.look("wiki", first.new_state)
    assert not quiet.changed and "unchanged" in quiet.summary
    # one search for the newest modification, no listing, no body
    assert [(r.path, r.query.get("limit")) for r in wiki.requests] == [
        ("/wiki/rest/api/content/search", "1")]
    edited = list(wiki.pages)[10]
    wiki.edit(edited, storage="<p>A new paragraph.</p>")
    seen = watched.look("wiki", quiet.new_state)
    assert seen.changed and repr(wiki.pages[edited].title) in seen.summary
    assert not watched.look("wiki", seen.new_state).changed


def test_the_periodic_listing_sees_moves_and_trash(wiki):
    watched = config(wiki, full_listing_every_s=0)
    state = watched.look("wiki", None).new_state
    wiki.move(list(wiki.pages)[20], None)
    moved = watched.look("wiki", state)
    assert moved.changed and "moved" in moved.summary
    wiki.trash(list(wiki.pages)[21])
    assert watched.look("wiki", moved.new_state).changed
