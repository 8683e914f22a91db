"""Benchmark: the ledger's rows() and upsert() with 100,000 rows in one (source, collection),
each next to a baseline measured in the same run: the same work done with the database
driver directly (hand-written SQL on the same table, in the same database, with rows stored
exactly as the ledger stores them, under another source name).

  rows() of N            Ledger.rows()  vs  SELECT of the same columns + fetchall()
  upsert of B new        Ledger.upsert() vs  INSERT ... ON CONFLICT DO UPDATE, one transaction
  upsert of B existing   the same, every key already present

The baseline is the floor: the driver's own cost. The ratio is what the ledger adds
(validation, de-duplication, key ordering, SQLAlchemy, LedgerRow objects and aware datetimes
out). Each figure is the best of --runs (other processes on a shared machine only ever add
time); every run of "new" inserts keys not yet present. The tests (vector_sync_tests/core/
test_ledger.py) only check what the ledger returns; how fast it is lives here.

    .venv/bin/python benchmarks/ledger_speed.py [--rows 100000] [--batch 10000] [--runs 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--keep]

With --postgres the same figures for a fresh database created on that server (dropped at
the end); the baseline there is psycopg2's execute_values (one multi-row INSERT per 5,000
rows: psycopg2's plain executemany is one round trip per row, no fair floor).
"""

from __future__ import annotations

import argparse
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from _vault import code_version, scratch
from sqlalchemy import create_engine, make_url

from vector_sync.core.ledger import Ledger, LedgerRow

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
KEY = ("source", "collection", "doc_id")


def realistic_row(source: str, doc_id: str) -> LedgerRow:
    return LedgerRow(source=source, collection="c", doc_id=doc_id, status="synced",
                     source_version="1767225600000000000:4096", content_hash="a" * 64,
                     payload_hash="b" * 64, chunk_count=3,
                     vector_version="all-MiniLM-L6-v2:256:32", last_attempt_at=T0,
                     last_synced_at=T0)


def best_seconds(action: Callable[[int], object], runs: int) -> float:
    """Best of `runs`; the action gets the run's number."""
    timings = []
    for run in range(runs):
        started = time.perf_counter()
        action(run)
        timings.append(time.perf_counter() - started)
    return min(timings)


class Raw:
    """The baseline: the ledger table through the bare DB-API driver."""

    def __init__(self, connection: Any, postgresql: bool) -> None:
        self.connection, self.postgresql = connection, postgresql
        cursor = connection.cursor()
        cursor.execute("SELECT * FROM ledger WHERE 1 = 0")
        self.columns = [d[0] for d in cursor.description]
        names = ", ".join(self.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c not in KEY)
        mark = "%s" if postgresql else "?"
        self.select = f"SELECT {names} FROM ledger WHERE source = {mark} AND collection = {mark}"
        values = "%s" if postgresql else f"({', '.join('?' * len(self.columns))})"
        self.upsert_sql = (f"INSERT INTO ledger ({names}) VALUES {values} "
                           f"ON CONFLICT (source, collection, doc_id) DO UPDATE SET {updates}")

    def rows(self, source: str) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        cursor.execute(self.select, (source, "c"))
        return list(cursor.fetchall())

    def upsert(self, rows: Sequence[tuple[Any, ...]]) -> None:
        cursor = self.connection.cursor()
        if self.postgresql:
            from psycopg2.extras import execute_values

            execute_values(cursor, self.upsert_sql, rows, page_size=5_000)
        else:
            cursor.executemany(self.upsert_sql, rows)
        self.connection.commit()

    def as_stored(self, source: str, rows: list[tuple[Any, ...]],
                  doc_ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """`rows` as read back from the ledger, under another source and doc_ids."""
        at = self.columns.index("source"), self.columns.index("doc_id")
        made = []
        for stored, doc_id in zip(rows, doc_ids, strict=True):
            values = list(stored)
            values[at[0]], values[at[1]] = source, doc_id
            made.append(tuple(values))
        return made


@contextmanager
def sqlite_database(keep: bool) -> Iterator[tuple[str, Any]]:
    with scratch("vector_sync_ledger_speed_", keep) as root:
        path = root / "ledger.sqlite"
        Ledger(f"sqlite:///{path}").close()  # the ledger creates (migrates) the file
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA busy_timeout = 30000")
        try:
            yield f"sqlite:///{path}", connection
        finally:
            connection.close()


@contextmanager
def postgresql_database(server: str) -> Iterator[tuple[str, Any]]:
    import psycopg2

    name = f"vector_sync_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(server).set(drivername="postgresql+psycopg2"),
                          isolation_level="AUTOCOMMIT")
    url = make_url(server).set(database=name)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        Ledger(url.render_as_string(hide_password=False)).close()
        connection = psycopg2.connect(url.set(drivername="postgresql").render_as_string(
            hide_password=False))
        try:
            yield url.render_as_string(hide_password=False), connection
        finally:
            connection.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def measure(url: str, connection: Any, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    raw = Raw(connection, postgresql=not url.startswith("sqlite"))
    n, b, runs = args.rows, args.batch, args.runs
    ids = [f"notes/folder/{i:07d}.md" for i in range(n)]
    with Ledger(url) as ledger:
        many = [realistic_row("s", doc_id) for doc_id in ids]
        ledger.upsert(many)  # setup: N rows through the ledger, then the same N copied raw
        stored = raw.rows("s")
        raw.upsert(raw.as_stored("raw", stored, [r[raw.columns.index("doc_id")] for r in stored]))
        assert len(ledger.rows("s", "c")) == len(raw.rows("raw")) == n

        def fresh(run: int) -> list[str]:
            return [f"new/{run}/{i:07d}.md" for i in range(b)]

        template = stored[:1] * b
        figures = [
            (f"rows() of {n:,}",
             best_seconds(lambda _: ledger.rows("s", "c"), runs),
             best_seconds(lambda _: raw.rows("raw"), runs)),
            (f"upsert of {b:,} new rows",
             best_seconds(lambda r: ledger.upsert(
                 [realistic_row("s", d) for d in fresh(r)]), runs),
             best_seconds(lambda r: raw.upsert(raw.as_stored("raw", template, fresh(r))),
                          runs)),
            (f"upsert of {b:,} existing rows",
             best_seconds(lambda _: ledger.upsert(many[:b]), runs),
             best_seconds(lambda _: raw.upsert(raw.as_stored("raw", template, ids[:b])),
                          runs)),
        ]
        assert len(ledger.rows("s", "c")) == len(raw.rows("raw")) == n + runs * b
    return figures


def report(title: str, figures: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}")
    print(f"  {'':<30}{'ledger':>10}{'driver':>10}{'ratio':>9}")
    for name, ledger_s, raw_s in figures:
        print(f"  {name:<30}{ledger_s:9.3f}s{raw_s:9.3f}s{ledger_s / raw_s:8.1f}x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows already present")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per upsert")
    parser.add_argument("--runs", type=int, default=3, help="best of this many")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="also measure on this PostgreSQL server (a fresh database)")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file")
    args = parser.parse_args(argv)
    print(f"ledger_speed: {args.rows:,} realistic rows, upserts of {args.batch:,}, best of "
          f"{args.runs} runs; baseline: the DB-API driver on the same table, same run")
    print(f"code: {code_version()}")
    with sqlite_database(args.keep) as (url, connection):
        report("SQLite (a file, WAL, as the ledger opens it)", measure(url, connection, args))
    if args.postgres:
        with postgresql_database(args.postgres) as (url, connection):
            report(f"PostgreSQL ({make_url(url).render_as_string()})",
                   measure(url, connection, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
