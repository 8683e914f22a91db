"""Sync events end to end, against the real NATS JetStream and Redis on this machine: the
example vault synced, then edited (one note edited, one given tags only, one deleted, one
broken), and what a JetStream consumer and a Redis Streams reader receive compared with what
each sync reported. A loopback webhook receiver checks every signature; NATS taken off the
network (a loopback TCP proxy in front of it, cut) leaves the sync unharmed and the events
waiting, delivered once each when it is back."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from vector_sync.config import load_config
from vector_sync.core.events import outbox
from vector_sync.core.events.cloudevents import (
    DELETED,
    FAILED,
    SYNC_FINISHED,
    SYNCED,
)
from vector_sync.core.events.metrics import render
from vector_sync.core.ledger import open_ledger
from vector_sync.defs.events import backlog_report, drain_sensor
from vector_sync_tests.support import Project, counts
from vector_sync_tests.support.event_sinks import (
    NATS_URL,
    REDIS_URL,
    Names,
    jetstream_events,
    redis_events,
    unique_sinks,
    webhook_receiver,
)
from vector_sync_tests.support.tcp_proxy import TcpProxy

EXAMPLE_VAULT = Path(__file__).resolve().parent.parent / "examples" / "vault"
EDITED, TAGGED = "cooking/Knife Skills.md", "travel/Jet Lag.md"
DELETED_NOTE, BROKEN = "inbox/quick capture.md", "inbox/broken.md"


@pytest.fixture
def sinks() -> Any:
    with unique_sinks() as names:
        yield names


def _with_sinks(project: Project, *sinks: dict[str, Any]) -> None:
    project.config["events"] = {"sinks": list(sinks)}
    project.save()


def _nats(names: Names, url: str = NATS_URL) -> dict[str, Any]:
    return {"kind": "nats", "url": url, "stream": names.stream,
            "subject_prefix": names.prefix, "timeout_s": 3}


def _redis(names: Names) -> dict[str, Any]:
    return {"kind": "redis", "url": REDIS_URL, "stream_key": names.redis_key}


def _sync(project: Project, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    code, report = project.cli("sync", capsys=capsys)
    assert code in (0, 1), report
    assert report["sources"]["notes"]["error"] is None
    return counts(report)


def _edit_vault(vault: Path) -> None:
    tagged = vault / TAGGED
    tagged.write_text("---\ntags: [travel, sleep]\n---\n" + tagged.read_text())
    edited = vault / EDITED
    edited.write_text(edited.read_text() + "\n\nHone the edge before every use.\n")
    (vault / DELETED_NOTE).unlink()
    (vault / BROKEN).write_bytes(b"# Broken\n\xff\xfe\x00 not text")


def _documents(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] != SYNC_FINISHED]


def _outcomes(events: list[dict[str, Any]]) -> Counter[str]:
    """The sync report's counts, as the document events tell them."""
    found: Counter[str] = Counter()
    for event in events:
        data = event["data"]
        if event["type"] == SYNCED:
            found[data["action"]] += 1
            found["chunks_embedded"] += data["chunks_embedded"]
            found["chunks_reused"] += data["chunks_reused"]
        elif event["type"] == DELETED:
            found["deleted"] += 1
        elif event["type"] == FAILED:
            found["failed"] += 1
    return found


def _reported(report: dict[str, int]) -> Counter[str]:
    keys = ("added", "updated", "payload_updated", "deleted", "failed", "chunks_embedded",
            "chunks_reused")
    return Counter({k: report[k] for k in keys if report[k]})


