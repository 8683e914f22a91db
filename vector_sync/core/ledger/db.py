"""The database under the ledger: its tables (created and changed only by the Alembic
migrations in `migrations/`), an aware-UTC datetime type, engines for SQLite (WAL, a busy
timeout, write transactions that take the lock up front) and PostgreSQL, and the upsert
statements of both."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

# own name, so a PostgreSQL database shared with other Alembic-managed apps doesn't clash
VERSION_TABLE = "vector_sync_alembic_version"
SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "vector_sync_write"  # marks a connection whose transaction writes
Upsert = PgInsert | SqliteInsert


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. SQLite has no time zones, so UTC is stored naive there
    (SQLAlchemy's fixed-width text, so it still sorts and compares correctly)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"ledger datetimes must be timezone-aware, got naive {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], datetime | None]:
        # replaces SQLAlchemy's parse + a tzinfo replace: one C-level parse per SQLite value
        # halves the time of reading 100,000 rows
        return _parse_sqlite_utc if dialect.name == "sqlite" else _as_utc


def _parse_sqlite_utc(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value + "+00:00")


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


metadata = MetaData()

# a row a sync must look at whatever the source's history says: not synced, or synced
# without a version hint (written so by `repair`); the same text in the partial index's WHERE
# and in the queries that use it, which is how SQLite knows the index holds their rows
UNSYNCED = text("(status != 'synced' OR source_version IS NULL)")

ledger_table = Table(
    "ledger",
    metadata,
    Column("source", String, primary_key=True),
    Column("collection", String, primary_key=True),
    Column("doc_id", Text, primary_key=True),
    Column("status", String, nullable=False),
    Column("source_version", String),
    Column("content_hash", String),
    Column("payload_hash", String),
    Column("chunk_count", Integer, nullable=False, server_default=text("0")),
    Column("vector_version", String),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("error_code", String),
    Column("last_attempt_at", UtcDateTime),
    Column("last_synced_at", UtcDateTime),
    Column("next_attempt_at", UtcDateTime),
    CheckConstraint("status IN ('pending', 'synced', 'stale', 'failed')", name="ck_ledger_status"),
    Index("ix_ledger_status_next_attempt_at", "status", "next_attempt_at"),
    # a sync that does not list its source finds the documents not fully synced by this,
    # in a time that grows with their number, not with the source's; partial, so it holds
    # only those rows (an index of every row would add a sixth to the ledger's size)
    Index("ix_ledger_unsynced", "source", sqlite_where=UNSYNCED, postgresql_where=UNSYNCED),
    # SQLite: rows stored in key order, so rows() of one collection reads adjacent pages
    # (half the time of rows scattered by years of interleaved upserts)
    sqlite_with_rowid=False,
)

source_state_table = Table(
    "source_state",
    metadata,
    Column("source", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

expected_table = Table(
    "expected",
    metadata,
    Column("source", String, primary_key=True),
    Column("collection", String, primary_key=True),
    Column("doc_id", Text, primary_key=True),
    Column("content_hash", String, nullable=False),
    Column("payload_hash", String, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    sqlite_with_rowid=False,
)

generations_table = Table(  # blue-green generations of each collection (core/generations)
    "generations",
    metadata,
    Column("collection", String, primary_key=True),  # the configured name
    Column("physical", String, primary_key=True),  # the Qdrant collection holding it
    Column("fingerprint", String, nullable=False),
    Column("spec_json", Text, nullable=False),  # model, model_path, chunking, embed fields
    Column("state", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("switched_at", UtcDateTime),
    Column("retire_after", UtcDateTime),
    Column("documents_done", Integer, nullable=False, server_default=text("0")),
    Column("documents_total", Integer, nullable=False, server_default=text("0")),
    Column("chunks_embedded", Integer, nullable=False, server_default=text("0")),
    Column("chunks_reused", Integer, nullable=False, server_default=text("0")),
    Column("seconds", Float, nullable=False, server_default=text("0")),
    Column("updated_at", UtcDateTime),
    CheckConstraint("state IN ('building', 'serving', 'retired', 'switching')",
                    name="ck_generations_state"),
)


_BACKENDS = ("sqlite", "postgresql")  # the two with INSERT ... ON CONFLICT DO UPDATE


def create_engine_for(url: URL, read_only: bool = False) -> Engine:
    """`read_only`: SQLite connections refuse every write (PRAGMA query_only), so a command
    that must change nothing cannot, whatever code it runs."""
    backend = url.get_backend_name()
    if backend not in _BACKENDS:
        raise ArgumentError(f"unsupported database {backend!r} (use sqlite or postgresql)")
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args=_libpq_timeout(url))
    if not read_only:
        _create_sqlite_folder(url)
    engine = create_engine(url)
    _configure_sqlite(engine, read_only)
    return engine


def _libpq_timeout(url: URL) -> dict[str, int]:
    # fail within seconds, not when the OS gives up on a silent host (minutes)
    libpq = url.get_driver_name() in ("psycopg2", "psycopg")
    return {"connect_timeout": 10} if libpq and "connect_timeout" not in url.query else {}


def with_installed_driver(url: URL) -> URL:
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the dependency is psycopg2
    return url.set(drivername="postgresql+psycopg2") if url.drivername == "postgresql" else url


def _create_sqlite_folder(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine, read_only: bool) -> None:
    """WAL + busy_timeout for concurrent writer processes, and SQLAlchemy (not the sqlite3
    module, which skips BEGIN for DDL) in control of transactions."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if read_only:  # a ledger made by a sync is in WAL mode already
            dbapi_connection.execute("PRAGMA query_only = ON")
        else:
            _enable_wal(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writing = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _enable_wal(dbapi_connection: sqlite3.Connection) -> None:
    """Switching to WAL takes its lock without waiting on busy_timeout: a process opening a
    fresh ledger while another one sets it up gets "database is locked", so it retries."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE),
    so a concurrent writer waits on busy_timeout instead of failing mid-transaction."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


def ledger_upsert(on_postgresql: bool) -> Upsert:
    if not on_postgresql:
        return _replacing(sqlite.insert(ledger_table), ledger_table)
    # PostgreSQL gets a batch as one array per column, unnested by the server: a third of
    # the client CPU of SQLAlchemy's multi-row VALUES batching (which an ON CONFLICT
    # executemany only gets with a RETURNING); 10,000 rows: 0.5 s instead of 0.8 s
    columns = list(ledger_table.columns)
    arrays = select(*(func.unnest(cast(bindparam(c.name), ARRAY(c.type))) for c in columns))
    names = [c.name for c in columns]
    return _replacing(postgresql.insert(ledger_table).from_select(names, arrays), ledger_table)


def simple_upsert(table: Table, on_postgresql: bool) -> Upsert:
    insert = postgresql.insert if on_postgresql else sqlite.insert
    return _replacing(insert(table), table)


def _replacing(insert: Upsert, table: Table) -> Upsert:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE SET every other column."""
    keys = [column.name for column in table.primary_key.columns]
    others = [column.name for column in table.columns if not column.primary_key]
    values = {name: insert.excluded[name] for name in others}
    return insert.on_conflict_do_update(index_elements=keys, set_=values)


# The event outbox (core/events): events written in the transaction of the ledger change
# they describe; `outbox_delivery` records, per sink, what was delivered or given up.
outbox_table = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("event_id", String, nullable=False),
    Column("type", String, nullable=False),
    Column("source", String, nullable=False),
    Column("collection", String),
    Column("subject", Text, nullable=False),
    Column("time", UtcDateTime, nullable=False),
    Column("data", Text, nullable=False),
    UniqueConstraint("event_id", name="uq_outbox_event_id"),
    Index("ix_outbox_type_time", "type", "time"),
    sqlite_autoincrement=True,
)

outbox_delivery_table = Table(
    "outbox_delivery",
    metadata,
    Column("sink", String, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("state", String, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("delivered_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("state IN ('delivered', 'failed', 'retrying')",
                    name="ck_outbox_delivery_state"),
    sqlite_with_rowid=False,
)
