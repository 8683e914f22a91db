"""End to end through the CLI against the Jira stand-in (support/jira_standin.py: a loopback
server answering the Jira Cloud REST API as Atlassian documents it, seeded with issues of
real prose; not the real service), with the real model, embedded Qdrant and real Dagster
runs. Every claim is checked in what Qdrant holds, in the CLI's counts and exit code, and in
what the stand-in was asked."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from vector_sync.cli import main
from vector_sync_tests.support import Project
from vector_sync_tests.support.jira_standin import Issue, JiraStandIn

SEEDED = 12  # 4 issues in each of ENG, OPS and DOCS
PAGE = 2  # issues per read request: several requests even for a few issues
TOKEN_ENV = "JIRA_TOKEN"
NOTHING = {"added": 0, "updated": 0, "payload_updated": 0, "deleted": 0, "failed": 0,
           "chunks_embedded": 0}
PAYLOAD = ["key", "summary", "status", "assignee", "labels", "priority", "components",
           "fix_versions", "issue_type", "url", "updated_at"]


class JiraProject(Project):
    """A config whose source `tickets` syncs the stand-in's issues into `issues`."""

    def __init__(self, root: Path, jira: JiraStandIn, **settings: Any) -> None:
        root.mkdir(parents=True)
        super().__init__(root)
        self.config["sources"] = {"tickets": {
            "kind": "jira", "url": jira.url, "jql": "project in (ENG, OPS, DOCS)",
            "username": jira.username, "token": "${JIRA_TOKEN}", "collections": ["issues"],
            **settings}}
        self.config["collections"] = {"issues": {
            "embed": ["summary", "description", "comments"], "payload": PAYLOAD}}
        self.save()


def run(project: Project, *args: str) -> tuple[int, Any]:
    """The CLI in this process, its --json answer parsed."""
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*args, "--config", str(project.config_file), "--json"])
    return code, json.loads(out.getvalue()) if out.getvalue().strip() else None


def synced(report: dict[str, Any]) -> dict[str, int]:
    counted = report["sources"]["tickets"]["collections"]["issues"]
    return {k: v for k, v in counted.items() if k in NOTHING}


def texts(project: Project) -> dict[str, list[str]]:
    return {doc: [p["text"] for p in points] for doc, points in project.points("issues").items()}


@pytest.fixture(scope="module")
def jira() -> Iterator[JiraStandIn]:
    with JiraStandIn() as standin:
        standin.seed(SEEDED)
        yield standin


