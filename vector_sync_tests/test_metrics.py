"""`vector-sync metrics serve` scraped by a real Prometheus server (Debian's package, started
here on a free loopback port with a temporary config, in its own process group), PromQL
answers compared with the ledger; the alert rules checked and unit-tested with promtool; an
inconsistency a sync's spot check finds, as a metric and as an event."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from vector_sync.config import load_config
from vector_sync.core.events.cloudevents import INCONSISTENT
from vector_sync.core.events.metrics import render
from vector_sync.core.hashing import point_id
from vector_sync.core.ledger import open_ledger
from vector_sync_tests.support import Project, counts, service_missing

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        service_missing("promtool is not installed (Debian's prometheus package: make test)")
    assert found is not None
    return found


def test_the_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    promtool = _promtool()
    checked = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=RULES,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    tested = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=RULES,
                            capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    config = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=RULES,
                            capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _process(args: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own group, stopped (SIGTERM, then SIGKILL) by its pid."""
    process = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, **kwargs)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _scraped(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until Prometheus has scraped vector_sync once (its first scrape comes within a
    scrape interval of its start)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if _query(port, "vector_sync_ledger_up == 1"):
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    raise AssertionError("Prometheus never scraped vector-sync metrics serve")


def test_prometheus_scrapes_metrics_serve_and_promql_returns_the_ledger_counts(
        project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        service_missing("prometheus is not installed (Debian's prometheus package: make test)")
    assert prometheus is not None
    for name in ("a", "b", "c", "d"):
        project.note(f"{name}.md", f"# {name}\n\nA note about {name}.\n")
    project.note("bad.md", "---\ntitle: [unclosed\n---\nbody\n")
    project.config["events"] = {"sinks": [{"kind": "file", "path": "events.jsonl"}]}
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1 and counts(report)["added"] == 4 and counts(report)["failed"] == 1
    config = load_config(project.config_file)
    with open_ledger(config.state) as ledger:
        statuses = ledger.counts()[("notes", "notes")]

    metrics_port, prometheus_port = _free_port(), _free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES / "rules.yml")],
        "scrape_configs": [{"job_name": "vector_sync", "static_configs": [
            {"targets": [f"127.0.0.1:{metrics_port}"]}]}]}))
    serve = [sys.executable, "-m", "vector_sync.cli", "metrics", "serve", "--port",
             str(metrics_port), "--config", str(project.config_file)]
    with _process(serve), _process([
            prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}"]) as server:
        _scraped(prometheus_port, server)
        documents = {r["metric"]["status"]: float(r["value"][1]) for r in _query(
            prometheus_port, 'vector_sync_documents{source="notes",collection="notes"}')}
        assert documents == {status: float(n) for status, n in statuses.items()}
        assert documents["synced"] == 4 and documents["failed"] == 1

        def one(promql: str) -> float:
            result = _query(prometheus_port, promql)
            assert len(result) == 1, result
            return float(result[0]["value"][1])

        assert one('vector_sync_chunks_embedded_total{source="notes"}') == \
            counts(report)["chunks_embedded"]
        assert one('vector_sync_points_written_total{collection="notes"}') == 4
        assert one('sum(vector_sync_sync_duration_seconds_count{source="notes"})') == 1
        assert one('vector_sync_events_pending{sink="file"}') == 0
        assert one("time() - vector_sync_last_success_timestamp_seconds") < 3600
        assert one('vector_sync_inconsistent_documents{kind="missing"}') == 0


def test_a_point_lost_behind_the_syncs_back_shows_as_inconsistent(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b", "c"):
        project.note(f"{name}.md", f"# {name}\n\nA note about {name}.\n")
    project.config["events"] = {"sinks": [{"kind": "file", "path": "events.jsonl"}]}
    project.save()
    assert project.cli("sync", capsys=capsys)[0] == 0
    with project.qdrant() as store:
        store.delete("notes", [point_id("notes", "b.md", 0)])

    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and report["sources"]["notes"]["warnings"]
    config = load_config(project.config_file)
    assert 'vector_sync_inconsistent_documents{collection="notes",kind="missing"} 1.0' in \
        render(config)
    events = [json.loads(line) for line in
              (project.root / "events.jsonl").read_text().splitlines()]
    found = [e for e in events if e["type"] == INCONSISTENT]
    assert len(found) == 1 and found[0]["subject"] == "notes"
    assert (found[0]["data"]["missing"], found[0]["data"]["doc_ids"]) == (1, ["b.md"])

    assert project.cli("repair", capsys=capsys)[0] == 0
    assert project.cli("sync", capsys=capsys)[0] == 0
    assert 'vector_sync_inconsistent_documents{collection="notes",kind="missing"} 0.0' in \
        render(load_config(project.config_file))
