"""The PostgreSQL ledger failing under a running sync. The sync process is stopped at a point
of its apply stage by the fault hook (VECTOR_SYNC_FAULT_STOP_AT), the ledger is broken
underneath it, and the process goes on:

- every connection terminated (`pg_terminate_backend`, as a restart or failover does): the
  pool replaces the dead connection and the sync finishes;
- the server unreachable for a while (a loopback proxy in front of the real server, taken
  down and brought back): the sync retries its ledger calls and finishes; unreachable for
  longer than `state.ledger_outage_s`: the sync fails with a clear message.

Either way the next sync finds everything in place without embedding anything again."""

from __future__ import annotations

import json
import signal
import threading

import pytest
from sqlalchemy import create_engine, make_url, text

from vector_sync.core.ledger.db import with_installed_driver
from vector_sync_tests.support import Project, long_note, sync_stopped_at
from vector_sync_tests.support.tcp_proxy import TcpProxy


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


@pytest.mark.parametrize("outage", ["brief", "too_long"])
def test_ledger_server_unreachable_mid_sync_is_waited_for_then_fails_clearly(
        project: Project, postgres_url: str, outage: str, capsys) -> None:
    url = make_url(postgres_url)
    proxy = TcpProxy(url.port or 5432)
    try:
        project.config["state"]["ledger_url"] = url.set(port=proxy.port).render_as_string(False)
        project.config["state"]["ledger_outage_s"] = 60 if outage == "brief" else 2
        project.config["qdrant"] = {"batch_size": 2}
        project.save()
        for i in range(4):
            project.note(f"n{i}.md", long_note(f"Note {i}", sections=2))
        sync = sync_stopped_at(project, "ledger.group_synced")
        proxy.down()  # the open connection is reset, new ones refused
        sync.send_signal(signal.SIGCONT)
        if outage == "brief":
            back = threading.Timer(3, proxy.up)
            back.start()
        out, err = sync.communicate(timeout=300)
        assert "Traceback" not in err
        assert "is unreachable" in err  # it said what it was waiting for
        if outage == "brief":
            back.join()
            first = json.loads(out)["sources"]["notes"]
            assert sync.returncode == 0, err[-3000:]
            assert first["collections"]["notes"]["added"] == 4
        else:
            assert sync.returncode == 1
            error = json.loads(out)["sources"]["notes"]["error"]
            assert "unreachable for 2 s (state.ledger_outage_s)" in error
            assert f"127.0.0.1:{proxy.port}" in error
            proxy.up()

        code, report = project.cli("sync", capsys=capsys)
        counts = report["sources"]["notes"]["collections"]["notes"]
        assert code == 0 and counts["chunks_embedded"] == 0  # made once, before the outage
        assert sorted(project.points()) == [f"n{i}.md" for i in range(4)]
        code, found = project.cli("verify", capsys=capsys)
        assert code == 0 and found["ok"], found
    finally:
        proxy.down()
