"""A document without points in a collection (it has none of the fields the collection
embeds) is neither added nor deleted there: not when it appears, not when it goes, and not
in the mass-delete guard's sums. Through the CLI, with SurrealDB embedded (surrealkv), the
real model and embedded Qdrant: a table of articles where only some authors have a bio,
synced into `articles` (title, body) and `bios` (author.bio)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from surrealdb import RecordID, Surreal

from vector_sync_tests.support import Project, counts

COUNTED = ("added", "updated", "deleted", "unchanged", "failed")


def record(index: int, bio: bool) -> dict[str, Any]:
    author = {"name": f"Author {index}"} | ({"bio": f"Author {index} writes about rivers."}
                                           if bio else {})
    return {"title": f"Article {index}", "body": f"Article {index} is about stones.",
            "author": author}


class Articles(Project):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.url = f"surrealkv://{root / 'db'}"
        self.query("DEFINE TABLE article CHANGEFEED 1d")
        self.config["sources"] = {"articles": {
            "kind": "surrealdb", "url": self.url, "namespace": "shop", "database": "cms",
            "table": "article", "collections": ["articles", "bios"]}}
        self.config["collections"] = {"articles": {"embed": ["title", "body"]},
                                      "bios": {"embed": ["author.bio"]}}
        self.save()

    def query(self, sql: str, variables: dict[str, Any] | None = None) -> None:
        db = Surreal(self.url)
        try:
            db.use("shop", "cms")
            db.query(sql, variables or {})
        finally:
            db.close()

    def create(self, index: int, bio: bool) -> None:
        self.query("CREATE $rid CONTENT $data",
                   {"rid": RecordID("article", index), "data": record(index, bio)})

    def run(self, command: str, capsys: Any, *args: str) -> dict[str, dict[str, Any]]:
        """plan or sync: collection -> its counts (and the guard's verdict, for plan)."""
        code, report = self.cli(command, *args, capsys=capsys)
        assert code == 0, report
        return {c: {k: v for k, v in counts(report, "articles", c).items()
                    if k in (*COUNTED, "mass_delete_guard")} for c in ("articles", "bios")}

    def plan_then_sync(self, capsys: Any, *args: str) -> dict[str, dict[str, Any]]:
        planned = self.run("plan", capsys)
        synced = self.run("sync", capsys, *args)
        for collection, got in synced.items():
            assert {k: planned[collection][k] for k in COUNTED} == got, collection
        return planned


def test_a_document_without_the_embedded_field_is_never_added_or_deleted_there(
        tmp_path, capsys):
    project = Articles(tmp_path)
    for index in range(4):
        project.create(index, bio=index < 2)
    first = project.plan_then_sync(capsys)
    assert first["bios"] == {"added": 2, "updated": 0, "deleted": 0, "unchanged": 2,
                             "failed": 0}

    project.create(4, bio=False)  # appears: not added to bios
    report = project.plan_then_sync(capsys)
    assert report["articles"]["added"] == 1 and report["bios"]["added"] == 0

    project.query("DELETE article:3")  # goes: not deleted from bios either
    report = project.plan_then_sync(capsys)
    assert report["articles"]["deleted"] == 1
    assert report["bios"] == {"added": 0, "updated": 0, "deleted": 0, "unchanged": 4,
                              "failed": 0}

    project.query("UPDATE article:1 SET author.bio = NONE")  # its bio point goes: deleted
    report = project.plan_then_sync(capsys)
    assert report["bios"]["deleted"] == 1 and report["articles"]["updated"] == 0
    project.query("DELETE article:1")  # and the record later: nothing more left in bios
    report = project.plan_then_sync(capsys)
    assert report["articles"]["deleted"] == 1 and report["bios"]["deleted"] == 0
    assert set(project.points("bios")) == {"article:0"}
    code, status = project.cli("status", capsys=capsys)
    by_collection = status["sources"]["articles"]["collections"]
    # article:0 with its point, article:2 and article:4 without: rows of deleted ones are gone
    assert code == 0 and by_collection["bios"]["synced"] == 3


def test_the_mass_delete_guard_weighs_only_documents_with_points_in_the_collection(
        tmp_path, capsys):
    project = Articles(tmp_path)
    for index in range(8):
        project.create(index, bio=index < 3)
    project.plan_then_sync(capsys)

    for index in range(3, 8):  # most of the table, none of it with a bio
        project.query(f"DELETE article:{index}")
    planned = project.run("plan", capsys)
    assert planned["articles"]["mass_delete_guard"] == (
        "5 of 8 documents would be deleted, more than max_delete_fraction 0.5")
    assert planned["bios"]["deleted"] == 0 and "mass_delete_guard" not in planned["bios"]
    synced = project.run("sync", capsys, "--allow-mass-delete")
    assert synced["articles"]["deleted"] == 5 and synced["bios"]["deleted"] == 0

    project.query("DELETE article:0; DELETE article:1")  # 2 of the 3 bios
    planned = project.run("plan", capsys)
    assert planned["bios"]["mass_delete_guard"] == (
        "2 of 3 documents would be deleted, more than max_delete_fraction 0.5")
    synced = project.run("sync", capsys, "--allow-mass-delete")
    assert synced["bios"]["deleted"] == 2
    assert set(project.points("bios")) == {"article:2"}
