"""A hostile vault (vector_sync_tests/support/hostile.py): every bad document fails alone with its
reason, every other one syncs, nothing prints a traceback, and a file replaced by a folder
of the same name between syncs is handled. The sync runs as its own process, with its memory
capped, so that a YAML bomb that went off would fail this test rather than the machine."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from vector_sync_tests.support import Project
from vector_sync_tests.support.hostile import (
    MONGO_LEVELS,
    hostile_mongo_documents,
    remove_deep_folders,
    replace_file_by_folder,
    write_hostile_vault,
)
from vector_sync_tests.support.mongo_server import running_server

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


def test_hostile_mongodb_documents_fail_alone_and_the_rest_sync_stably(
        tmp_path: Path, project: Project) -> None:
    """Every BSON type, 100 levels of nesting, keys with dots, dollars or nothing, odd _id
    types, a 16 MB document, over the wire (SecantusDB): each document syncs or fails with
    its code, a second sync finds nothing changed (every value hashes the same every time),
    and verify finds Qdrant consistent."""
    documents = hostile_mongo_documents()
    with running_server(tmp_path / "mongo") as server, MongoClient(
            server.uri, uuidRepresentation="standard") as client:
        client["db"]["tools"].insert_many([document for document, _ in documents])
        project.config["sources"] = {"tools": {
            "kind": "mongodb", "uri": server.uri, "database": "db", "collection": "tools",
            "collections": ["tools"]}}  # max_document_bytes: 2 MB by default
        project.config["collections"] = {"tools": {"embed": ["name", "body"],
                                                   "payload": ["meta"]}}
        project.save()

        code, report, _ = _cli(project, "sync")
        counts = report["sources"]["tools"]["collections"]["tools"]
        outcomes = [outcome for _, outcome in documents]
        assert code == 1 and counts["failed"] == outcomes.count("too_large") == 1
        assert counts["added"] == outcomes.count("synced")
        assert counts["unchanged"] == outcomes.count("no_points") == 1
        code, status, _ = _cli(project, "status")
        assert [(row["doc_id"], row["error_code"]) for row in status["failed"]] == [
            ("16 MB", "too_large")]
        points = project.points("tools")
        assert len(points) == outcomes.count("synced")
        typed = points["every type"][0]
        json.dumps(typed, allow_nan=False)  # strict JSON, whatever the BSON type
        assert typed["meta"]["decimal_nan"] == "NaN" and typed["meta"]["nan"] == "NaN"
        assert typed["meta"]["int64"] == 2**63 - 1 and typed["meta"]["legacy_uuid"]
        deep = points["deep"][0]["meta"]
        for level in range(1, MONGO_LEVELS - 1):
            deep = deep[f"level{level}"]
        assert deep == "the bottom of a deep document"
        assert points["odd keys"][0]["meta"] == {"x.y": 1, "$z": 2}
        assert "dotted" in points["odd keys"][0]["text"]

        code, report, _ = _cli(project, "sync")
        counts = report["sources"]["tools"]["collections"]["tools"]
        assert (counts["unchanged"], counts["chunks_embedded"]) == (len(points) + 1, 0)
        code, found, _ = _cli(project, "verify")
        assert code == 0 and found["ok"], found
