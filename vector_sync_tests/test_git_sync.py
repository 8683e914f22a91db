"""End to end through the CLI with real Git repositories (made with the git CLI), the real
model, embedded Qdrant and real Dagster runs. Every count is checked against `git diff
--no-renames --name-status`, and what Qdrant holds against the commit's tree."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest

from vector_sync.config import load_config
from vector_sync.core.ledger import open_ledger
from vector_sync.core.pipeline import checkpoints, snapshot
from vector_sync_tests.support import Project
from vector_sync_tests.support.git_repo import GitRepo, git
from vector_sync_tests.test_sync import _storage_digest

FILES = {"a.md": "---\ntags: [fruit]\n---\n# Alpha\n\nAlpha is about apples.\n",
         "b.md": "# Bravo\n\nBravo bakes bread.\n",
         "sub/c.md": "Charlie covers cheese.\n",
         "sub/d.md": "Delta digs ditches.\n"}
NOTHING = {"added": 0, "updated": 0, "payload_updated": 0, "deleted": 0, "failed": 0,
           "chunks_embedded": 0}


class GitProject(Project):
    """A repository plus a config whose source `docs` syncs it into collection `docs`."""

    def __init__(self, root: Path, repo: str = "repo", **settings: object) -> None:
        super().__init__(root)
        self.repo = GitRepo(root / "repo")
        self.config["sources"] = {"docs": {"kind": "git", "repo": repo, "branch": "main",
                                           "collections": ["docs"], **settings}}
        self.config["collections"] = {"docs": {
            "embed": ["title", "body"], "payload": ["tags", "path", "commit", "committed_at"]}}
        self.save()

    def sync(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
        code, report = self.cli("sync", *args, capsys=capsys)
        return code, report["sources"]["docs"]

    def assert_mirrors(self, rev: str = "main") -> None:
        """Qdrant holds exactly the commit's files, each with its text."""
        points = self.points("docs")
        files = self.repo.files(rev)
        assert set(points) == set(files)
        for path, text in files.items():
            assert text.splitlines()[-1] in points[path][0]["text"], path


@pytest.fixture
def project(tmp_path: Path) -> GitProject:
    return GitProject(tmp_path)


def diff_counts(counted: dict[str, int]) -> Counter[str]:
    """A sync's counts in `git diff --name-status` letters."""
    return Counter(A=counted["added"], M=counted["updated"], D=counted["deleted"])


def test_each_sync_applies_exactly_what_git_diff_lists(project, capsys, caplog):
    caplog.set_level(logging.INFO, "vector_sync")
    repo = project.repo
    first = repo.commit("seed", FILES)
    code, report = project.sync(capsys)
    assert code == 0 and report["collections"]["docs"]["added"] == 4
    project.assert_mirrors()

    # two commits between syncs: edits, an add, a delete and a rename
    repo.commit("edit", {"a.md": FILES["a.md"] + "\nApples grow on trees.\n",
                         "e.md": "Echo explains echoes.\n"})
    repo.git("mv", "sub/c.md", "sub/renamed.md")
    repo.commit("rename and delete", remove=("b.md",))
    second = repo.head()
    code, report = project.sync(capsys)
    synced = report["collections"]["docs"]
    assert code == 0 and diff_counts(synced) == repo.name_status(first) == \
        Counter(A=2, M=1, D=2)
    assert synced["payload_updated"] == 0 and synced["chunks_embedded"] == 3
    assert f"commit-diff {first[:12]}..{second[:12]}: 5 paths" in caplog.text
    project.assert_mirrors()
    points = project.points("docs")
    assert points["a.md"][0]["commit"] == second
    assert points["sub/d.md"][0]["commit"] == first  # unchanged files are not rewritten

    repo.commit("edit again", {"sub/d.md": "Delta digs deeper ditches.\n"})
    code, report = project.sync(capsys)
    assert diff_counts(report["collections"]["docs"]) == repo.name_status(second) == Counter(M=1)
    project.assert_mirrors()


def test_uncommitted_edits_change_nothing_until_committed(project, capsys):
    repo = project.repo
    repo.commit("seed", FILES)
    project.sync(capsys)
    before = _storage_digest(project)

    repo.write("b.md", "# Bravo\n\nBravo now bakes cakes.\n")
    repo.write("new.md", "Untracked.\n")
    (repo.path / "a.md").chmod(0o755)
    repo.git("add", "a.md")
    repo.git("commit", "--quiet", "-m", "only the executable bit")
    code, report = project.sync(capsys)
    assert code == 0 and {k: report["collections"]["docs"][k] for k in NOTHING} == NOTHING
    assert _storage_digest(project) == before

    repo.git("add", "b.md")
    repo.git("commit", "--quiet", "-m", "bravo")
    code, report = project.sync(capsys)
    assert report["collections"]["docs"] == {**NOTHING, "updated": 1, "unchanged": 3,
                                             "chunks_embedded": 1, "chunks_reused": 0}
    assert "cakes" in project.points("docs")["b.md"][0]["text"]


def test_a_reset_backwards_converges_to_the_tree_at_the_new_head(project, capsys, caplog):
    caplog.set_level(logging.INFO, "vector_sync")
    repo = project.repo
    first = repo.commit("seed", FILES)
    project.sync(capsys)
    second = repo.commit("forward", {"a.md": "Alpha moved on.\n", "f.md": "Foxtrot.\n"},
                         remove=("b.md",))
    project.sync(capsys)
    project.assert_mirrors()

    repo.git("reset", "--quiet", "--hard", first)
    code, report = project.sync(capsys)
    assert code == 0
    assert diff_counts(report["collections"]["docs"]) == Counter(A=1, M=1, D=1)
    assert f"history rewritten ({second[:12]} is not an ancestor of {first[:12]})" in \
        caplog.text
    project.assert_mirrors()
    assert "apples" in project.points("docs")["a.md"][0]["text"]


