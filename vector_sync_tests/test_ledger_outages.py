"""The PostgreSQL ledger's connections killed under a running sync (`pg_terminate_backend`,
as a server restart or a failover does): the sync process is stopped at a point of its apply
stage by the fault hook (VECTOR_SYNC_FAULT_STOP_AT), every connection to its database is
terminated, and the process goes on. It finishes (the pool replaces the dead connection),
and the next sync finds everything in place without embedding anything again."""

from __future__ import annotations

import json
import signal

import pytest
from sqlalchemy import create_engine, make_url, text

from vector_sync.core.ledger_db import with_installed_driver
from vector_sync_tests.conftest import Project, long_note, sync_stopped_at


def _terminate_connections(url: str) -> int:
    engine = create_engine(with_installed_driver(make_url(url)))
    try:
        with engine.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"),
                {"db": make_url(url).database}).fetchall())
    finally:
        engine.dispose()


@pytest.mark.parametrize("point", ["apply.write_ahead", "ledger.group_synced"])
def test_ledger_connections_killed_mid_sync_then_the_next_sync_converges(
        project: Project, postgres_url: str, point: str, capsys) -> None:
    project.config["state"]["ledger_url"] = postgres_url
    project.config["qdrant"] = {"batch_size": 2}
    project.save()
    for i in range(4):
        project.note(f"n{i}.md", long_note(f"Note {i}", sections=2))
    sync = sync_stopped_at(project, point)
    assert _terminate_connections(postgres_url) >= 1  # the sync's own connection went
    sync.send_signal(signal.SIGCONT)
    out, err = sync.communicate(timeout=300)
    assert "Traceback" not in err
    first = json.loads(out)["sources"]["notes"]
    # the pool notices the dead connection and opens a new one: the outage is absorbed
    assert sync.returncode == 0 and first["collections"]["notes"]["added"] == 4, err[-3000:]

    code, report = project.cli("sync", capsys=capsys)
    counts = report["sources"]["notes"]["collections"]["notes"]
    assert code == 0 and counts["chunks_embedded"] == 0  # made once, before the outage
    code, found = project.cli("verify", capsys=capsys)
    assert code == 0 and found["ok"], found
