"""GitSource against real repositories made with the git CLI in temporary folders."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vector_sync.config import ConfigError, parse_config
from vector_sync.core.documents import Document, ReadFailure
from vector_sync.core.secrets import mask_url
from vector_sync.core.source import Checkpointed, SourceUnavailable
from vector_sync.sources.git import GitConfig, GitSource
from vector_sync.sources.git.objects import head_commit
from vector_sync.sources.markdown import MarkdownConfig, MarkdownSource
from vector_sync_tests.support.git_repo import GitRepo, git

NOTE = "---\ntitle: Alpha\ntags: [one]\nalias: A\n---\n# Heading\n\nAbout [[Bravo]] and #apples.\n"


def source(repo: Path | str, **settings: Any) -> GitSource:
    config = GitConfig(kind="git", repo=str(repo), collections=["docs"], **settings)
    return GitSource("docs", config)


def scan(src: GitSource) -> dict[str, str]:
    return {entry.doc_id: entry.version for entry in src.scan()}


def read(src: GitSource, *doc_ids: str) -> dict[str, Document | ReadFailure]:
    return {result.doc_id: result for result in src.read(doc_ids)}


def document(src: GitSource, doc_id: str) -> Document:
    result = read(src, doc_id)[doc_id]
    assert isinstance(result, Document), result
    return result


def failure(src: GitSource, doc_id: str) -> ReadFailure:
    result = read(src, doc_id)[doc_id]
    assert isinstance(result, ReadFailure), result
    return result


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


# --- listing and reading -----------------------------------------------------------------------


def test_scan_lists_the_committed_tree_with_blob_ids_as_hints(repo):
    repo.commit(files={"a.md": NOTE, "sub/b.md": "# B\n", "code.py": "print(1)\n"})
    repo.write("a.md", "uncommitted edit\n")
    repo.write("untracked.md", "not committed\n")
    repo.git("add", "untracked.md")  # staged is not committed either
    src = source(repo.path)
    assert scan(src) == {"a.md": f"blob:{repo.blob('a.md')}",
                         "sub/b.md": f"blob:{repo.blob('sub/b.md')}"}
    assert isinstance(src, Checkpointed)
    assert "About [[Bravo]]" in document(src, "a.md").fields["body"]  # the committed text


def test_markdown_becomes_the_same_fields_as_in_the_markdown_source(repo):
    head = repo.commit(files={"notes/a.md": NOTE})
    fields = document(source(repo.path), "notes/a.md").fields
    vault = MarkdownSource("v", MarkdownConfig(kind="markdown", path=repo.path,
                                                     collections=["docs"]))
    expected = next(iter(vault.read(["notes/a.md"])))
    assert isinstance(expected, Document)
    seconds = int(repo.git("show", "-s", "--format=%ct", head))
    committed_at = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert fields == {**{k: v for k, v in expected.fields.items() if k != "modified_at"},
                      "commit": head, "committed_at": committed_at}
    assert fields["title"] == "Alpha" and fields["tags"] == ["one", "apples"]


def test_other_text_files_have_their_file_name_as_title(repo):
    repo.commit(files={"src/tool.py": "\n\ndef main():\n    return 1\n\n"})
    fields = document(source(repo.path, include=["**/*.py"]), "src/tool.py").fields
    assert fields["title"] == "tool.py"
    assert fields["body"] == "def main():\n    return 1"
    assert fields["path"] == "src/tool.py" and "tags" not in fields


def test_ignore_files_come_from_the_commit_and_dot_folders_are_skipped(repo):
    repo.commit(files={
        "keep.md": "k\n", "drafts/d.md": "d\n", "sub/x.md": "x\n", "sub/y.md": "y\n",
        "sub/.vectorsyncignore": "*.md\n!y.md\n", ".vectorsyncignore": "drafts/\n",
        ".obsidian/config.md": "c\n", "skip/me.md": "m\n",
    })
    repo.write(".vectorsyncignore", "drafts/\nkeep.md\n")  # not committed: no effect
    assert set(scan(source(repo.path, exclude=["skip/"]))) == {"keep.md", "sub/y.md"}


def test_bad_files_are_failures_with_reasons(repo):
    os.symlink("target.md", repo.path / "link.md")
    repo.commit(files={"target.md": "t\n", "binary.md": b"PNG\0\x01", "latin1.md": b"caf\xe9\n",
                       "big.md": "x" * 200, "empty.md": "  \n",
                       "bad.md": "---\ntitle: [unclosed\n---\nbody\n"})
    sub = git("-C", repo.path, "rev-parse", "HEAD")
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{sub},vendor.md")
    repo.git("commit", "--quiet", "-m", "submodule")
    src = source(repo.path, max_file_bytes=100)
    versions = scan(src)
    results = read(src, *versions)
    codes = {doc_id: r.error_code for doc_id, r in results.items() if isinstance(r, ReadFailure)}
    assert codes == {"binary.md": "binary", "latin1.md": "invalid_utf8", "big.md": "too_large",
                     "empty.md": "empty", "bad.md": "bad_frontmatter", "link.md": "symlink",
                     "vendor.md": "submodule"}
    assert "link.md -> target.md" in results["link.md"].message
    assert "200 bytes" in results["big.md"].message
    assert versions["vendor.md"] == f"submodule:{sub}"
    assert versions["link.md"].startswith("symlink:")
    assert isinstance(results["target.md"], Document)


def test_last_author_comes_from_one_log_pass(repo, tmp_path):
    repo.commit(files={"a.md": "a\n", "b.md": "b\n"}, author="Ann")
    repo.commit(files={"b.md": "b2\n"}, author="Bob")
    repo.commit(files={"c.txt": "c\n"}, author="Cid")
    src = source(repo.path, last_author=True)
    scan(src)
    assert {d: r.fields["last_author"] for d, r in read(src, "a.md", "b.md").items()} == \
        {"a.md": "Ann", "b.md": "Bob"}
    assert "last_author" not in document(source(repo.path), "a.md").fields
    # a shallow clone does not know who last changed a file outside its history
    shallow = tmp_path / "shallow"
    git("clone", "--quiet", "--depth", "1", f"file://{repo.path}", shallow)
    src = source(shallow, last_author=True)
    scan(src)
    assert document(src, "a.md").fields["last_author"] is None


# --- change detection --------------------------------------------------------------------------


def detect(src: GitSource, checkpoint: str | None) -> set[str]:
    """As the snapshot stage asks: the changes since `checkpoint`, then the listing."""
    changed = src.changed_since(checkpoint)
    scan(src)
    return changed


def test_commit_diff_lists_adds_edits_and_renames_but_not_mode_changes(repo):
    first = repo.commit(files={"a.md": "a\n", "b.md": "b\n", "c.md": "c\n", "d.txt": "d\n"})
    repo.commit(files={"a.md": "a2\n", "new.md": "n\n", "d.txt": "d2\n"}, remove=("c.md",))
    repo.git("mv", "b.md", "moved.md")
    os.chmod(repo.path / "a.md", 0o755)  # and a second commit edits nothing else
    head = repo.commit()
    src = source(repo.path)
    assert detect(src, first) == {"a.md", "new.md", "moved.md"}
    assert src.checkpoint == head
    assert src.detection == {
        "detection": "commit-diff", "commit": head, "commit_range": f"{first}..{head}",
        "detection_reason": f"commit-diff {first[:12]}..{head[:12]}: 5 paths "
                            "(2 added, 1 modified, 2 deleted)",
        "diff_added": 2, "diff_modified": 1, "diff_deleted": 2}
    assert detect(src, head) == set() and src.detection["diff_added"] == 0


def test_mode_only_commit_is_no_change(repo):
    first = repo.commit(files={"a.md": "a\n"})
    os.chmod(repo.path / "a.md", 0o755)
    src = source(repo.path)
    assert detect(src, repo.commit()) == set()
    assert scan(src) == {"a.md": f"blob:{repo.blob('a.md', first)}"}


def test_without_a_usable_last_commit_the_whole_tree_is_compared(repo):
    first = repo.commit(files={"a.md": "a\n"})
    second = repo.commit(files={"a.md": "a2\n"})
    src = source(repo.path)
    assert detect(src, None) == set()
    assert src.detection["detection"] == "full tree"
    assert "no last synced commit" in src.detection["detection_reason"]

    repo.git("reset", "--quiet", "--hard", first)  # rewritten history: second is not below
    assert detect(src, second) == set()
    assert src.detection["detection_reason"] == \
        f"history rewritten ({second[:12]} is not an ancestor of {first[:12]})"

    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "--quiet", "--prune=now")
    assert detect(src, second) == set()
    assert f"{second[:12]} is not in the repository any more" in \
        src.detection["detection_reason"]
    assert detect(src, "not-a-commit") == set() and src.detection["detection"] == "full tree"


def test_shallow_clone_falls_back_to_the_full_tree_and_says_so(repo, tmp_path):
    first = repo.commit(files={"a.md": "a\n"})
    second = repo.commit(files={"a.md": "a2\n"})
    shallow = GitRepo(tmp_path / "shallow", init=False)
    git("clone", "--quiet", "--depth", "1", f"file://{repo.path}", shallow.path)
    src = source(shallow.path)
    assert detect(src, first) == set()
    assert src.detection["detection_reason"] == \
        f"the last synced commit {first[:12]} is not in this shallow clone"
    third = repo.commit(files={"a.md": "a3\n"})
    shallow.git("fetch", "--quiet", "--depth", "1", "--update-head-ok", "origin", "+main:main")
    assert detect(src, second) == set()
    assert src.detection["detection_reason"] == (
        f"cannot tell whether {second[:12]} is an ancestor of {third[:12]}: the repository "
        "is a shallow clone")
    assert scan(src) == {"a.md": f"blob:{repo.blob('a.md')}"}


# --- repositories and branches -----------------------------------------------------------------


def test_a_bare_repository_and_head_commit_work(repo, tmp_path):
    head = repo.commit(files={"a.md": "a\n"})
    bare = tmp_path / "bare.git"
    git("clone", "--quiet", "--bare", repo.path, bare)
    assert set(scan(source(bare))) == {"a.md"}
    config = GitConfig(kind="git", repo=str(bare), collections=["docs"])
    assert head_commit("docs", config) == head
    look = config.look("docs", {"head": head})
    assert not look.changed and look.new_state == {"head": head}
    assert config.look("docs", None).changed


@pytest.mark.parametrize("problem", ["missing", "not a repo", "inside a repo"])
def test_a_path_that_is_not_a_repository_is_a_source_error(repo, tmp_path, problem):
    repo.commit(files={"sub/a.md": "a\n"})
    path = {"missing": tmp_path / "nowhere", "not a repo": tmp_path,
            "inside a repo": repo.path / "sub"}[problem]
    with pytest.raises(SourceUnavailable) as raised:
        scan(source(path))
    expected = "does not exist" if problem == "missing" else "is not a Git repository"
    assert expected in str(raised.value) and "'docs'" in str(raised.value)


def test_a_missing_branch_is_a_source_error_naming_the_branches(repo):
    repo.commit(files={"a.md": "a\n"})
    repo.git("branch", "dev")
    with pytest.raises(SourceUnavailable) as raised:
        scan(source(repo.path, branch="release"))
    assert "branch 'release' does not exist" in str(raised.value)
    assert "its branches: dev, main" in str(raised.value)
    with pytest.raises(SourceUnavailable, match="does not exist"):
        head_commit("docs", GitConfig(kind="git", repo=str(repo.path), branch="release",
                                            collections=["docs"]))


def test_a_url_repo_is_cloned_and_fetched(repo, tmp_path):
    first = repo.commit(files={"a.md": "a\n"})
    clone = tmp_path / "state" / "git" / "docs"
    url = f"file://{repo.path}"
    src = source(url, clone_dir=clone)
    assert set(scan(src)) == {"a.md"} and (clone / "HEAD").exists()
    second = repo.commit(files={"b.md": "b\n"})
    assert detect(src, first) == {"b.md"} and src.checkpoint == second
    config = GitConfig(kind="git", repo=url, collections=["docs"], clone_dir=clone)
    assert head_commit("docs", config) == second

    with pytest.raises(SourceUnavailable, match="branch 'gone' does not exist"):
        scan(source(url, clone_dir=clone, branch="gone"))
    with pytest.raises(SourceUnavailable, match="branch 'gone' does not exist"):
        head_commit("docs", config.model_copy(update={"branch": "gone"}))
    repo.path.rename(tmp_path / "moved")
    with pytest.raises(SourceUnavailable, match="cannot fetch file://"):
        scan(src)
    with pytest.raises(SourceUnavailable, match="cannot reach file://"):
        head_commit("docs", config)


def test_credentials_in_a_url_are_mask_url():
    assert mask_url("https://me:s3cret@example.com/r.git") == "https://me:***@example.com/r.git"
    assert mask_url("file:///tmp/r") == "file:///tmp/r"


# --- configuration ------------------------------------------------------------------------------


def test_config_resolves_the_repo_path_and_the_clone_dir(tmp_path):
    def load(**source: Any) -> GitConfig:
        config = parse_config({
            "state": {"dir": "state"},
            "sources": {"docs": {"kind": "git", "collections": ["docs"], **source}},
            "collections": {"docs": {"embed": ["body"]}}}, tmp_path)
        loaded = config.sources["docs"]
        assert isinstance(loaded, GitConfig)
        return loaded

    local = load(repo="repo")
    assert local.repo == str(tmp_path / "repo") and local.branch == "main"
    remote = load(repo="https://example.com/r.git")
    assert remote.repo == "https://example.com/r.git"
    assert remote.clone_dir == tmp_path / "state" / "git" / "docs"
    assert load(repo="git@example.com:r.git").repo == "git@example.com:r.git"
    for bad in ("a b", "-x", "a..b", "x.lock", "feature/"):
        with pytest.raises(ConfigError, match="not a valid Git branch name"):
            load(repo="repo", branch=bad)
    with pytest.raises(ConfigError, match="must not start with '-'"):
        load(repo="--upload-pack=x")
