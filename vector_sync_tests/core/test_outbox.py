"""The outbox in the ledger, on SQLite and on the real PostgreSQL: events written in the
transaction of the ledger change they describe (both or neither), one row per event id,
per-sink delivery records, pruning after the retention; no rows at all without sinks; and
`events tail` / `events redeliver` on a synced project."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vector_sync.config import load_config
from vector_sync.core.events import outbox
from vector_sync.core.events.cloudevents import SYNC_FINISHED, SYNCED, Event, make
from vector_sync.core.ledger import Ledger, LedgerRow, LedgerUnavailable, open_ledger
from vector_sync_tests.support import Project

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    url = (f"sqlite:///{tmp_path / 'ledger.sqlite'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    with Ledger(url) as opened:
        yield opened


def _row(doc_id: str) -> LedgerRow:
    return LedgerRow(source="notes", collection="notes", doc_id=doc_id, status="synced",
                     content_hash="c", payload_hash="p", chunk_count=1)


def _event(doc_id: str, time: datetime = NOW, version: str = "1") -> Event:
    return make(SYNCED, "notes", "notes", f"notes/{doc_id}", time,
                {"doc_id": doc_id}, version)


def test_events_are_written_with_their_ledger_rows_or_not_at_all(ledger: Ledger) -> None:
    ledger.upsert([_row("a.md")], [_event("a.md")])
    broken = _event("b.md")._replace(type=None)  # type: ignore[arg-type]
    with pytest.raises(LedgerUnavailable, match="NOT NULL|not-null"):
        ledger.upsert([_row("b.md")], [broken])
    assert set(ledger.rows("notes", "notes")) == {"a.md"}  # b.md's row rolled back
    with pytest.raises(LedgerUnavailable, match="NOT NULL|not-null"):
        ledger.delete("notes", "notes", ["a.md"], [broken])  # the row stays
    assert set(ledger.rows("notes", "notes")) == {"a.md"}


def test_an_event_recorded_twice_is_one_row_and_the_order_is_kept(ledger: Ledger) -> None:
    first, second = _event("a.md"), _event("b.md")
    ledger.upsert([_row("a.md")], [first])
    ledger.upsert([_row("a.md"), _row("b.md")], [first, second])  # a repeated transition
    assert [e.event_id for e in outbox.pending(ledger.engine, "nats")] == [
        first.event_id, second.event_id]
    assert outbox.count(ledger.engine) == 2


def test_each_sink_has_its_own_backlog_and_pruning_waits_for_every_sink(
        ledger: Ledger) -> None:
    old, new = NOW - timedelta(days=10), NOW
    ledger.record_events([_event("a.md", old), _event("b.md", old), _event("c.md", new)])
    a, b, c = (e.seq for e in outbox.pending(ledger.engine, "nats"))
    outbox.mark(ledger.engine, "nats", [a, b, c], "delivered")
    outbox.mark(ledger.engine, "redis", [a], "delivered")
    outbox.mark(ledger.engine, "redis", [b], "retrying", "connection refused")
    outbox.mark(ledger.engine, "redis", [b], "retrying", "connection refused")
    backlog = outbox.backlog(ledger.engine, ["nats", "redis"])
    assert backlog["nats"].events == 0
    assert (backlog["redis"].events, backlog["redis"].oldest) == (2, old)
    assert backlog["redis"].last_error == "connection refused"
    assert outbox.deliveries(ledger.engine, b)["redis"] == ("retrying", 2,
                                                            "connection refused")
    # a (old, both sinks have it) goes; b (redis lacks it) and c (recent) stay
    assert outbox.prune(ledger.engine, ["nats", "redis"], NOW - timedelta(days=7)) == 1
    assert [e.seq for e in outbox.tail(ledger.engine)] == [b, c]
    assert outbox.deliveries(ledger.engine, a) == {}
    # redelivery: the sink takes everything since then again
    assert outbox.forget_deliveries(ledger.engine, "nats", NOW - timedelta(days=30)) == 2
    assert [e.seq for e in outbox.pending(ledger.engine, "nats")] == [b, c]


def _sync(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0, report


def test_without_sinks_a_sync_records_no_event(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.note("a.md", "# A\n\nApples.\n")
    _sync(project, capsys)
    project.note("a.md", "# A\n\nApples and pears.\n")
    _sync(project, capsys)
    with open_ledger(load_config(project.config_file).state) as ledger:
        assert outbox.count(ledger.engine) == 0
        assert ledger.counts()[("notes", "notes")]["synced"] == 1


def test_tail_shows_the_outbox_and_redeliver_sends_the_same_ids_again(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.note("a.md", "# A\n\nApples.\n")
    project.note("b.md", "# B\n\nBananas.\n")
    project.config["events"] = {"sinks": [{"kind": "file", "path": "events.jsonl"}]}
    project.save()
    _sync(project, capsys)
    lines = (project.root / "events.jsonl").read_text().splitlines()
    sent = [json.loads(line) for line in lines]
    assert [e["type"] for e in sent] == [SYNCED, SYNCED, SYNC_FINISHED]

    capsys.readouterr()
    from vector_sync.cli import main

    assert main(["events", "tail", "--config", str(project.config_file)]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert len(shown) == 3 and "notes/a.md" in shown[0] and "file=delivered" in shown[0]
    code, tail = project.cli("events", "tail", "--type", "sync.finished", capsys=capsys)
    assert code == 0 and tail["event"]["id"] == sent[-1]["id"]

    code, report = project.cli("events", "redeliver", "--sink", "file", "--since", "1h",
                               capsys=capsys)
    assert code == 0 and (report["resent"], report["delivered"]) == (3, 3)
    again = [json.loads(line) for line in
             (project.root / "events.jsonl").read_text().splitlines()[3:]]
    assert [e["id"] for e in again] == [e["id"] for e in sent]
    code, report = project.cli("events", "redeliver", "--sink", "nats", "--since", "1h",
                               capsys=capsys)
    assert code == 2 and "unknown sink 'nats'" in report["error"]
