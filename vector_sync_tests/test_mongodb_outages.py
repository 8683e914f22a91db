"""MongoDB stopped in the middle of a sync: the sync process is stopped by the fault hook
(VECTOR_SYNC_FAULT_STOP_AT) after it listed the collection and before it read the changed
documents, the server goes down, and the sync goes on. It fails naming the server and the
collection, and deletes and rewrites nothing; with the server back, the next sync converges."""

from __future__ import annotations

import json
import random
import signal
import socket
from pathlib import Path

from pymongo import MongoClient

from vector_sync_tests.support import start_sync, sync_stopped_at
from vector_sync_tests.support.mongo_server import running_server
from vector_sync_tests.test_mongodb_sync import COLLECTIONS, Clock, mongo_project, tool


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_mongodb_going_down_mid_sync_deletes_nothing_and_the_next_sync_converges(
        tmp_path: Path, monkeypatch, capsys) -> None:
    port, storage = _free_port(), tmp_path / "mongo"
    monkeypatch.setenv("MONGODB_URI", f"mongodb://127.0.0.1:{port}/")
    rng, clock = random.Random(5), Clock()
    with running_server(storage, port=port) as server, MongoClient(server.uri) as client:
        tools = client["outage"]["tools"]
        tools.insert_many([tool(rng, i, clock) for i in range(20)])
        # listed on every sync: the outage is staged between the listing and the reads
        project = mongo_project(tmp_path / "p", "outage", full_listing_every_s=0)
        first = start_sync(project)
        assert first.wait(300) == 0, first.communicate()[1][-3000:]
        held = {c: project.points(c) for c in COLLECTIONS}
        for i in range(5):
            tools.update_one({"name": {"$regex": f" {i}$"}},
                             {"$set": {"description": f"rewritten {i}", "updatedAt": clock.tick()}})
        second = sync_stopped_at(project, "snapshot.scanned")
    # the server is down now, with the sync stopped between listing and reading
    second.send_signal(signal.SIGCONT)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 1 and "Traceback" not in err
    error = json.loads(out)["sources"]["tools"]["error"]
    assert f"127.0.0.1:{port}" in error and "outage.tools" in error
    assert {c: project.points(c) for c in COLLECTIONS} == held  # nothing deleted or rewritten

    with running_server(storage, port=port):
        code, report = project.cli("sync", capsys=capsys)
        assert code == 0
        assert report["sources"]["tools"]["collections"]["tools"]["updated"] == 5
        code, found = project.cli("verify", capsys=capsys)
        assert code == 0 and found["ok"]