def test_a_merge_syncs_the_diff_from_the_last_synced_commit(project, capsys):
    repo = project.repo
    first = repo.commit("seed", FILES)
    project.sync(capsys)
    repo.git("checkout", "--quiet", "-b", "feature")
    repo.commit("feature", {"sub/c.md": "Charlie covers chocolate.\n", "g.md": "Golf.\n"})
    repo.git("checkout", "--quiet", "main")
    repo.commit("main", {"b.md": "# Bravo\n\nBravo bakes bagels.\n"}, remove=("sub/d.md",))
    repo.git("merge", "--quiet", "--no-ff", "-m", "merge feature", "feature")
    code, report = project.sync(capsys)
    assert code == 0
    assert diff_counts(report["collections"]["docs"]) == repo.name_status(first) == \
        Counter(A=1, M=2, D=1)
    project.assert_mirrors()


def test_bad_files_fail_with_reasons_and_keep_what_was_synced(project, capsys):
    project.config["sources"]["docs"]["max_file_bytes"] = 1000
    project.save()
    repo = project.repo
    (repo.path / "link.md").symlink_to("a.md")
    repo.commit("seed", {**FILES, "image.md": b"\x89PNG\r\n\x1a\n\0\0", "huge.md": "x" * 2000})
    code, report = project.sync(capsys)
    assert code == 1
    assert report["collections"]["docs"]["added"] == 4
    assert report["collections"]["docs"]["failed"] == 3

    repo.commit("a.md turns binary", {"a.md": b"\0binary now"})
    code, report = project.sync(capsys)
    assert code == 1 and report["collections"]["docs"]["failed"] == 4
    assert "apples" in project.points("docs")["a.md"][0]["text"]  # the synced points stay
    code, status = project.cli("status", capsys=capsys)
    reasons = {row["doc_id"]: row["error_code"] for row in status["failed"]}
    assert reasons == {"a.md": "binary", "image.md": "binary", "huge.md": "too_large",
                       "link.md": "symlink"}


def test_a_url_repo_is_cloned_into_the_state_dir_and_fetched(tmp_path, capsys):
    origin = GitRepo(tmp_path / "origin.git", bare=True)
    (tmp_path / "project").mkdir()
    project = GitProject(tmp_path / "project", repo=f"file://{origin.path}")
    work = project.repo
    work.commit("seed", FILES)
    work.git("push", "--quiet", origin.path, "main")
    code, report = project.sync(capsys)
    assert code == 0 and report["collections"]["docs"]["added"] == 4
    assert (project.root / "state" / "git" / "docs" / "HEAD").exists()

    work.commit("pushed later", {"b.md": "# Bravo\n\nBravo bakes baguettes.\n"})
    work.git("push", "--quiet", origin.path, "main")
    code, report = project.sync(capsys)
    assert report["collections"]["docs"]["updated"] == 1
    project.assert_mirrors()

    origin.path.rename(tmp_path / "unreachable")
    code, report = project.sync(capsys)
    assert code == 1 and "cannot fetch file://" in report["error"]
    project.assert_mirrors()  # nothing deleted


def test_a_deleted_branch_or_a_lost_repo_fails_the_source_and_deletes_nothing(project, capsys):
    repo = project.repo
    repo.commit("seed", FILES)
    project.sync(capsys)
    repo.git("checkout", "--quiet", "-b", "other")
    repo.git("branch", "-D", "main")
    code, report = project.sync(capsys)
    assert code == 1 and "branch 'main' does not exist" in report["error"]
    code, planned = project.cli("plan", capsys=capsys)
    assert code == 1 and "branch 'main' does not exist" in planned["sources"]["docs"]["error"]

    shutil.rmtree(repo.path / ".git")
    code, report = project.sync(capsys)
    assert code == 1 and "is not a Git repository" in report["error"]
    assert set(project.points("docs")) == set(FILES)


def test_the_last_commit_is_recorded_only_once_applied(project, capsys):
    repo = project.repo
    first = repo.commit("seed", FILES)
    project.sync(capsys)
    config = load_config(project.config_file)
    with open_ledger(config.state) as ledger:
        assert checkpoints.last_checkpoint(ledger, "docs", ["docs"]) == first

    second = repo.commit("delete most", remove=("a.md", "b.md", "sub/c.md"))
    code, report = project.sync(capsys)
    assert code == 1 and "max_delete_fraction" in report["error"]
    with open_ledger(config.state) as ledger:  # the guard stopped it before any apply
        assert checkpoints.last_checkpoint(ledger, "docs", ["docs"]) == first
    metadata = snapshot.snapshot(config, "docs")
    assert metadata["detection"] == "commit-diff"
    assert metadata["commit_range"] == f"{first}..{second}" and metadata["diff_deleted"] == 3

    code, report = project.sync(capsys, "--allow-mass-delete")
    assert code == 0 and report["collections"]["docs"]["deleted"] == 3
    with open_ledger(config.state) as ledger:
        assert checkpoints.last_checkpoint(ledger, "docs", ["docs"]) == second
    assert git("-C", repo.path, "rev-parse", "main") == second
