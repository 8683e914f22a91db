"""A Git repository broken or busy under a running sync: the sync is stopped by the fault hook
(VECTOR_SYNC_FAULT_STOP_AT) after it listed the commit's files, the repository is changed
underneath it, and the sync goes on. A blob deleted or corrupted: the sync fails with the
reason and deletes nothing; once the object is back, the next sync mirrors the commit. The
repository repacked and locked by another git process: the sync reads it all the same."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from vector_sync_tests.support import sync_stopped_at
from vector_sync_tests.test_git_sync import GitProject


@pytest.mark.parametrize("fault", ["lost", "corrupted"])
def test_a_blob_lost_or_corrupted_mid_sync_fails_clearly_deletes_nothing_then_mirrors(
        tmp_path: Path, capsys, fault: str) -> None:
    project = GitProject(tmp_path)
    project.repo.commit("four notes", {f"n{i}.md": f"# Note {i}\n\nFirst text {i}.\n"
                                       for i in range(4)})
    code, _ = project.sync(capsys)
    assert code == 0
    project.repo.commit("two edits", {"n0.md": "# Note 0\n\nSecond text 0.\n",
                                      "n1.md": "# Note 1\n\nSecond text 1.\n"})
    blob = project.repo.blob("n0.md")
    loose = project.repo.path / ".git" / "objects" / blob[:2] / blob[2:]
    sync = sync_stopped_at(project, "snapshot.scanned")
    saved = loose.read_bytes()
    if fault == "lost":  # the object store loses the blob the sync is about to read
        loose.unlink()
    else:  # a disk error, a bad copy
        loose.chmod(0o644)
        loose.write_bytes(b"not zlib at all" * 10)
    sync.send_signal(signal.SIGCONT)
    out, err = sync.communicate(timeout=300)
    assert sync.returncode == 1 and "Traceback" not in err
    error = json.loads(out)["sources"]["docs"]["error"]
    assert f"object {blob} cannot be read" in error
    if fault == "corrupted":
        assert f"unable to unpack {blob} header" in error  # git's own words
    points = project.points("docs")
    assert set(points) == {f"n{i}.md" for i in range(4)}  # nothing deleted
    assert "First text 0" in points["n0.md"][0]["text"]  # nor overwritten with nothing

    loose.write_bytes(saved)
    code, _ = project.sync(capsys)
    assert code == 0
    project.assert_mirrors()


def test_a_repository_repacked_and_locked_by_git_mid_sync_is_read_all_the_same(
        tmp_path: Path, capsys) -> None:
    """Another git process at work on the repository while the sync reads it: `git gc`
    moves every loose object into a pack, and a commit in progress holds the index and
    branch locks. The sync takes no lock of git's and finds the objects in the pack."""
    project = GitProject(tmp_path)
    project.repo.commit("four notes", {f"n{i}.md": f"# Note {i}\n\nFirst text {i}.\n"
                                       for i in range(4)})
    code, _ = project.sync(capsys)
    assert code == 0
    project.repo.commit("two edits", {"n0.md": "# Note 0\n\nSecond text 0.\n",
                                      "n1.md": "# Note 1\n\nSecond text 1.\n"})
    blob = project.repo.blob("n0.md")
    git_dir = project.repo.path / ".git"
    sync = sync_stopped_at(project, "snapshot.scanned")
    subprocess.run(["git", "-C", str(project.repo.path), "gc", "--prune=now", "--quiet"],
                   check=True)
    assert not (git_dir / "objects" / blob[:2] / blob[2:]).exists()  # packed now
    locks = [git_dir / "index.lock", git_dir / "refs" / "heads" / "main.lock"]
    for lock in locks:
        lock.write_text("")
    sync.send_signal(signal.SIGCONT)
    out, err = sync.communicate(timeout=300)
    assert sync.returncode == 0, err[-3000:]
    assert json.loads(out)["sources"]["docs"]["collections"]["docs"]["updated"] == 2
    for lock in locks:
        lock.unlink()
    project.assert_mirrors()
