"""A hostile vault (vector_sync_tests/hostile.py): every bad document fails alone with its
reason, every other one syncs, nothing prints a traceback, and a file replaced by a folder
of the same name between syncs is handled. The sync runs as its own process, with its memory
capped, so that a YAML bomb that went off would fail this test rather than the machine."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any

import pytest

from vector_sync_tests.conftest import Project
from vector_sync_tests.hostile import (
    remove_deep_folders,
    replace_file_by_folder,
    write_hostile_vault,
)

MEMORY_CAP = 4 << 30


def _cli(project: Project, *args: str) -> tuple[int, Any, str]:
    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    done = subprocess.run([sys.executable, "-m", "vector_sync.cli", *args, "--config",
                           str(project.config_file), "--json"], env=env, capture_output=True,
                          text=True, timeout=600, preexec_fn=cap_memory)
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


def test_a_hostile_vault_fails_each_bad_document_alone_and_syncs_the_rest(
        project: Project, request: pytest.FixtureRequest) -> None:
    outcomes = write_hostile_vault(project.vault)
    request.addfinalizer(lambda: remove_deep_folders(project.vault))
    good = {doc_id for doc_id, outcome in outcomes.items() if outcome == "synced"}
    bad = {doc_id: outcome for doc_id, outcome in outcomes.items() if outcome != "synced"}

    code, report, _ = _cli(project, "sync")
    counts = report["sources"]["notes"]["collections"]["notes"]
    assert code == 1 and counts["added"] == len(good) and counts["failed"] == len(bad)
    assert set(project.points()) == good  # NFC and NFD spellings are two documents
    code, status, _ = _cli(project, "status")
    assert {row["doc_id"]: row["error_code"] for row in status["failed"]} == bad
    assert not (project.root / "vector_sync_pwned").exists()
    assert not os.path.exists("/tmp/vector_sync_pwned")  # the YAML tag built nothing

    replace_file_by_folder(project.vault)
    code, report, _ = _cli(project, "sync")
    counts = report["sources"]["notes"]["collections"]["notes"]
    assert (counts["added"], counts["deleted"], counts["updated"]) == (1, 1, 0)
    assert "becomes a folder.md/inside.md" in project.points()
    assert "becomes a folder.md" not in project.points()
    code, found, _ = _cli(project, "verify")
    assert code == 0 and found["ok"], found
