"""Several configurations sharing one Qdrant: each verifies and prunes only the collections
it made; another configuration's or another tool's collections are "not managed here", left
alone, and never written."""

from __future__ import annotations

from pathlib import Path

import pytest

from vector_sync_tests.support import Project, counts


def _two_projects(tmp_path: Path, collection_b: str = "docs") -> tuple[Project, Project]:
    """A quick start (`notes`) and a second config in another folder, one state dir."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = Project(tmp_path / "a"), Project(tmp_path / "b")
    a.config["state"]["dir"] = b.config["state"]["dir"] = str(tmp_path / "shared")
    b.config["sources"] = {"handbook": {"kind": "markdown", "path": "vault",
                                        "collections": [collection_b]}}
    b.config["collections"] = {collection_b: {"embed": ["title", "body"]}}
    a.save()
    b.save()
    a.note("a.md", "# Apples\n\nApples keep for weeks in a cold cellar.\n")
    b.note("b.md", "# Bread\n\nBread dough rises best somewhere warm.\n")
    return a, b


def test_prune_leaves_another_configurations_collection_and_removes_its_own(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    a, b = _two_projects(tmp_path)
    assert a.cli("sync", capsys=capsys)[0] == 0
    assert b.cli("sync", capsys=capsys)[0] == 0
    notes = a.held("notes")

    code, report = b.cli("verify", capsys=capsys)
    assert code == 0 and report["ok"] and report["unmanaged"] == []
    [other] = report["not_managed_here"]
    assert other["collection"] == "notes" and other["deployment"].startswith("vector_sync.yaml@")
    code, report = b.cli("repair", "--prune", capsys=capsys)
    assert code == 0 and a.held("notes") == notes  # another team's data: untouched

    # b renames its collection: the old one is b's own, so its prune drops it
    b.config["sources"]["handbook"]["collections"] = ["handbook"]
    b.config["collections"] = {"handbook": {"embed": ["title", "body"]}}
    b.save()
    assert b.cli("sync", capsys=capsys)[0] == 0
    code, report = b.cli("verify", capsys=capsys)
    assert code == 1 and [u["collection"] for u in report["unmanaged"]] == ["docs"]
    code, report = b.cli("repair", "--prune", capsys=capsys)
    assert code == 0 and report["unmanaged"] == []
    with b.qdrant() as store:
        assert store.collections() == ["handbook", "notes"]
    assert a.held("notes") == notes
    assert a.cli("verify", capsys=capsys)[0] == 0


def test_a_collection_another_tool_made_is_listed_and_never_pruned(
        project: Project, capsys: pytest.CaptureFixture[str]):
    project.note("a.md", "# A\n\nSome text about apples.\n")
    assert project.cli("sync", capsys=capsys)[0] == 0
    with project.qdrant() as store:
        store.create("langchain_docs", 4)  # made by another tool: no vector_sync metadata
    code, report = project.cli("repair", "--prune", capsys=capsys)
    assert code == 0 and report["not_managed_here"] == [
        {"collection": "langchain_docs", "deployment": None}]
    with project.qdrant() as store:
        assert store.collections() == ["langchain_docs", "notes"]


def test_a_sync_never_writes_a_collection_another_deployment_made(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    a, b = _two_projects(tmp_path, collection_b="notes")  # the same collection name
    a.config["deployment"], b.config["deployment"] = "team-a", "team-b"
    a.save()
    b.save()
    assert a.cli("sync", capsys=capsys)[0] == 0
    notes = a.held("notes")

    code, report = b.cli("sync", capsys=capsys)
    assert code == 1
    error = report["sources"]["handbook"]["error"]
    assert "created by another vector_sync deployment ('team-a'" in error
    assert a.held("notes") == notes
    code, report = b.cli("repair", "--prune", capsys=capsys)
    assert code == 1 and "team-a" in report["errors"]["handbook"]  # refused, said why
    assert a.held("notes") == notes


def test_a_collection_an_earlier_version_made_is_adopted_by_the_next_sync(
        project: Project, capsys: pytest.CaptureFixture[str]):
    project.note("a.md", "# A\n\nSome text about apples.\n")
    assert project.cli("sync", capsys=capsys)[0] == 0
    with project.qdrant() as store:
        ours = store.deployment("notes")
        store.set_metadata("notes", {"vector_sync": {"model": store.model("notes"),
                                                     "dimension": 384}})
    assert ours is not None
    code, report = project.cli("verify", capsys=capsys)
    assert code == 0 and report["not_managed_here"] == []  # named in the config: ours
    project.note("b.md", "# B\n\nMore text, about bread.\n")
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["added"] == 1
    with project.qdrant() as store:
        assert store.deployment("notes") == ours


def test_no_example_config_shares_state_with_the_quick_start():
    from vector_sync.config import load_config

    repo = Path(__file__).resolve().parent.parent
    files = [repo / "vector_sync.yaml", *sorted((repo / "examples").glob("*.yaml"))]
    dirs = [load_config(file).state.dir for file in files]
    assert len(files) >= 3 and len(set(dirs)) == len(dirs), dict(zip(files, dirs, strict=True))
