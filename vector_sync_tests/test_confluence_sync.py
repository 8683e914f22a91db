"""End to end through the CLI against a stand-in for Confluence Cloud (NOT the real service,
which cannot be reached from here: vector_sync_tests/support/confluence_standin.py, seeded
with the repository's own prose), with the real model, embedded Qdrant and real Dagster runs.
Every claim is checked in what Qdrant holds and in what the stand-in was asked."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from vector_sync import definitions
from vector_sync_tests.support import Project
from vector_sync_tests.support.confluence_standin import ConfluenceStandIn, Page

PAYLOAD = ["title", "space", "ancestors", "labels", "author", "url", "version", "modified_at",
           "restricted"]
NOTHING = {"added": 0, "updated": 0, "payload_updated": 0, "deleted": 0, "failed": 0,
           "chunks_embedded": 0}


class WikiProject(Project):
    """A config whose source `wiki` reads the stand-in's spaces into the collection `wiki`;
    the token comes from $ATLASSIAN_TOKEN, as a user would configure it."""

    def __init__(self, root: Path, wiki: ConfluenceStandIn, **settings: Any) -> None:
        root.mkdir()
        super().__init__(root)
        self.wiki = wiki
        self.config["sources"] = {"wiki": {
            "kind": "confluence", "url": wiki.url, "spaces": ["DOCS", "NOTES"],
            "username": wiki.username, "token": "${ATLASSIAN_TOKEN}", "collections": ["wiki"],
            **settings}}
        self.config["collections"] = {"wiki": {"embed": ["title", "body"], "payload": PAYLOAD}}
        self.save()

    def sync(self, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
        self.wiki.requests.clear()
        code, report = self.cli("sync", capsys=capsys)
        return code, report["sources"]["wiki"]

    def bodies_read(self) -> list[str]:
        """The page ids whose bodies the last sync fetched, from the stand-in's log."""
        return sorted(doc_id for r in self.wiki.requests if "body" in r.query.get("expand", "")
                      for doc_id in _ids_in(r.query["cql"]))


def _ids_in(cql: str) -> list[str]:
    inside = cql.split("id in (", 1)[1].split(")", 1)[0]
    return [part.strip() for part in inside.split(",")]


def synced(report: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in report["collections"]["wiki"].items() if k in NOTHING}


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ATLASSIAN_TOKEN", ConfluenceStandIn().token)
    yield


@pytest.fixture
def wiki(token_env: None) -> Iterator[ConfluenceStandIn]:
    """The stand-in with the first 20 pages of the seed."""
    standin = ConfluenceStandIn()
    standin.seed(20)
    with standin:
        yield standin


@pytest.fixture
def small_wiki(token_env: None) -> Iterator[ConfluenceStandIn]:
    standin = ConfluenceStandIn()
    standin.seed(4)
    with standin:
        yield standin


def test_initial_sync_no_op_and_one_sync_of_every_kind_of_change(tmp_path, wiki, capsys):
    project = WikiProject(tmp_path / "project", wiki)
    code, report = project.sync(capsys)
    points = project.points("wiki")
    chunks = sum(len(p) for p in points.values())
    assert code == 0 and synced(report) == {**NOTHING, "added": 20, "chunks_embedded": chunks}
    assert set(points) == set(wiki.pages)

    # a no-op: the listing only (one space check, one search), no body read, nothing embedded
    code, report = project.sync(capsys)
    assert code == 0 and synced(report) == NOTHING
    assert report["collections"]["wiki"]["unchanged"] == 20
    assert [(r.path, r.query.get("expand")) for r in wiki.requests] == [
        ("/wiki/rest/api/space", None),
        ("/wiki/rest/api/content/search", "version,ancestors,metadata.labels")]

    pages = list(wiki.pages.values())
    edited = next(p for p in pages if p.parent)
    moved = next(p for p in pages if p.parent and p.parent != edited.parent and p != edited)
    new_parent = next(p for p in pages if p.parent is None and p.id != moved.parent)
    trashed, hidden = [p for p in pages if p not in (edited, moved, new_parent)
                       and not any(c.parent == p.id for c in pages)][:2]
    before = project.points("wiki")
    held = project.held("wiki")
    wiki.edit(edited.id, storage=edited.storage + "<p>An added closing paragraph about "
              "keeping the runbook next to the alerts it explains.</p>")
    wiki.move(moved.id, new_parent.id)
    wiki.trash(trashed.id)
    wiki.hide(hidden.id)  # restricted: the sync account no longer sees it
    added: Page = wiki.add("DOCS", "Release checklist", "<h2>Before</h2><p>Tag the release "
                           "and write the notes.</p><ac:structured-macro ac:name=\"code\">"
                           "<ac:plain-text-body><![CDATA[git tag v1.2.0]]></ac:plain-text-body>"
                           "</ac:structured-macro>", parent=new_parent.id, labels=["release"])
    code, report = project.sync(capsys)
    after = project.points("wiki")
    new_chunks = len(after[added.id]) + len(
        {c["text"] for c in after[edited.id]} - {c["text"] for c in before[edited.id]})
    assert code == 0 and synced(report) == {
        "added": 1, "updated": 1, "payload_updated": 1, "deleted": 2, "failed": 0,
        "chunks_embedded": new_chunks}
    assert project.bodies_read() == sorted([edited.id, moved.id, added.id])
    assert trashed.id not in after and hidden.id not in after
    # the move: its ancestors in the payload, its vectors as they were
    assert {c["ancestors"] == [new_parent.title] for c in after[moved.id]} == {True}
    assert {c["version"] for c in after[moved.id]} == {1}
    moved_points = {point: vector for point, (payload, vector) in held.items()
                    if payload["doc_id"] == moved.id}
    assert moved_points == {point: vector for point, (payload, vector)
                            in project.held("wiki").items() if payload["doc_id"] == moved.id}
    assert {c["version"] for c in after[edited.id]} == {2}
    first = after[added.id][0]
    assert first["ancestors"] == [new_parent.title] and first["labels"] == ["release"]
    assert first["url"] == f"{wiki.url}/spaces/DOCS/pages/{added.id}/Release+checklist"
    assert "```\ngit tag v1.2.0\n```" in "\n".join(c["text"] for c in after[added.id])

    code, verdict = project.cli("verify", capsys=capsys)
    assert code == 0, verdict


