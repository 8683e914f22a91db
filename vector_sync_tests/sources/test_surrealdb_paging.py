"""The SurrealDB source reads its table a page at a time: the SDK holds a whole answer, so
no query may return more records than `batch_size`, whatever the table holds. Measured on
the real engine (embedded SurrealKV) through the source's own query method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from surrealdb import Surreal

from vector_sync.core.documents import Document
from vector_sync.sources.surrealdb import SurrealConfig, SurrealSource

RECORDS, PAGE = 60, 7
# every kind of record id, so a page may end on any of them (key order: numbers first)
ODD_IDS = ["t:slug_text", "t:⟨with space⟩", "t:[2026, 'x']", "t:{ lang: 'en', n: 1 }",
           "t:u'018f8a4e-6b1e-7c3a-9d2e-123456789abc'",
           "t:u'018f8a4e-6b1e-7c3a-9d2e-123456789abd'",
           "t:[u'018f8a4e-6b1e-7c3a-9d2e-123456789abc', 2]"]


class CountingSource(SurrealSource):
    """The real source; each query's answer is counted as it comes back (an injected probe,
    not a stand-in: the engine answers every query)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.answers: list[int] = []

    def query(self, db: Any, sql: str, variables: dict[str, Any] | None = None) -> Any:
        found = super().query(db, sql, variables)
        if isinstance(found, list):
            self.answers.append(len(found))
        return found


def table(tmp_path: Path, changefeed: bool) -> str:
    url = f"surrealkv://{tmp_path / 'db'}"
    db = Surreal(url)
    db.use("ns", "db")
    db.query("DEFINE TABLE t" + (" CHANGEFEED 1d" if changefeed else ""))
    db.query("INSERT INTO t $rows RETURN NONE", {"rows": [
        {"id": i, "body": f"record {i}", "keep": i % 3 != 0, **({"at": i} if i % 5 else {})}
        for i in range(RECORDS)]})
    for number, record in enumerate(ODD_IDS):  # the even ones without `at`
        db.query(f"CREATE {record} SET body = 'odd', keep = true"
                 + (f", at = {number}" if number % 2 else ""))
    db.close()
    return url


def source(url: str, **settings: Any) -> CountingSource:
    config = SurrealConfig.model_validate({
        "kind": "surrealdb", "url": url, "namespace": "ns", "database": "db", "table": "t",
        "collections": ["c"], "batch_size": PAGE, **settings})
    return CountingSource("s", config)


def everything(url: str, **settings: Any) -> dict[str, str]:
    """The listing as one unpaged SELECT gives it (the reference)."""
    reference = SurrealSource("s", SurrealConfig.model_validate({
        "kind": "surrealdb", "url": url, "namespace": "ns", "database": "db", "table": "t",
        "collections": ["c"], "batch_size": 100_000, **settings}))
    return {entry.doc_id: entry.version for entry in reference.scan()}


@pytest.mark.parametrize("changefeed", [True, False], ids=["feed", "hash"])
@pytest.mark.parametrize("settings", [{}, {"updated_field": "at"}, {"where": "keep = true"}],
                         ids=["plain", "updated_field", "where"])
def test_the_listing_is_read_a_page_at_a_time(tmp_path, changefeed, settings):
    url = table(tmp_path, changefeed)
    probe = source(url, **settings)
    listed = {entry.doc_id: entry.version for entry in probe.scan()}
    expected_count = (RECORDS - RECORDS // 3 if "where" in settings else RECORDS) + len(ODD_IDS)
    assert len(listed) == expected_count and set(ODD_IDS) <= set(listed)
    assert listed == everything(url, **settings)  # the same ids and hints as one SELECT
    assert probe.answers and max(probe.answers) <= PAGE


def test_reading_every_record_after_a_lost_checkpoint_lists_ids_page_by_page(tmp_path):
    url = table(tmp_path, changefeed=True)
    probe = source(url)
    to_read = probe.changed_since(None)  # no checkpoint: every record is read
    assert len(to_read) == RECORDS + len(ODD_IDS)
    assert max(probe.answers) <= PAGE


def test_reads_by_id_are_batched_and_keep_the_filter(tmp_path):
    url = table(tmp_path, changefeed=False)
    probe = source(url, where="keep = true")
    wanted = [f"t:{i}" for i in range(RECORDS)] + ODD_IDS + ["t:gone"]
    read = [r for r in probe.read(wanted) if isinstance(r, Document)]
    assert {d.doc_id for d in read} == {f"t:{i}" for i in range(RECORDS) if i % 3} | set(ODD_IDS)
    assert max(probe.answers) <= PAGE
    # a document read by id carries the hint the listing gives it
    listed = everything(url, where="keep = true")
    assert {d.doc_id: d.version for d in read} == listed


def test_a_page_may_end_on_a_duration_decimal_or_datetime_id(tmp_path):
    """The SDK cannot send a duration back as a range bound: the next page's start is
    written out. Pages of 2 end on each kind in turn; every record is listed and read."""
    url = f"surrealkv://{tmp_path / 'db'}"
    db = Surreal(url)
    db.use("ns", "db")
    db.query("DEFINE TABLE t")
    ids = ["t:[1s]", "t:[2s]", "t:[1h, 'x']", "t:[1.5dec]", "t:[2.5dec]",
           "t:[d'2024-01-01T00:00:00Z']", "t:[d'2025-01-01T00:00:00Z']", "t:{ took: 3s }",
           "t:{ took: 4s }"]
    for record in ids:
        db.query(f"CREATE {record} SET body = 'odd'")
    db.close()
    probe = source(url, batch_size=2)
    listed = {entry.doc_id: entry.version for entry in probe.scan()}
    assert len(listed) == len(ids) and max(probe.answers) <= 2
    assert listed == everything(url)
    read = [r for r in probe.read(listed) if isinstance(r, Document)]
    assert {d.doc_id: d.version for d in read} == listed
