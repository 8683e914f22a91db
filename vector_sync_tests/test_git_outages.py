"""A Git repository corrupted under a running sync: the sync is stopped by the fault hook
(VECTOR_SYNC_FAULT_STOP_AT) after it listed the commit's files, the blob of a changed file is
deleted from the object store, and the sync goes on. It fails with the reason and deletes
nothing; once the object is back, the next sync mirrors the commit."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from vector_sync_tests.conftest import sync_stopped_at
from vector_sync_tests.test_git_sync import GitProject


def test_a_blob_lost_mid_sync_fails_clearly_deletes_nothing_and_the_next_sync_mirrors(
        tmp_path: Path, capsys) -> None:
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
    loose.unlink()  # the object store loses the blob the sync is about to read
    sync.send_signal(signal.SIGCONT)
    out, err = sync.communicate(timeout=300)
    assert sync.returncode == 1 and "Traceback" not in err
    report = json.loads(out)["sources"]["docs"]
    assert f"object {blob} cannot be read" in report["error"]
    points = project.points("docs")
    assert set(points) == {f"n{i}.md" for i in range(4)}  # nothing deleted
    assert "First text 0" in points["n0.md"][0]["text"]  # nor overwritten with nothing

    loose.write_bytes(saved)
    code, _ = project.sync(capsys)
    assert code == 0
    project.assert_mirrors()
