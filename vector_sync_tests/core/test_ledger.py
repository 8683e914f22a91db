"""The ledger against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, make_url, text

from vector_sync.core.ledger import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    Expected,
    Ledger,
    LedgerRow,
    LedgerUnavailable,
)
from vector_sync.core.ledger import ledger as ledger_module
from vector_sync.core.ledger.db import VERSION_TABLE, metadata

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'ledger.sqlite'}"  # folder not created yet
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with Ledger(url) as opened:
        yield opened


def inspection_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return create_engine(parsed)


def row(doc_id: str, source: str = "s", collection: str = "c", **fields: Any) -> LedgerRow:
    return LedgerRow(source=source, collection=collection, doc_id=doc_id, **fields)


def synced(doc_id: str, **fields: Any) -> LedgerRow:
    return row(doc_id, status="synced", **fields)


# --- migrations ----------------------------------------------------------------------------


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def test_the_head_revision_the_ledger_knows_is_alembics():
    # a ledger already at HEAD_REVISION is opened without running Alembic
    assert head_revision() == HEAD_REVISION


def test_migrations_create_the_schema_from_empty(url: str) -> None:
    sqlite_file = Path(make_url(url).database or "") if url.startswith("sqlite") else None
    if sqlite_file:
        assert not sqlite_file.parent.exists()
    engine = inspection_engine(url)
    try:
        if not sqlite_file:
            assert inspect(engine).get_table_names() == []
        Ledger(url).close()
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= {"ledger", "expected", "source_state",
                                                    "generations", VERSION_TABLE}
        assert inspector.get_pk_constraint("ledger")["constrained_columns"] == [
            "source",
            "collection",
            "doc_id",
        ]
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("ledger")}
        assert indexes["ix_ledger_status_next_attempt_at"] == ["status", "next_attempt_at"]
        with engine.connect() as conn:
            versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
            if sqlite_file:  # clustered by key: rows() reads one range
                ddl = "SELECT sql FROM sqlite_master WHERE name = 'ledger'"
                assert conn.execute(text(ddl)).scalar_one().rstrip().endswith("WITHOUT ROWID")
        assert versions == [(head_revision(),)]
    finally:
        engine.dispose()


def test_reopening_migrates_nothing_and_keeps_data(url: str) -> None:
    with Ledger(url) as first:
        first.upsert([synced("a.md", chunk_count=2)])
        first.set_state("s", "watermark", "42")
    with Ledger(url) as second:
        assert second.rows("s", "c") == {"a.md": synced("a.md", chunk_count=2)}
        assert second.get_state("s", "watermark") == "42"
    engine = inspection_engine(url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        assert versions == [(head_revision(),)]
    finally:
        engine.dispose()


def test_table_metadata_matches_the_migrations(ledger: Ledger, url: str) -> None:
    engine = inspection_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "version_table": VERSION_TABLE,
                    "compare_type": True,
                    "compare_server_default": True,
                },
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


# --- rows ----------------------------------------------------------------------------------


def test_upsert_inserts_then_replaces_the_whole_row(ledger: Ledger) -> None:
    first = row(
        "a.md",
        status="failed",
        source_version="v1",
        content_hash="c1",
        payload_hash="p1",
        chunk_count=3,
        vector_version="m1",
        attempts=2,
        last_error="boom",
        error_code="qdrant_down",
        last_attempt_at=T0,
        last_synced_at=T0 - timedelta(days=1),
        next_attempt_at=T0 + timedelta(minutes=5),
    )
    ledger.upsert([first])
    assert ledger.rows("s", "c") == {"a.md": first}

    second = synced("a.md", source_version="v2", content_hash="c2", chunk_count=1)
    ledger.upsert([second])
    assert ledger.rows("s", "c") == {"a.md": second}  # old error, times, attempts: gone


def test_upsert_keeps_the_last_of_repeated_keys(ledger: Ledger) -> None:
    ledger.upsert([synced("a.md", content_hash="old"), synced("a.md", content_hash="new")])
    assert ledger.rows("s", "c")["a.md"].content_hash == "new"


def test_upsert_rejects_an_unknown_status_and_naive_datetimes(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="status 'done'"):
        ledger.upsert([row("a.md", status="done")])
    with pytest.raises(ValueError, match="last_synced_at must be timezone-aware"):
        ledger.upsert([synced("a.md", last_synced_at=datetime(2026, 1, 1))])
    assert ledger.rows("s", "c") == {}


def test_upsert_is_one_transaction(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "_BATCH", 4)  # the bad row is in the third batch
    good = [synced(f"{i}.md") for i in range(10)]
    with pytest.raises(ValueError):
        ledger.upsert(iter([*good, row("bad.md", status="done")]))
    assert ledger.rows("s", "c") == {}


def test_reads_and_deletes_are_scoped_by_source_and_collection(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "_PAGE", 3)  # source_rows pages across collections
    scopes = [("s1", "c1"), ("s1", "c2"), ("s2", "c1")]
    ledger.upsert(
        row(f"{n}.md", source=s, collection=c, status="synced", content_hash=f"{s}/{c}")
        for s, c in scopes
        for n in range(5)
    )

    assert {r.content_hash for r in ledger.rows("s1", "c2").values()} == {"s1/c2"}
    assert sorted(ledger.rows("s1", "c2")) == [f"{n}.md" for n in range(5)]
    assert ledger.rows("s3", "c1") == {}
    listed = [(r.collection, r.doc_id) for r in ledger.source_rows("s1")]
    assert listed == [(c, f"{n}.md") for c in ("c1", "c2") for n in range(5)]

    ledger.delete("s1", "c1", ["0.md", "1.md", "missing.md"])
    assert sorted(ledger.rows("s1", "c1")) == ["2.md", "3.md", "4.md"]
    assert len(ledger.rows("s1", "c2")) == 5
    assert len(ledger.rows("s2", "c1")) == 5


def test_expected_state_is_kept_per_collection_and_updated_by_difference(
        ledger: Ledger) -> None:
    ledger.update_expected("s", "c", {"a.md": Expected("h1", "p1", 2),
                                      "b.md": Expected("h2", "p2", 1)}, [])
    ledger.update_expected("s", "d", {"a.md": Expected("h1", "q1", 2)}, [])
    ledger.update_expected("t", "c", {"b.md": Expected("x", "y", 9)}, [])
    assert ledger.expected("s", "c") == {"a.md": ("h1", "p1", 2), "b.md": ("h2", "p2", 1)}
    assert ledger.expected_everywhere("s", ["c", "d"]) == {"a.md"}
    assert ledger.expected_everywhere("s", ["c"]) == {"a.md", "b.md"}
    ledger.update_expected("s", "c", {"a.md": Expected("h3", "p1", 3)}, ["b.md", "never.md"])
    assert ledger.expected("s", "c") == {"a.md": ("h3", "p1", 3)}
    assert ledger.expected("t", "c") == {"b.md": ("x", "y", 9)}  # other source untouched


def test_delete_handles_more_ids_than_one_batch(ledger: Ledger) -> None:
    ids = [f"notes/{n:05d}.md" for n in range(1_234)]
    ledger.upsert(synced(doc_id) for doc_id in ids)
    ledger.delete("s", "c", (doc_id for doc_id in ids[:-1]))
    assert list(ledger.rows("s", "c")) == [ids[-1]]


def test_long_doc_ids_are_stored_whole(ledger: Ledger) -> None:
    doc_id = "/".join(["a-very-long-folder-name"] * 200) + "/note.md"
    ledger.upsert([synced(doc_id)])
    assert list(ledger.rows("s", "c")) == [doc_id]


def test_any_text_round_trips(ledger: Ledger) -> None:
    awkward = ["a,b", "{x}", "it's", 'say "hi"', "back\\slash", "NULL", "ümlaut 📄", "a\nb", " "]
    rows = [
        row(text, status="failed", last_error=text, error_code=None if n % 2 else text)
        for n, text in enumerate(awkward)
    ]
    ledger.upsert(rows)
    assert ledger.rows("s", "c") == {r.doc_id: r for r in rows}


def test_datetimes_round_trip_as_aware_utc(ledger: Ledger) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2026, 3, 1, 14, 0, 0, 123456, tzinfo=plus_two)  # == T0
    ledger.upsert([synced("a.md", last_attempt_at=local, last_synced_at=T0)])
    stored = ledger.rows("s", "c")["a.md"]
    for value in (stored.last_attempt_at, stored.last_synced_at):
        assert value is not None
        assert value.tzinfo is UTC
        assert value == T0 and value.microsecond == 123456
    assert stored.next_attempt_at is None


def test_postgresql_datetimes_are_utc_whatever_the_session_time_zone(postgres_url: str) -> None:
    with Ledger(f"{postgres_url}?options=-c%20timezone%3DAsia/Tokyo") as ledger:
        ledger.upsert([synced("a.md", last_synced_at=T0)])
        stored = ledger.rows("s", "c")["a.md"].last_synced_at
    assert stored == T0
    assert stored is not None and stored.tzinfo is UTC


# --- summaries -----------------------------------------------------------------------------


def test_counts_by_source_collection_and_status(ledger: Ledger) -> None:
    ledger.upsert(
        [
            synced("1.md"),
            synced("2.md"),
            row("3.md", status="failed"),
            row("4.md", status="pending"),
            row("1.md", collection="other", status="stale"),
            row("1.md", source="t", status="synced"),
        ]
    )
    zero = {"pending": 0, "synced": 0, "stale": 0, "failed": 0}
    assert ledger.counts() == {
        ("s", "c"): {**zero, "synced": 2, "failed": 1, "pending": 1},
        ("s", "other"): {**zero, "stale": 1},
        ("t", "c"): {**zero, "synced": 1},
    }
    assert ledger.counts("t") == {("t", "c"): {**zero, "synced": 1}}
    assert ledger.counts("nobody") == {}


def test_failed_lists_most_recent_attempt_first(ledger: Ledger) -> None:
    ledger.upsert(
        [
            row("old.md", status="failed", last_attempt_at=T0),
            row("newest.md", status="failed", last_attempt_at=T0 + timedelta(hours=2)),
            row("never.md", status="failed"),
            row("newer.md", status="failed", last_attempt_at=T0 + timedelta(hours=1)),
            synced("ok.md", last_attempt_at=T0 + timedelta(hours=3)),
            row("x.md", source="t", status="failed", last_attempt_at=T0 + timedelta(hours=9)),
        ]
    )
    assert [r.doc_id for r in ledger.failed("s")] == ["newest.md", "newer.md", "old.md", "never.md"]
    assert [r.doc_id for r in ledger.failed("s", limit=2)] == ["newest.md", "newer.md"]
    assert [r.doc_id for r in ledger.failed(limit=1)] == ["x.md"]
    assert [r.doc_id for r in ledger.failed("t")] == ["x.md"]


def test_due_for_retry_picks_only_due_failed_rows(ledger: Ledger) -> None:
    now = T0
    ledger.upsert(
        [
            row("due.md", status="failed", next_attempt_at=now - timedelta(minutes=1)),
            row("exactly.md", status="failed", next_attempt_at=now),
            row("later.md", status="failed", next_attempt_at=now + timedelta(seconds=1)),
            row("unscheduled.md", status="failed"),
            row("pending.md", status="pending", next_attempt_at=now - timedelta(hours=1)),
            row("t.md", source="t", status="failed", next_attempt_at=now - timedelta(hours=1)),
        ]
    )
    assert [r.doc_id for r in ledger.due_for_retry(now)] == ["t.md", "due.md", "exactly.md"]
    assert [r.doc_id for r in ledger.due_for_retry(now, source="s")] == ["due.md", "exactly.md"]
    in_tokyo = now.astimezone(timezone(timedelta(hours=9)))  # same instant, other offset
    assert len(ledger.due_for_retry(in_tokyo, source="s")) == 2
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.due_for_retry(datetime(2026, 1, 1))


def test_state_get_set_and_overwrite(ledger: Ledger) -> None:
    assert ledger.get_state("s", "commit") is None
    ledger.set_state("s", "commit", "abc")
    ledger.set_state("s", "watermark", "7")
    ledger.set_state("t", "commit", "def")
    ledger.set_state("s", "commit", "123")
    assert ledger.get_state("s", "commit") == "123"
    assert ledger.get_state("s", "watermark") == "7"
    assert ledger.get_state("t", "commit") == "def"


# --- concurrency ---------------------------------------------------------------------------


def write_many(url: str, writer: str, transactions: int, start: Any = None) -> None:
    """Many small write transactions, as a sync run records each acknowledged batch."""
    if start is not None:
        start.wait(timeout=60)  # everyone opens (and migrates) at the same moment
    with Ledger(url) as ledger:
        for n in range(transactions):
            ledger.upsert([synced(f"{writer}-{n}-{k}.md") for k in range(3)])
            ledger.set_state("s", f"{writer}-progress", str(n))
            ledger.rows("s", "c")  # readers in between must not block writers for good


def test_two_ledgers_on_one_sqlite_file_lose_no_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    Ledger(url).close()
    start = threading.Barrier(2)

    def writer(name: str) -> None:
        write_many(url, name, 60, start)

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(writer, "a"), pool.submit(writer, "b")]:
            future.result()  # re-raises "database is locked" and the like
    with Ledger(url) as ledger:
        assert len(ledger.rows("s", "c")) == 2 * 60 * 3
        assert ledger.get_state("s", "a-progress") == ledger.get_state("s", "b-progress") == "59"


def open_fresh_files_together(urls: list[str], writer: str, start: Any) -> None:
    try:
        for url in urls:
            write_many(url, writer, 5, start)
    except BaseException:
        start.abort()  # the others would wait for this process at the barrier forever
        raise


def test_processes_opening_a_fresh_sqlite_file_together_all_succeed(tmp_path: Path) -> None:
    # several rounds: the window in which opening processes collide is a few milliseconds
    urls = [f"sqlite:///{tmp_path / str(n) / 'ledger.sqlite'}" for n in range(20)]
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(4)
    processes = [
        spawn.Process(target=open_fresh_files_together, args=(urls, f"p{n}", start))
        for n in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        if process.is_alive():
            process.kill()
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    for url in urls:
        with Ledger(url) as ledger:
            assert len(ledger.rows("s", "c")) == 4 * 5 * 3


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_url", "expected"),
    [
        ("postgresql://postgres:secret@127.0.0.1:1/x", "postgresql://postgres:***@127.0.0.1:1/x"),
        ("mysql://root:secret@127.0.0.1:1/x", "unsupported database 'mysql'"),
        ("not a url secret", "not a valid SQLAlchemy URL"),
    ],
)
def test_unusable_url_raises_ledger_unavailable_without_the_password(
    bad_url: str, expected: str
) -> None:
    with pytest.raises(LedgerUnavailable) as raised:
        Ledger(bad_url)
    assert expected in str(raised.value)
    assert "secret" not in str(raised.value)


def test_unreachable_server_names_the_reason() -> None:
    with pytest.raises(LedgerUnavailable, match=r"127\.0\.0\.1:1/x: .*(refused|connect)"):
        Ledger("postgresql://postgres:secret@127.0.0.1:1/x")


def test_an_unreachable_server_is_not_read_as_a_ledger_without_tables() -> None:
    # "no tables yet" would let Alembic try to create them in a database that has them
    from sqlalchemy.exc import OperationalError

    from vector_sync.core.ledger.schema import revision

    engine = create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/x")
    with pytest.raises(OperationalError):
        revision(engine)


def test_sqlite_path_that_cannot_be_created_raises_ledger_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(LedgerUnavailable, match="a-file"):
        Ledger(f"sqlite:///{tmp_path / 'a-file' / 'ledger.sqlite'}")


def test_repr_masks_the_password(postgres_url: str) -> None:
    with_password = postgres_url.replace("postgres@", "postgres:secret@")  # trust auth ignores it
    with Ledger(with_password) as ledger:
        assert "secret" not in repr(ledger)
        assert "postgres:***@" in repr(ledger)


# --- many rows ------------------------------------------------------------------------------
# (how fast: benchmarks/ledger_speed.py; a test only says what the ledger returns)


def test_upsert_across_batches_inserts_new_rows_and_replaces_existing_ones(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "_BATCH", 7)  # several executemany batches per upsert
    first = [synced(f"notes/{n:04d}.md", content_hash="old", chunk_count=1,
                    last_synced_at=T0) for n in range(100)]
    ledger.upsert(first)
    assert ledger.rows("s", "c") == {r.doc_id: r for r in first}

    changed = [synced(r.doc_id, content_hash="new", chunk_count=3,
                      last_synced_at=T0 + timedelta(hours=1)) for r in first[::2]]
    fresh = [row(f"new/{n:04d}.md", status="pending") for n in range(30)]
    ledger.upsert([*fresh, *changed])  # new and existing keys mixed, any order

    expected = {r.doc_id: r for r in [*first, *changed, *fresh]}  # later rows replace
    assert ledger.rows("s", "c") == expected
    assert sum(r.content_hash == "new" for r in ledger.rows("s", "c").values()) == 50
    assert len(ledger.rows("s", "c")) == 130


def test_synced_hints_only_for_documents_synced_everywhere_at_one_hint(ledger: Ledger) -> None:
    ledger.upsert([
        synced("both", collection="a", source_version="v1"),
        synced("both", collection="b", source_version="v1"),
        synced("one-failed", collection="a", source_version="v1"),
        row("one-failed", collection="b", status="failed", source_version="v1"),
        synced("two-hints", collection="a", source_version="v1"),
        synced("two-hints", collection="b", source_version="v2"),
        synced("only-a", collection="a", source_version="v1"),
        synced("no-hint", collection="a"), synced("no-hint", collection="b"),
        synced("both", source="other", collection="a", source_version="v9"),
        synced("both", collection="c", source_version="v3"),  # not asked for
    ])
    assert ledger.synced_hints("s", ["a", "b"]) == {"both": "v1"}
    assert ledger.synced_hints("s", ["a"]) == {"both": "v1", "one-failed": "v1",
                                               "two-hints": "v1", "only-a": "v1"}
