"""The jira source on its own: ADF and wiki markup read as text, the settings, and the
source's scan, read and look against the Jira stand-in (support/jira_standin.py, a loopback
server answering the Jira REST API as Atlassian documents it; not the real service), with
every claim checked in what the source yields and what the stand-in was asked."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from vector_sync.core.documents import Document, ReadFailure
from vector_sync.core.source import SourceUnavailable
from vector_sync.sources.atlassian.settings import without_order_by
from vector_sync.sources.jira import JiraConfig, JiraSource
from vector_sync.sources.jira.adf import InvalidAdf, adf_to_text
from vector_sync.sources.jira.wiki import wiki_to_text
from vector_sync_tests.support.jira_content import adf, wiki
from vector_sync_tests.support.jira_standin import Comment, JiraStandIn
from vector_sync_tests.support.prose import pieces

JQL = "project in (ENG, OPS, DOCS)"


def text(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(content)}


def para(*inline: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(inline)}


def t(value: str, *marks: str, **attrs: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if marks:
        node["marks"] = [{"type": m, **({"attrs": attrs} if m == "link" else {})}
                         for m in marks]
    return node


# --- ADF -----------------------------------------------------------------------------------


def test_adf_reads_as_a_reader_sees_it_with_headings_and_fenced_code():
    document = text(
        {"type": "heading", "attrs": {"level": 2}, "content": [t("Reproduce")]},
        para(t("Run "), t("make sync", "code"), t(" as "),
             {"type": "mention", "attrs": {"id": "5b10ac", "text": "@Ada Lovelace"}},
             t(" wrote in "), t("the runbook", "link", href="https://wiki/x"), t(" "),
             {"type": "emoji", "attrs": {"shortName": ":fire:", "text": "🔥"}},
             t(", bold", "strong"), {"type": "hardBreak"}, t("due "),
             {"type": "date", "attrs": {"timestamp": "1714521600000"}}, t(", "),
             {"type": "status", "attrs": {"text": "BLOCKED", "color": "red"}}),
        {"type": "codeBlock", "attrs": {"language": "python"},
         "content": [t("for x in range(3):\n    print(x)")]},
        {"type": "bulletList", "content": [
            {"type": "listItem", "content": [para(t("first")), {"type": "orderedList",
             "attrs": {"order": 3}, "content": [
                {"type": "listItem", "content": [para(t("nested"))]}]}]},
            {"type": "listItem", "content": [para(t("second"))]}]},
        {"type": "blockquote", "content": [para(t("quoted"))]},
        {"type": "table", "content": [{"type": "tableRow", "content": [
            {"type": "tableHeader", "content": [para(t("Key"))]},
            {"type": "tableCell", "content": [para(t("Value"))]}]}]},
        {"type": "panel", "attrs": {"panelType": "note"}, "content": [para(t("in a panel"))]},
        {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "f1"}}]},
        {"type": "inlineCard", "attrs": {"url": "https://example.com/card"}},
    )
    assert adf_to_text(document) == (
        "## Reproduce\n\n"
        "Run `make sync` as @Ada Lovelace wrote in the runbook 🔥, bold\n"
        "due 2024-05-01, BLOCKED\n\n"
        "```python\nfor x in range(3):\n    print(x)\n```\n\n"
        "- first\n  3. nested\n- second\n\n"
        "> quoted\n\n"
        "Key | Value\n\n"
        "in a panel\n\n"
        "https://example.com/card")


def test_an_unknown_adf_node_reads_as_its_text_and_a_non_document_fails():
    document = text({"type": "futureBlock", "content": [para(t("still readable"))]},
                    para({"type": "futureInline", "content": [t("inline too")]}))
    assert adf_to_text(document) == "still readable\n\ninline too"
    assert adf_to_text(None) == ""
    with pytest.raises(InvalidAdf):
        adf_to_text("a description stored as a bare string")


def test_prose_round_trips_through_adf_without_markup_or_json():
    blocks = 0
    for piece in pieces()[:80]:
        document = adf(piece.markdown)
        read = adf_to_text(document)
        assert '"type"' not in read and "{code" not in read
        for node in document["content"]:  # code is kept as it was written, fenced
            if node["type"] == "codeBlock":
                blocks += 1
                language = node.get("attrs", {}).get("language", "")
                assert f"```{language}\n{node['content'][0]['text']}\n```" in read
    assert blocks > 5


# --- wiki markup ---------------------------------------------------------------------------


def test_wiki_markup_reads_without_markup_and_keeps_code_verbatim():
    markup = (
        "h2. Setup steps\n"
        "Install *the tool* with {{pip install x}}; see [the guide|https://ex.com/g] "
        "and ask [~jsmith].\n"
        "* first\n** nested _item_\n# numbered\n"
        "{code:java}\nint x = 1; // *not bold* h2. not a heading\n{code}\n"
        "||Name||Value||\n|a|[link|http://x/y]|\n"
        "bq. a quote\n"
        "{quote}\nquoted *text*\n{quote}\n"
        "----\n"
        "well-known snake_case_name, -struck- and ??cited?? !shot.png|thumbnail!\n"
        "{color:red}red{color} and {noformat}raw {braces}{noformat}")
    assert wiki_to_text(markup) == (
        "## Setup steps\n"
        "Install the tool with `pip install x`; see the guide and ask @jsmith.\n"
        "- first\n  - nested item\n1. numbered\n\n"
        "```java\nint x = 1; // *not bold* h2. not a heading\n```\n\n"
        "Name | Value\na | link\n"
        "> a quote\n\n> quoted text\n\n"
        "well-known snake_case_name, struck and cited\n"
        "red and\n```\nraw {braces}\n```")


def test_prose_round_trips_through_wiki_markup_without_markup():
    for piece in pieces()[:80]:
        read = wiki_to_text(wiki(piece.markdown))
        assert "{code" not in read and "{quote}" not in read
        assert not any(line.startswith(("h1. ", "h2. ", "h3. ")) for line in read.splitlines())


# --- settings ------------------------------------------------------------------------------


def settings(**keys: Any) -> JiraConfig:
    return JiraConfig.model_validate({"kind": "jira", "url": "https://acme.atlassian.net/",
                                      "jql": JQL, "username": "bot@acme.com",
                                      "token": "s3cret-api-token", "collections": ["c"],
                                      **keys})


def test_cloud_or_data_center_follows_username_site_or_the_setting():
    assert settings().api == "cloud" and settings().url == "https://acme.atlassian.net"
    assert settings(username=None).api == "cloud"  # an atlassian.net site is Cloud
    assert settings(url="https://jira.acme.internal", username=None).api == "data_center"
    assert settings(url="https://jira.acme.internal", edition="data_center").api == \
        "data_center"


def test_the_jql_loses_its_order_by_but_not_inside_quotes():
    assert without_order_by('project = ENG ORDER BY created DESC') == "project = ENG"
    assert without_order_by('summary ~ "order by" and project = ENG') == \
        'summary ~ "order by" and project = ENG'
    assert settings(jql="project = ENG order  by rank").scope == "project = ENG"
    with pytest.raises(ValidationError, match="selects nothing"):
        settings(jql="ORDER BY updated")


def test_bad_settings_are_refused_without_echoing_the_token():
    for keys in ({"url": "ftp://acme"}, {"url": "https://bot:pw@acme.atlassian.net"},
                 {"token": "  "}, {"jql": ""}):
        with pytest.raises(ValidationError) as raised:
            settings(**keys)
        assert "s3cret-api-token" not in str(raised.value)
    config = settings()
    assert "s3cret" not in repr(config) and "s3cret" not in config.where()


# --- the source against the stand-in ---------------------------------------------------


@pytest.fixture
def jira() -> Iterator[JiraStandIn]:
    with JiraStandIn() as standin:
        standin.seed(30)
        yield standin


def config_for(standin: JiraStandIn, **keys: Any) -> JiraConfig:
    return JiraConfig.model_validate({
        "kind": "jira", "url": standin.url, "jql": JQL, "collections": ["c"],
        "username": None if standin.data_center else standin.username,
        "token": SecretStr(standin.token), **keys})


def read_all(source: JiraSource, ids: list[str]) -> dict[str, Document | ReadFailure]:
    return {result.doc_id: result for result in source.read(ids)}


def test_scan_lists_ids_and_hints_from_one_cheap_search(jira):
    source = config_for(jira).open("t", None)
    entries = list(source.scan())
    assert sorted(e.doc_id for e in entries) == sorted(str(i) for i in jira.issues)
    eng1 = jira.by_key("ENG-1")
    assert {e.doc_id: e.version for e in entries}[str(eng1.id)] == \
        "j1|2024-01-01T00:01:00.000+0000|ENG-1"
    [request] = jira.requests
    assert request.path == "/rest/api/3/search/jql" and request.query["fields"] == "updated"
    assert request.query["jql"] == f"({JQL}) ORDER BY created ASC"


def test_scan_pages_with_next_page_tokens_until_the_last_page(jira):
    jira.seed(220)  # 250 issues: three pages of 100
    entries = list(config_for(jira).open("t", None).scan())
    assert len({e.doc_id for e in entries}) == 250
    tokens = [r.query.get("nextPageToken") for r in jira.requests]
    assert tokens[0] is None and all(tokens[1:]) and len(tokens) == 3


def test_read_fetches_only_the_fields_the_collections_use_in_batches(jira):
    source = config_for(jira, page_size=10).open("t", ["summary", "description", "status"])
    ids = [str(i) for i in jira.issues]
    docs = read_all(source, ids)
    assert set(docs) == set(ids)
    assert [r.query["fields"] for r in jira.requests] == ["description,status,summary,updated"] \
        * 3
    issue = jira.by_key("OPS-2")
    doc = docs[str(issue.id)]
    assert isinstance(doc, Document)
    assert doc.fields["summary"] == issue.summary and doc.fields["key"] == "OPS-2"
    assert doc.fields["url"] == f"{jira.url}/browse/OPS-2"
    assert doc.fields["status"] == issue.status
    assert doc.fields["description"] == adf_to_text(adf(issue.description))


def test_a_document_carries_every_field_as_text_or_names(jira):
    issue = jira.by_key("ENG-2")
    jira.edit(issue, labels=["backend", "sync"], security="Staff only")
    jira.comment(issue, "Grace Hopper", "Reproduced with `make sync` on **main**.")
    jira.comment(issue, "Alan Turing", "Only for admins.", {"type": "role",
                                                           "value": "Administrators"})
    doc = read_all(config_for(jira).open("t", None), [str(issue.id)])[str(issue.id)]
    assert isinstance(doc, Document)
    fields = doc.fields
    assert fields["comments"].endswith(
        "Grace Hopper on 2024-01-01 wrote:\nReproduced with `make sync` on main.")
    assert "Only for admins" not in fields["comments"]  # restricted to a role: left out
    assert (fields["labels"], fields["components"], fields["fix_versions"]) == (
        ["backend", "sync"], issue.components, issue.fix_versions)
    assert issue.assignee is None and "assignee" not in fields  # absent, not null
    assert (fields["priority"], fields["issue_type"]) == (issue.priority, issue.issue_type)
    assert fields["security_level"] == "Staff only" and fields["project"] == "ENG"
    assert fields["updated_at"] == issue.updated.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert doc.version == f"j1|{fields['updated_at'][:19]}.000+0000|ENG-2"


def test_comments_beyond_the_search_page_are_paged_from_the_comment_api(jira):
    jira.comments_in_search = 2
    issue = jira.by_key("DOCS-3")
    for n in range(130):
        issue.comments.append(Comment(90000 + n, "Ada Lovelace", issue.created, f"Note {n}."))
    doc = read_all(config_for(jira).open("t", None), [str(issue.id)])[str(issue.id)]
    assert isinstance(doc, Document)
    assert doc.fields["comments"].count("wrote:") == len(issue.comments)
    assert "Note 129." in doc.fields["comments"]
    pages = jira.listed(rf"/issue/{issue.id}/comment")
    assert [r.query["startAt"] for r in pages] == ["0", "100"]


def test_an_issue_deleted_after_the_listing_is_left_out_and_the_rest_read(jira):
    source = config_for(jira).open("t", None)
    ids = [e.doc_id for e in source.scan()]
    gone = jira.by_key("OPS-4")
    jira.delete(gone)
    docs = read_all(source, ids)
    assert set(docs) == set(ids) - {str(gone.id)}
    # Jira refused the whole id list (400, the issue does not exist): each was asked alone
    refused = [r.query["jql"] for r in jira.requests if r.status == 400]
    assert len(refused) == 2 and "id in (" in refused[0]
    assert refused[1].endswith(f"AND id = {gone.id}")


def test_a_description_that_is_not_adf_fails_that_issue_alone(jira, monkeypatch):
    broken = jira.by_key("ENG-5")
    original = jira._body
    # fault injected on purpose: an app wrote a bare string where Cloud returns ADF
    monkeypatch.setattr(jira, "_body", lambda markdown, wiki_markup: (
        "plain string" if markdown == broken.description else original(markdown, wiki_markup)))
    docs = read_all(config_for(jira).open("t", None), [str(i) for i in jira.issues])
    failure = docs[str(broken.id)]
    assert isinstance(failure, ReadFailure) and failure.error_code == "invalid_issue"
    assert "description" in failure.message
    assert sum(isinstance(d, Document) for d in docs.values()) == len(jira.issues) - 1


def test_bad_jql_is_unavailable_with_jiras_own_message(jira):
    source = config_for(jira, jql="projekt = ENG").open("t", None)
    with pytest.raises(SourceUnavailable, match="rejected the JQL 'projekt = ENG': Field "
                       "'projekt' does not exist or you do not have permission to view it"):
        list(source.scan())
    source = config_for(jira, jql="project = NOPE").open("t", None)
    with pytest.raises(SourceUnavailable, match="The value 'NOPE' does not exist for the "
                       "field 'project'"):
        list(source.scan())


def test_the_retired_search_is_named_when_a_cloud_site_answers_410(jira):
    source = config_for(jira, edition="data_center").open("t", None)
    with pytest.raises(SourceUnavailable) as raised:
        list(source.scan())
    assert "410 Gone for /rest/api/2/search" in str(raised.value)
    assert "Please migrate to the /rest/api/3/search/jql API" in str(raised.value)
    assert "set `edition: cloud`" in str(raised.value)


def test_a_data_center_server_asked_with_the_cloud_search_says_how_to_fix_it():
    with JiraStandIn(data_center=True) as standin:
        standin.seed(3)
        source = config_for(standin, url=standin.url, edition="cloud").open("t", None)
        with pytest.raises(SourceUnavailable, match=r"has no /rest/api/3/search/jql \(404\): "
                           "is it Jira Data Center\\? .*edition: data_center"):
            list(source.scan())


def test_refused_credentials_are_unavailable_never_an_empty_listing(jira):
    source = config_for(jira).open("t", None)
    jira.revoke()
    with pytest.raises(SourceUnavailable, match="refused the credentials") as raised:
        list(source.scan())
    basic = base64.b64encode(f"{jira.username}:{jira.token}".encode()).decode()
    original = jira.token.removeprefix("revoked-")
    assert original not in str(raised.value) and basic not in str(raised.value)


def test_a_site_that_is_down_is_unavailable(jira):
    source = config_for(jira).open("t", None)
    jira.down()
    with pytest.raises(SourceUnavailable, match="cannot be reached"):
        list(source.scan())


def test_rate_limits_are_waited_out(jira):
    jira.fail_every(3, retry_after=0.2)  # every third request: 429 with a Retry-After
    source = config_for(jira, page_size=5).open("t", None)
    ids = [e.doc_id for e in source.scan()]
    docs = read_all(source, ids)
    assert len(docs) == 30 and all(isinstance(d, Document) for d in docs.values())
    assert sum(r.status == 429 for r in jira.requests) >= 2


def test_data_center_lists_with_start_at_and_reads_wiki_markup():
    with JiraStandIn(data_center=True) as standin:
        standin.seed(130)
        config = config_for(standin, url=standin.url)
        assert config.api == "data_center"
        source = config.open("t", None)
        entries = list(source.scan())
        assert len(entries) == 130
        assert [r.query["startAt"] for r in standin.requests] == ["0"]  # 1000 a page
        issue = standin.by_key("OPS-7")
        doc = read_all(source, [str(issue.id)])[str(issue.id)]
        assert isinstance(doc, Document)
        assert doc.fields["description"] == wiki_to_text(wiki(issue.description))
        assert all(r.path == "/rest/api/2/search" for r in standin.requests)
        # Bearer: a personal access token, no username
        assert config.username is None


# --- the watch sensor's look ---------------------------------------------------------------


def test_look_sees_edits_with_one_small_query_and_deletions_with_the_listing(jira):
    config = config_for(jira, full_listing_every_s=3600)
    first = config.look("t", None)
    assert first.changed and "first look" in first.summary
    jira.requests.clear()
    quiet = config.look("t", first.new_state)
    assert not quiet.changed
    [asked] = jira.requests  # the newest issue only: no listing within full_listing_every_s
    assert asked.query["maxResults"] == "1" and asked.query["fields"] == "updated"
    assert 'AND updated >= "2023/12/31 ' in asked.query["jql"]  # a day before the newest
    assert asked.query["jql"].endswith("ORDER BY updated DESC")

    jira.edit(jira.by_key("ENG-4"), status="Done")
    edited = config.look("t", quiet.new_state)
    assert edited.changed and "ENG-4 was updated" in edited.summary
    json.dumps(edited.new_state)  # a sensor cursor holds it

    jira.delete(jira.by_key("OPS-1"))  # a deletion leaves no newest issue behind
    assert not config.look("t", edited.new_state).changed
    listing = config_for(jira, full_listing_every_s=0).look("t", edited.new_state)
    assert listing.changed and "list of issues changed" in listing.summary


def test_look_with_the_site_down_is_unavailable(jira):
    config = config_for(jira)
    state = config.look("t", None).new_state
    jira.down()
    with pytest.raises(SourceUnavailable):
        config.look("t", state)