def test_429s_on_a_fifth_of_the_requests_still_sync_everything(tmp_path, token_env, capsys):
    # small pages of results, so the sync makes enough requests for the 429s to land
    with ConfluenceStandIn(page_cap=1, body_page_cap=1) as wiki:
        wiki.seed(6)
        wiki.fail_every(5, status=429, retry_after=0.5)
        project = WikiProject(tmp_path / "project", wiki)
        code, report = project.sync(capsys)
        assert code == 0 and synced(report)["added"] == 6 and synced(report)["failed"] == 0
        assert set(project.points("wiki")) == set(wiki.pages)
        statuses = [r.status for r in wiki.requests]
        assert statuses.count(429) == len(statuses) // 5 >= 3


def test_a_bad_cql_fails_the_sync_with_the_servers_message(tmp_path, wiki, capsys):
    project = WikiProject(tmp_path / "project", wiki, cql="label = ")
    code, report = project.sync(capsys)
    assert code == 1 and report["collections"] == {}
    assert "sources.wiki.cql" in report["error"] and "Could not parse cql" in report["error"]


def test_a_revoked_token_or_the_site_down_exits_1_deletes_nothing_shows_no_secret(
        tmp_path, small_wiki, capsys, caplog):
    wiki = small_wiki
    project = WikiProject(tmp_path / "project", wiki)
    assert project.sync(capsys)[0] == 0
    held = project.held("wiki")
    token = wiki.token
    secrets = [token, base64.b64encode(f"{wiki.username}:{token}".encode()).decode()]
    printed = []

    wiki.revoke()
    code, report = project.sync(capsys)
    assert code == 1 and "refused the credentials" in report["error"]
    printed.append(str(report))
    # the CLI as a user runs it, text output on stdout and progress on stderr
    done = subprocess.run([sys.executable, "-m", "vector_sync.cli", "sync", "--config",
                           str(project.config_file)], capture_output=True, text=True,
                          env={**os.environ, "ATLASSIAN_TOKEN": token}, timeout=600)
    assert done.returncode == 1 and "refused the credentials" in done.stdout
    printed += [done.stdout, done.stderr]

    wiki.token = token
    wiki.down()
    code, report = project.sync(capsys)
    assert code == 1 and "cannot be reached" in report["error"]
    printed.append(str(report))
    code, status = project.cli("status", capsys=capsys)
    printed.append(str(status))
    printed += [capsys.readouterr().err, caplog.text]

    assert project.held("wiki") == held  # nothing deleted, nothing rewritten
    assert not [s for s in secrets if any(s in text for text in printed)]
    files = [p for p in project.root.rglob("*") if p.is_file() and p != project.config_file]
    assert not [str(p) for p in files for s in secrets if s.encode() in p.read_bytes()]


def test_the_watch_sensor_requests_a_sync_for_an_edit_and_skips_a_site_it_cannot_read(
        tmp_path, wiki):
    project = WikiProject(tmp_path / "project", wiki)
    defs = definitions.build_definitions(str(project.config_file))
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        return defs.resolve_sensor_def("watch_wiki")(context)

    first = tick(None)
    assert isinstance(first, dg.SensorResult) and len(first.run_requests or []) == 1
    quiet = tick(first.cursor)
    assert isinstance(quiet, dg.SensorResult) and not quiet.run_requests
    wiki.requests.clear()
    assert not tick(quiet.cursor).run_requests  # type: ignore[union-attr]
    # between full listings a look is one search for the newest change, without bodies
    assert [r.query.get("limit") for r in wiki.requests] == ["1"]
    edited = list(wiki.pages)[5]
    wiki.edit(edited, storage="<p>Rewritten.</p>")
    seen = tick(quiet.cursor)
    assert isinstance(seen, dg.SensorResult) and len(seen.run_requests or []) == 1
    wiki.revoke()
    refused = tick(seen.cursor)
    assert isinstance(refused, dg.SkipReason)
    assert "refused the credentials" in (refused.skip_message or "")


@pytest.mark.slow
def test_every_seeded_page_syncs_with_exact_counts_and_verifies(tmp_path, token_env, capsys):
    with ConfluenceStandIn() as wiki:
        wiki.seed()
        project = WikiProject(tmp_path / "project", wiki)
        code, report = project.sync(capsys)
        points = project.points("wiki")
        assert code == 0 and synced(report) == {
            **NOTHING, "added": len(wiki.pages),
            "chunks_embedded": sum(len(p) for p in points.values())}
        assert set(points) == set(wiki.pages) and len(points) > 300
        code, report = project.sync(capsys)
        assert code == 0 and synced(report) == NOTHING and project.bodies_read() == []
        assert project.cli("verify", capsys=capsys)[0] == 0
