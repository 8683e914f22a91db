"""End to end through the CLI with the real SurrealDB engine embedded in this process
(`surrealkv://`, the official SDK), the real model, embedded Qdrant and real Dagster runs:
one table of articles fanned out to two Qdrant collections that embed different fields."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from surrealdb import RecordID, Surreal

from vector_sync.config import load_config
from vector_sync.core.ledger import open_ledger
from vector_sync.core.pipeline.state_files import SNAPSHOT, StateFiles, read_rows
from vector_sync.sources.surrealdb.ids import record_literal
from vector_sync_tests.support import Project, counts, listed

RECORDS = 200
COLLECTIONS = {
    "articles": {"embed": ["title", "body"], "payload": ["tags", "author", "published"]},
    "summaries": {"embed": ["summary"], "payload": ["stats.views"]},
}
WORDS = ["river", "stone", "garden", "lantern", "harbor", "meadow", "copper", "violet",
         "orbit", "canyon", "pepper", "signal", "maple", "ember", "quartz", "willow"]
NOTHING = {"added": 0, "updated": 0, "payload_updated": 0, "deleted": 0, "failed": 0,
           "chunks_embedded": 0}


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choices(WORDS, k=count))


def article(rng: random.Random, index: int) -> dict[str, Any]:
    return {"title": f"Article {index}: {words(rng, 3)}", "body": words(rng, 60),
            "summary": words(rng, 12), "tags": rng.sample(WORDS, 2),
            "stats": {"views": rng.randint(0, 1000), "updated": datetime(2026, 2, 1, tzinfo=UTC)},
            "published": datetime(2026, 1, 1 + index % 28, tzinfo=UTC),
            "author": RecordID("author", index % 7)}


class SurrealProject(Project):
    """A SurrealKV database under root/db holding table `article`, and a config syncing it."""

    def __init__(self, root: Path, changefeed: bool = True, **source: Any) -> None:
        root.mkdir(exist_ok=True)
        super().__init__(root)
        self.url = f"surrealkv://{root / 'db'}"
        with self.db() as db:
            db.query("DEFINE TABLE IF NOT EXISTS article" +
                     (" CHANGEFEED 1d" if changefeed else ""))
        self.config["sources"] = {"articles": {
            "kind": "surrealdb", "url": self.url, "namespace": "shop", "database": "cms",
            "table": "article", "collections": list(COLLECTIONS), **source}}
        self.config["collections"] = COLLECTIONS
        self.save()

    @contextmanager
    def db(self) -> Iterator[Any]:
        """A connection of the application's own, beside the one each sync opens."""
        db = Surreal(self.url)
        db.use("shop", "cms")
        try:
            yield db
        finally:
            db.close()

    def sync(self, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
        return self.cli("sync", capsys=capsys)

    def seed(self, records: int) -> None:
        rng = random.Random(16)
        with self.db() as db:
            for i in range(records):
                db.query("CREATE $rid CONTENT $data",
                         {"rid": RecordID("article", i), "data": article(rng, i)})

    def reads(self) -> int:
        """Records the last snapshot read (the rest were skipped on their hints)."""
        path = StateFiles(self.root / "state").snapshot("articles")
        return sum(row.state == "read" for row in read_rows(path, SNAPSHOT, ["state"]))


@pytest.fixture
def project(tmp_path: Path) -> SurrealProject:
    project = SurrealProject(tmp_path / "p")
    project.seed(RECORDS)
    return project


def assert_counts(report: dict[str, Any], expected: dict[str, dict[str, int]]) -> None:
    """Each collection's counts in `report` include `expected` (collection -> counts)."""
    for collection, wanted in expected.items():
        got = counts(report, "articles", collection)
        assert {k: got[k] for k in wanted} == wanted, collection


def apply_mix(db: Any) -> None:
    """5 created, 3 bodies (articles only), 2 summaries (summaries only), 4 view counts
    (payload of summaries only), 3 deleted."""
    rng = random.Random(99)
    for i in range(RECORDS, RECORDS + 5):
        db.query("CREATE $rid CONTENT $data", {"rid": RecordID("article", i), "data": article(
            rng, i)})
    for i in (10, 11, 12):
        db.query("UPDATE $rid SET body = $b", {"rid": RecordID("article", i), "b": (
            "A lighthouse keeper logs every passing ship in a leather book.")})
    for i in (20, 21):
        db.query("UPDATE $rid SET summary = 'Tides explained simply.'",
                 {"rid": RecordID("article", i)})
    for i in (30, 31, 32, 33):
        db.query("UPDATE $rid SET stats.views = 424242", {"rid": RecordID("article", i)})
    for i in (40, 41, 42):
        db.query("DELETE $rid", {"rid": RecordID("article", i)})


EXPECTED = {
    "articles": {"added": 5, "updated": 3, "payload_updated": 0, "deleted": 3, "failed": 0},
    "summaries": {"added": 5, "updated": 2, "payload_updated": 4, "deleted": 3, "failed": 0},
}
UNCHANGED = {collection: NOTHING for collection in COLLECTIONS}


def check_qdrant(project: SurrealProject) -> None:
    with project.db() as db:
        records = {str(r["id"]): r for r in db.query("SELECT *, <string> id AS id FROM article")}
    for collection in COLLECTIONS:
        points = project.points(collection)
        assert set(points) == set(records)
    articles, summaries = project.points("articles"), project.points("summaries")
    assert "lighthouse keeper" in articles["article:10"][0]["text"]
    assert "Tides explained" in summaries["article:20"][0]["text"]
    assert summaries["article:30"][0]["stats"] == {"views": 424242}
    assert articles["article:1"][0]["author"] == "author:1"
    assert articles["article:1"][0]["published"] == "2026-01-02T00:00:00Z"


@pytest.mark.parametrize("settings", [{}, {"updated_field": "stats.updated"}],
                         ids=["hash", "updated_field"])
def test_changefeed_reads_only_changed_records_and_counts_are_exact(project, capsys, settings):
    if settings:
        project.config["sources"]["articles"].update(settings)
        project.save()
    code, report = project.sync(capsys)
    assert code == 0, report
    for collection in COLLECTIONS:
        assert counts(report, "articles", collection)["added"] == RECORDS
    assert project.reads() == RECORDS

    with project.db() as db:
        apply_mix(db)
    code, report = project.sync(capsys)
    assert code == 0, report
    assert_counts(report, EXPECTED)
    assert project.reads() == 5 + 3 + 2 + 4  # the changefeed named them: nothing else read
    check_qdrant(project)

    code, report = project.sync(capsys)
    assert_counts(report, UNCHANGED)
    assert project.reads() == 0
    code, verified = project.cli("verify", capsys=capsys)
    assert code == 0 and verified["ok"], verified


def test_a_complete_change_feed_spares_the_listing_until_its_safety_period(
        project, capsys, caplog):
    caplog.set_level("INFO", logger="vector_sync")
    assert project.sync(capsys)[0] == 0 and listed(caplog)  # the first sync lists
    with project.db() as db:
        apply_mix(db)
    code, report = project.sync(capsys)
    assert code == 0 and not listed(caplog), report
    assert_counts(report, EXPECTED)  # the feed's deletions are deleted without a listing
    check_qdrant(project)

    config = load_config(project.config_file)
    with open_ledger(config.state) as ledger:  # the safety period has passed
        ledger.set_state("articles", "listed_at", "0")
    with project.db() as db:
        db.query("DELETE article:60")
    code, report = project.sync(capsys)
    assert code == 0 and listed(caplog)
    assert counts(report, "articles", "articles")["deleted"] == 1
    assert project.sync(capsys)[0] == 0 and not listed(caplog)

    project.config["sources"]["articles"]["full_listing_every_s"] = 0
    project.save()
    assert project.sync(capsys)[0] == 0 and listed(caplog)
    code, verified = project.cli("verify", capsys=capsys)
    assert code == 0 and verified["ok"], verified


def test_without_changefeed_or_beyond_its_reach_the_scan_converges(project, capsys, tmp_path):
    code, _ = project.sync(capsys)
    # the feed no longer reaches the applied versionstamp (as after its retention passed):
    # every collection's checkpoint is moved before the feed's first entry
    config = load_config(project.config_file)
    with open_ledger(config.state) as ledger:
        for collection in COLLECTIONS:
            ledger.set_state("articles", f"checkpoint:{collection}", "1")
    with project.db() as db:
        apply_mix(db)
    code, report = project.sync(capsys)
    assert code == 0, report
    assert_counts(report, EXPECTED)
    check_qdrant(project)

    plain = SurrealProject(tmp_path / "plain", changefeed=False)
    plain.seed(20)
    assert plain.sync(capsys)[0] == 0
    with plain.db() as db:
        db.query("UPDATE article:3 SET body = 'Kites need wind.'")
    code, report = plain.sync(capsys)
    assert counts(report, "articles", "articles")["updated"] == 1 and plain.reads() == 1


# decimals, datetimes and durations inside array and object ids: printed as a float, a
# Python datetime or a Python Duration, their text parsed back as another record or none
EXOTIC_IDS = ["article:[1.5dec]", "article:[2026, 10000000000dec]",
              "article:[d'2024-01-01T00:00:00Z']", "article:[1s]",
              "article:{ at: d'2024-05-06T07:08:09.5Z', price: 19.99dec, took: 1h30m }"]


def test_every_record_id_kind_round_trips(tmp_path, capsys):
    project = SurrealProject(tmp_path / "ids", write_back=True)
    ids = ["article:7", "article:slug_text", "article:⟨with space⟩", "article:[2026, 'x']",
           "article:{ lang: 'en', n: 1 }", "article:u'018f8a4e-6b1e-7c3a-9d2e-123456789abc'",
           *EXOTIC_IDS]
    with project.db() as db:
        for index, record in enumerate(ids):
            db.query(f"CREATE {record} SET title = $t, body = 'kind ' + <string> $i, "
                     "summary = 'ids'", {"t": f"record {index}", "i": index})
        server_forms = set(db.query("SELECT VALUE <string> id FROM article"))
    assert project.sync(capsys)[0] == 0
    held = project.points("articles")
    assert set(ids[:6]) <= set(held) and len(held) == len(ids)
    # each doc id names its own record: parsed back, the engine prints that record's id
    with project.db() as db:
        assert {db.query("RETURN <string> type::record($s)", {"s": record_literal(doc_id)})
                for doc_id in held} == server_forms
    # the write-back (a source opened afresh, without a scan) parsed each doc id back into
    # its record
    with project.db() as db:
        statuses = db.query("SELECT VALUE syncMetadata.articles.status FROM article")
    assert statuses == ["synced"] * len(ids)


def test_records_with_exotic_ids_survive_listed_syncs(tmp_path, capsys):
    """No change feed and an `updated_field` the records leave unset: every sync lists the
    table and reads these records whole to hash them. Each must stay in Qdrant."""
    project = SurrealProject(tmp_path / "listed", changefeed=False,
                             updated_field="stats.updated")
    with project.db() as db:
        for index, record in enumerate(EXOTIC_IDS):
            db.query(f"CREATE {record} SET title = 'exotic', body = <string> $i, "
                     "summary = 'ids'", {"i": index})
    for _ in range(2):
        code, report = project.sync(capsys)
        assert code == 0, report
        assert counts(report, "articles", "articles")["deleted"] == 0
        assert len(project.points("articles")) == len(EXOTIC_IDS)
    assert counts(report, "articles", "articles")["added"] == 0


def test_write_back_records_status_and_does_not_re_embed(project, capsys):
    project.config["sources"]["articles"]["write_back"] = True
    project.save()
    assert project.sync(capsys)[0] == 0
    with project.db() as db:
        meta = db.query("SELECT VALUE syncMetadata FROM article:5")[0]
    assert meta["articles"]["status"] == "synced" and meta["summaries"]["status"] == "synced"
    assert meta["articles"]["contentHash"]
    code, report = project.sync(capsys)
    assert_counts(report, UNCHANGED)
    with project.db() as db:
        db.query("DELETE article:5")
    project.sync(capsys)
    code, report = project.sync(capsys)
    assert project.reads() == 0  # the status writes were read once, and settled


def test_unreachable_server_exits_1_and_deletes_nothing(project, capsys):
    assert project.sync(capsys)[0] == 0
    before = project.points("articles")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    project.config["sources"]["articles"].update(url=f"ws://127.0.0.1:{port}/rpc",
                                                 username="root", password="hunter22")
    project.save()
    code, report = project.sync(capsys)
    error = report["sources"]["articles"]["error"]
    assert code == 1 and "cannot connect" in error and "hunter22" not in error
    assert project.points("articles") == before


def test_status_checks_the_table_without_reading_its_change_feed(project, capsys, monkeypatch):
    """`status` asks whether each source can be read now; for an embedded SurrealDB store
    that is its folder (a server: a connection and the table's definition), never the
    change feed (read from its start, it would cost time and memory growing with every
    write the feed keeps)."""
    from vector_sync.sources.surrealdb import SurrealSource

    def feed_read(*args: Any) -> Any:  # an injected fault: reading the feed fails the test
        raise AssertionError("status read the change feed")

    monkeypatch.setattr(SurrealSource, "changes", feed_read)
    code, status = project.cli("status", capsys=capsys)
    assert code == 0 and status["sources"]["articles"]["error"] is None, status

    (project.root / "db").rename(project.root / "db-moved")
    code, status = project.cli("status", capsys=capsys)
    assert code == 1 and "does not exist" in status["sources"]["articles"]["error"]