@pytest.fixture(scope="module")
def reference(jira: JiraStandIn, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The seeded issues synced once: the first sync's report and a copy of the project
    after it, to start each test from."""
    root = tmp_path_factory.mktemp("jira")
    project = JiraProject(root / "project", jira, page_size=PAGE)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, jira.token)
        code, report = run(project, "sync")
    assert code == 0, report
    shutil.copytree(project.root, root / "synced")
    return {"report": report, "synced": root / "synced", "requests": list(jira.requests)}


@pytest.fixture
def project(reference: dict[str, Any], jira: JiraStandIn, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A copy of the synced project; the stand-in is put back as seeded afterwards."""
    shutil.copytree(reference["synced"], tmp_path / "project")
    monkeypatch.setenv(TOKEN_ENV, jira.token)
    seeded, token = jira.snapshot(), jira.token
    jira.requests.clear()
    yield Project.at(tmp_path / "project")
    jira.fail_every(0)
    jira.token = token
    jira.restore(seeded)


def test_initial_sync_holds_every_issue_as_text_and_fields(reference, jira, tmp_path):
    report = reference["report"]
    project = Project.at(reference["synced"])
    points = project.points("issues")
    chunks = sum(len(p) for p in points.values())
    assert synced(report) == {**NOTHING, "added": SEEDED, "chunks_embedded": chunks}
    # one document per issue, by its id (the key is a payload field)
    assert set(points) == {str(issue_id) for issue_id in jira.issues}
    issue = jira.by_key("OPS-3")
    first = points[str(issue.id)][0]
    assert first["key"] == "OPS-3" and first["url"] == f"{jira.url}/browse/OPS-3"
    assert (first["status"], first["assignee"], first["priority"], first["issue_type"]) == (
        issue.status, issue.assignee, issue.priority, issue.issue_type)
    assert first["labels"] == issue.labels and first["fix_versions"] == issue.fix_versions
    assert first["text"].startswith(f"summary: {issue.summary}\n")
    # description and comments read as text: code fenced, no ADF JSON, no wiki markup
    every = "\n".join(p["text"] for chunks in points.values() for p in chunks)
    assert '"type":' not in every and "{code" not in every and "\nh2. " not in every
    assert "```" in every and "wrote:\n" in every
    # the first sync read each issue once: the listing, then bodies in batches
    asked = reference["requests"]
    assert [r.query["fields"] for r in asked][0] == "updated"
    assert len(asked) == 1 + SEEDED // PAGE


def test_a_sync_without_changes_reads_no_issue_bodies_and_embeds_nothing(project, jira):
    code, report = run(project, "sync")
    assert code == 0 and synced(report) == NOTHING
    assert report["sources"]["tickets"]["collections"]["issues"]["unchanged"] == SEEDED
    # only the cheap listing: ids, keys and `updated`
    assert [(r.path, r.query["fields"]) for r in jira.requests] == [
        ("/rest/api/3/search/jql", "updated")]


def test_one_sync_counts_each_kind_of_change_exactly(project, jira):
    before = texts(project)
    held = project.held("issues")
    edited, commented = jira.by_key("ENG-2"), jira.by_key("OPS-2")
    deleted, moved = jira.by_key("DOCS-2"), jira.by_key("ENG-3")
    jira.edit(edited, description=edited.description + "\n\nA race in the retry loop "
              "drops the last batch when Jira answers 429 twice in a row.")
    jira.comment(commented, "Grace Hopper", "Confirmed on the staging site: the cursor "
                 "is lost after a restart, so the listing starts over.")
    jira.delete(deleted)
    jira.move(moved, "OPS")  # ENG-3 becomes OPS-5: same id, new key
    created = jira.create("DOCS", "Document the watch sensor's listing interval",
                          "How often the sensor lists every issue id, and why deletions "
                          "wait for that listing.", status="To Do")
    jira.requests.clear()

    code, report = run(project, "sync")
    after = texts(project)
    new_chunks = sum(len([t for t in after[str(i.id)] if t not in before.get(str(i.id), [])])
                     for i in (edited, commented, created))
    assert code == 0 and synced(report) == {
        "added": 1, "updated": 2, "payload_updated": 1, "deleted": 1, "failed": 0,
        "chunks_embedded": new_chunks}
    assert 3 <= new_chunks < sum(len(after[str(i.id)]) for i in (edited, commented, created))
    # the moved issue: one document, its key and url updated, its vectors kept
    points = project.points("issues")
    assert str(deleted.id) not in points
    assert {p["key"] for p in points[str(moved.id)]} == {moved.key} and moved.key == "OPS-5"
    assert points[str(moved.id)][0]["url"].endswith("/browse/OPS-5")
    now = project.held("issues")
    kept = [pid for pid, (payload, _) in held.items() if payload["doc_id"] == str(moved.id)]
    assert kept and all(now[pid][1] == held[pid][1] for pid in kept)
    assert "Confirmed on the staging site" in "\n".join(after[str(commented.id)])
    # bodies were read for the four changed issues only
    reads = [r.query["jql"].split("id in (")[1].rstrip(")").split(", ")
             for r in jira.requests if r.query["fields"] != "updated"]
    assert sorted(i for ids in reads for i in ids) == sorted(
        str(i.id) for i in (edited, commented, moved, created))

    code, verified = run(project, "verify")
    assert code == 0, json.dumps(verified, indent=1)


def test_a_status_change_alone_updates_the_payload_only(project, jira):
    issue: Issue = jira.by_key("DOCS-4")
    unassigned: Issue = jira.by_key("OPS-1")
    assert issue.status != "In Progress" and unassigned.assignee is not None
    jira.edit(issue, status="In Progress", assignee="Alan Turing")
    jira.edit(unassigned, assignee=None)
    code, report = run(project, "sync")
    assert code == 0 and synced(report) == {**NOTHING, "payload_updated": 2}
    points = project.points("issues")
    assert {(p["status"], p["assignee"]) for p in points[str(issue.id)]} == {
        ("In Progress", "Alan Turing")}
    assert not any("assignee" in p for p in points[str(unassigned.id)])  # gone, not null
    code, verified = run(project, "verify")
    assert code == 0, json.dumps(verified, indent=1)


def test_rate_limits_on_a_fifth_of_the_requests_are_waited_out(project, jira):
    for issue in jira.issues.values():
        jira.edit(issue, status="In Review")
    jira.edit(jira.by_key("ENG-1"), summary="Rate limits are honoured, not fatal")
    jira.fail_every(5)  # every fifth request: 429 with Retry-After: 1
    code, report = run(project, "sync")
    counted = synced(report)
    assert code == 0 and counted == {**NOTHING, "updated": 1, "payload_updated": SEEDED - 1,
                                     "chunks_embedded": 1}
    code, verified = run(project, "verify")
    assert code == 0, json.dumps(verified, indent=1)
    answered = [r.status for r in jira.requests]
    assert answered.count(429) == len(answered) // 5 >= 1
    statuses = {p[0]["status"] for p in project.points("issues").values()}
    assert statuses == {"In Review"}


def test_a_bad_jql_fails_with_jiras_message_and_deletes_nothing(project, jira):
    held = project.held("issues")
    project.config["sources"]["tickets"]["jql"] = "project in (ENG, OPS) AND statuss = Done"
    project.save()
    code, report = run(project, "sync")
    assert code == 1
    assert "Field 'statuss' does not exist or you do not have permission to view it" in \
        report["sources"]["tickets"]["error"]
    assert project.held("issues") == held


def test_a_revoked_token_or_the_site_down_exits_1_deletes_nothing_and_leaks_nothing(
        project, jira):
    held = project.held("issues")
    token = jira.token
    basic = base64.b64encode(f"{jira.username}:{token}".encode()).decode()
    env = {**os.environ, TOKEN_ENV: token}

    def cli(*args: str) -> tuple[int, str]:
        done = subprocess.run([sys.executable, "-m", "vector_sync.cli", *args, "--config",
                               str(project.config_file)], env=env, capture_output=True,
                              text=True, timeout=600)
        return done.returncode, done.stdout + done.stderr

    jira.delete(jira.by_key("ENG-4"))  # a real deletion, which must wait for a good sync
    jira.revoke()
    revoked, said = cli("sync")
    assert revoked == 1 and "refused the credentials (401" in said, said
    outputs = [said]
    jira.token = token
    jira.down()
    try:
        down, said = cli("sync")
    finally:
        jira.up()
    assert down == 1 and "cannot be reached" in said, said
    outputs.append(said)
    assert project.held("issues") == held
    files = [p for p in project.root.rglob("*") if p.is_file()]
    leaks = [where for where in [*outputs, *(p.read_bytes().decode("latin-1") for p in files)]
             if token in where or basic in where]
    assert not leaks


@pytest.mark.slow
def test_a_few_hundred_issues_sync_with_exact_counts_and_a_noop_reads_only_the_listing(
        tmp_path, monkeypatch):
    with JiraStandIn() as standin:
        standin.seed(300)  # every section of the repository's Markdown, about once
        monkeypatch.setenv(TOKEN_ENV, standin.token)
        project = JiraProject(tmp_path / "project", standin)
        code, report = run(project, "sync")
        points = project.points("issues")
        assert code == 0 and synced(report) == {
            **NOTHING, "added": 300, "chunks_embedded": sum(len(p) for p in points.values())}
        assert set(points) == {str(i) for i in standin.issues}
        # 300 issues: the listing's three pages of 100, then the bodies, 100 a request
        assert [r.query.get("nextPageToken") is None for r in standin.requests].count(True) \
            == 4 and len(standin.requests) == 6
        standin.requests.clear()
        code, report = run(project, "sync")
        assert code == 0 and synced(report) == NOTHING
        assert {r.query["fields"] for r in standin.requests} == {"updated"}
        assert len(standin.requests) == 3
        code, verified = run(project, "verify")
        assert code == 0, json.dumps(verified, indent=1)


@pytest.mark.slow
def test_data_center_syncs_wiki_markup_with_a_personal_access_token(tmp_path, monkeypatch):
    with JiraStandIn(data_center=True) as standin:
        standin.seed(9)
        monkeypatch.setenv(TOKEN_ENV, standin.token)
        project = JiraProject(tmp_path / "project", standin)
        del project.config["sources"]["tickets"]["username"]  # Bearer: a PAT
        project.save()
        code, report = run(project, "sync")
        points = project.points("issues")
        assert code == 0 and synced(report) == {
            **NOTHING, "added": 9, "chunks_embedded": sum(len(p) for p in points.values())}
        every = "\n".join(p["text"] for chunks in points.values() for p in chunks)
        assert "{code" not in every and "{{" not in every and "\nh2. " not in every
        assert "```" in every
        assert {r.path for r in standin.requests} == {"/rest/api/2/search"}
        standin.edit(standin.by_key("OPS-2"), status="Done")
        code, report = run(project, "sync")
        assert code == 0 and synced(report) == {**NOTHING, "payload_updated": 1}