def test_nats_and_redis_receive_exactly_the_transitions_each_sync_reported(
        project: Project, sinks: Names, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(EXAMPLE_VAULT, project.vault, dirs_exist_ok=True)
    _with_sinks(project, _nats(sinks), _redis(sinks),
                {"kind": "file", "path": "events.jsonl"})

    first = _sync(project, capsys)
    _edit_vault(project.vault)
    second = _sync(project, capsys)
    assert (second["updated"], second["payload_updated"], second["deleted"],
            second["failed"]) == (1, 1, 1, 1)

    from_nats, from_redis = jetstream_events(sinks.stream), redis_events(sinks.redis_key)
    assert [e["id"] for e in from_nats] == [e["id"] for e in from_redis]
    assert len({e["id"] for e in from_nats}) == len(from_nats)
    finished = [e for e in from_nats if e["type"] == SYNC_FINISHED]
    assert len(finished) == 2 and all(e["data"]["success"] for e in finished)
    split = from_nats.index(finished[0])
    for events, report in ((from_nats[:split], first), (from_nats[split + 1:-1], second)):
        assert _outcomes(events) == _reported(report)
    assert {(e["type"], e["subject"]) for e in _documents(from_nats[split + 1:])} == {
        (SYNCED, f"notes/{EDITED}"), (SYNCED, f"notes/{TAGGED}"),
        (DELETED, f"notes/{DELETED_NOTE}"), (FAILED, f"notes/{BROKEN}")}
    actions = {e["data"]["doc_id"]: e["data"].get("action")
               for e in _documents(from_nats[split + 1:])}
    assert (actions[EDITED], actions[TAGGED]) == ("updated", "payload_updated")
    broken = next(e for e in from_nats if e["type"] == FAILED)["data"]
    assert broken["error_code"] == "binary" and broken["attempts"] == 1
    assert broken["next_retry_at"]
    # NATS subjects by type, the CloudEvents envelope, the points each document now has
    assert {e["_subject"] for e in from_nats} == {
        f"{sinks.prefix}.document.synced", f"{sinks.prefix}.document.deleted",
        f"{sinks.prefix}.document.failed", f"{sinks.prefix}.sync.finished"}
    assert all(e["specversion"] == "1.0" and e["source"] == "/vector_sync/sources/notes"
               for e in from_nats)
    held = project.points()
    for event in from_nats[split + 1:]:
        if event["type"] == SYNCED:
            assert event["data"]["points"] == len(held[event["data"]["doc_id"]])
    assert second["chunks_reused"] and _outcomes(from_nats[split + 1:])["chunks_reused"] == \
        second["chunks_reused"]
    lines = (project.root / "events.jsonl").read_text().splitlines()
    assert len(lines) == len(from_nats)

    # nothing changed: only the broken note's second failed attempt, and the run's end
    _sync(project, capsys)
    third = jetstream_events(sinks.stream)[len(from_nats):]
    assert [(e["type"], e["subject"]) for e in third] == [(FAILED, f"notes/{BROKEN}"),
                                                           (SYNC_FINISHED, "notes")]
    assert third[0]["data"]["attempts"] == 2


def test_a_webhook_receives_signed_events_and_a_refusal_is_recorded_not_retried(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.note("a.md", "# A\n\nAbout apples.\n")
    project.note("b.md", "# B\n\nAbout bananas.\n")
    secret = "s3cr3t-webhook-key"
    with webhook_receiver(secret, status={FAILED: 400}) as receiver:
        _with_sinks(project, {"kind": "webhook", "url": receiver.url, "secret": secret})
        _sync(project, capsys)
        (project.vault / "b.md").write_bytes(b"\xff\xfe\x00")
        code, report = project.cli("sync", capsys=capsys)
        assert code == 1 and counts(report)["failed"] == 1
        assert receiver.bad_signatures == 0
        assert Counter(e["type"] for e in receiver.received) == {SYNCED: 2, SYNC_FINISHED: 2}
        config = load_config(project.config_file)
        with open_ledger(config.state) as ledger:
            backlog = outbox.backlog(ledger.engine, ["webhook"])["webhook"]
            refused = next(e for e in outbox.tail(ledger.engine) if e.type == FAILED)
            state, attempts, error = outbox.deliveries(ledger.engine, refused.seq)["webhook"]
        assert (backlog.events, backlog.failed) == (0, 1)
        assert (state, attempts) == ("failed", 1) and error and "HTTP 400" in error
    assert secret not in capsys.readouterr().err


def _drain_tick(project: Project) -> dg.SensorResult:
    config = load_config(project.config_file)
    sensor = drain_sensor(config)
    with dg.build_sensor_context() as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _events_delivered_of_last_run(home: Path) -> dg.AssetCheckEvaluation:
    """The `events_delivered` check as the sync run itself recorded it in the instance."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        found = [entry.dagster_event.event_specific_data for entry in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            if entry.dagster_event is not None]
    checks = [e for e in found if isinstance(e, dg.AssetCheckEvaluation)
              and e.check_name == "events_delivered"]
    assert len(checks) == 1, found
    return checks[0]


def test_nats_cut_leaves_the_sync_unharmed_and_every_event_arrives_once_when_back(
        project: Project, sinks: Names, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"  # the CLI's runs go to this instance, as under make dev
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    proxy = TcpProxy(4222)
    try:
        for name in ("a", "b", "c"):
            project.note(f"{name}.md", f"# {name}\n\nA note about {name}.\n")
        _with_sinks(project, _nats(sinks, f"nats://127.0.0.1:{proxy.port}"))
        _sync(project, capsys)
        delivered_before = len(jetstream_events(sinks.stream))

        proxy.down()  # NATS off the network
        project.note("a.md", "# a\n\nA note about apples, rewritten.\n")
        (project.vault / "b.md").unlink()
        code, report = project.cli("sync", capsys=capsys)
        assert code == 0 and counts(report)["updated"] == 1
        config = load_config(project.config_file)
        passed, description, metadata = backlog_report(config, "notes")
        assert not passed and metadata["nats_pending"] == 2 and "nats: 2 waiting" in (
            description or "")
        in_run = _events_delivered_of_last_run(home)  # the sync's own run shows it too
        assert not in_run.passed and in_run.severity == dg.AssetCheckSeverity.WARN
        assert "nats: 2 waiting" in (in_run.description or "")
        assert 'vector_sync_events_pending{sink="nats"} 3.0' in render(config)  # + finished
        tick = _drain_tick(project)  # still down: the check says so again
        assert tick.asset_events and not tick.asset_events[0].passed

        proxy.up()
        tick = _drain_tick(project)
        assert tick.asset_events and all(e.passed for e in tick.asset_events)
        received = jetstream_events(sinks.stream)
        assert len(received) == delivered_before + 3
        assert len({e["id"] for e in received}) == len(received)
        assert [e["type"] for e in received[delivered_before:]] == [SYNCED, DELETED,
                                                                    SYNC_FINISHED]
        assert 'vector_sync_events_pending{sink="nats"} 0.0' in render(config)
    finally:
        proxy.down()


def test_a_run_the_daemon_sees_end_is_recorded_once_by_the_run_status_sensor(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    from vector_sync.definitions import build_definitions
    from vector_sync.defs.jobs import TAG_SOURCE, TAG_TRIGGER, sync_job_for

    project.note("a.md", "# A\n\nApples.\n")
    _with_sinks(project, {"kind": "file", "path": "events.jsonl"})
    config = load_config(project.config_file)
    defs = build_definitions(str(project.config_file))
    instance = dg.DagsterInstance.ephemeral()
    result = sync_job_for(defs, config, "notes").execute_in_process(
        partition_key="notes", instance=instance,
        tags={TAG_SOURCE: "notes", TAG_TRIGGER: "watch"})
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    ended = next(entry.dagster_event for entry in instance.all_logs(result.run_id)
                 if entry.dagster_event is not None
                 and entry.dagster_event.event_type == dg.DagsterEventType.RUN_SUCCESS)
    sensor = defs.resolve_sensor_def("events_run_succeeded")
    for _ in range(2):  # seen twice (a daemon restart): recorded once
        sensor(dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=ended, dagster_instance=instance,
            dagster_run=run))
    lines = (project.root / "events.jsonl").read_text().splitlines()
    finished = [e for e in map(json.loads, lines) if e["type"] == SYNC_FINISHED]
    assert len(finished) == 1
    data = finished[0]["data"]
    assert (data["run_id"], data["trigger"], data["success"]) == (result.run_id, "watch", True)
    assert data["collections"]["notes"]["added"] == 1
    assert data["collections"]["notes"]["chunks_embedded"] == 1
    assert 'vector_sync_sync_duration_seconds_count{source="notes"} 1.0' in \
        render(config)
