"""The ledger: one row per (source, collection, doc_id) saying what Qdrant holds for it,
the expected state (what the source says Qdrant should hold) and per-source state such as
checkpoints: everything a run leaves for the next one.

SQLite (a file in the state dir) by default, any PostgreSQL URL for shared deployments. The
schema is only ever created or changed by the Alembic migrations shipped in `migrations/`,
which run on open.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice, starmap
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, TypeVar, get_args

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    cast,
    create_engine,
    delete,
    distinct,
    event,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.engine import URL, Result, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from vector_sync.core.settings import StateConfig

Status = Literal["pending", "synced", "stale", "failed"]
STATUSES: tuple[Status, ...] = get_args(Status)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# own name, so a PostgreSQL database shared with other Alembic-managed apps doesn't clash
VERSION_TABLE = "vector_sync_alembic_version"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_BATCH = 5_000  # rows per executemany: bounds memory for huge iterables
_DELETE_BATCH = 500  # ids per IN (...): far below every SQLite bound-parameter limit
_PAGE = 5_000  # rows per keyset page in source_rows()
_WRITE_OPTION = "vector_sync_write"
_T = TypeVar("_T")
Upsert = PgInsert | SqliteInsert


class LedgerUnavailable(Exception):
    """The ledger database cannot be opened or migrated; the message names the masked URL."""


@dataclass(slots=True)
class LedgerRow:
    source: str
    collection: str
    doc_id: str
    status: Status
    source_version: str | None = None
    content_hash: str | None = None
    payload_hash: str | None = None
    chunk_count: int = 0
    vector_version: str | None = None
    attempts: int = 0
    last_error: str | None = None
    error_code: str | None = None
    last_attempt_at: datetime | None = None
    last_synced_at: datetime | None = None
    next_attempt_at: datetime | None = None


_FIELDS = tuple(f.name for f in dataclasses.fields(LedgerRow))
_DATETIME_FIELDS = ("last_attempt_at", "last_synced_at", "next_attempt_at")


class Expected(NamedTuple):
    """What Qdrant should hold for a document in a collection, derived from the source."""

    content_hash: str
    payload_hash: str
    chunk_count: int


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

_ROW_COLUMNS = [ledger_table.c[name] for name in _FIELDS]


class Ledger:
    """What Qdrant holds, per document and collection. Safe for several writer processes."""

    def __init__(self, url: str):
        given = _parse_url(url)
        self._masked_url = given.render_as_string(hide_password=True)
        self._url = _with_installed_driver(given)
        try:
            self._engine = _create_engine(self._url)
            self._migrate()
        except (DBAPIError, CommandError, ArgumentError, ImportError, OSError) as error:
            self._dispose_if_created()
            raise LedgerUnavailable(
                f"cannot open the ledger at {self._masked_url}: {self._reason(error)}"
            ) from None
        self._postgresql = self._url.get_backend_name() == "postgresql"
        self._upsert_ledger = _ledger_upsert(self._postgresql)
        self._upsert_state = _simple_upsert(source_state_table, self._postgresql)
        self._upsert_expected = _simple_upsert(expected_table, self._postgresql)

    # --- reading ---------------------------------------------------------------------------

    def rows(self, source: str, collection: str) -> dict[str, LedgerRow]:
        """Every row of one (source, collection), by doc_id."""
        query = select(*_ROW_COLUMNS).where(
            ledger_table.c.source == source, ledger_table.c.collection == collection
        )
        with self._engine.connect() as conn:
            return {row.doc_id: row for row in _to_rows(conn.execute(query))}

    def source_rows(self, source: str) -> Iterator[LedgerRow]:
        """Every row of a source, all collections, in key order. Pages by key so that no
        connection or transaction stays open while the caller works on the rows."""
        after: tuple[str, str] | None = None
        while True:
            page = self._source_page(source, after)
            yield from page
            if len(page) < _PAGE:
                return
            after = (page[-1].collection, page[-1].doc_id)

    def counts(self, source: str | None = None) -> dict[tuple[str, str], dict[str, int]]:
        """(source, collection) -> status -> number of rows; every status is present."""
        table = ledger_table
        groups = (table.c.source, table.c.collection, table.c.status)
        query = _for_source(select(*groups, func.count()), source).group_by(*groups)
        result: dict[tuple[str, str], dict[str, int]] = {}
        with self._engine.connect() as conn:
            for row_source, collection, status, number in conn.execute(query):
                by_status = result.setdefault((row_source, collection), dict.fromkeys(STATUSES, 0))
                by_status[status] = number
        return result

    def failed(self, source: str | None = None, limit: int = 50, given_up_only: bool = False,
               collection: str | None = None) -> list[LedgerRow]:
        """Failed rows, most recent attempt first; `given_up_only`: those the retries gave up
        on (no next attempt)."""
        table = ledger_table
        query = select(*_ROW_COLUMNS).where(table.c.status == "failed")
        if collection is not None:
            query = query.where(table.c.collection == collection)
        if given_up_only:
            query = query.where(table.c.next_attempt_at.is_(None))
        query = (
            _for_source(query, source)
            .order_by(table.c.last_attempt_at.desc().nulls_last(), *table.primary_key.columns)
            .limit(limit)
        )
        return self._select_rows(query)

    def count_given_up(self, source: str, collection: str) -> int:
        """Failed rows the retries gave up on (no next attempt)."""
        table = ledger_table
        query = select(func.count()).where(
            table.c.source == source, table.c.collection == collection,
            table.c.status == "failed", table.c.next_attempt_at.is_(None))
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def due_for_retry(self, now: datetime, source: str | None = None) -> list[LedgerRow]:
        """Failed rows whose next_attempt_at has come (`now` must be timezone-aware)."""
        if now.utcoffset() is None:
            raise ValueError(f"due_for_retry needs a timezone-aware `now`, got {now!r}")
        table = ledger_table
        query = select(*_ROW_COLUMNS).where(
            table.c.status == "failed", table.c.next_attempt_at <= now
        )
        query = _for_source(query, source).order_by(table.c.next_attempt_at)
        return self._select_rows(query)

    def synced_hints(self, source: str, collections: Collection[str]) -> dict[str, str]:
        """doc_id -> version hint, for documents synced in every one of `collections` at
        the same hint: the documents a sync may leave unread. One grouped query, no rows
        materialized (it runs on every sync, for every document)."""
        table = ledger_table
        query = (
            select(table.c.doc_id, func.min(table.c.source_version))
            .where(table.c.source == source, table.c.collection.in_(list(collections)),
                   table.c.status == "synced", table.c.source_version.is_not(None))
            .group_by(table.c.doc_id)
            .having(func.count() == len(collections),
                    func.count(distinct(table.c.source_version)) == 1)
        )
        with self._engine.connect() as conn:
            return {doc_id: version for doc_id, version in conn.execute(query)}

    def expected(self, source: str, collection: str) -> dict[str, Expected]:
        """doc_id -> what Qdrant should hold, as of the last diff of this source."""
        table = expected_table
        query = select(table.c.doc_id, table.c.content_hash, table.c.payload_hash,
                       table.c.chunk_count).where(table.c.source == source,
                                                  table.c.collection == collection)
        with self._engine.connect() as conn:
            return {doc_id: Expected(c, p, n) for doc_id, c, p, n in conn.execute(query)}

    def expected_everywhere(self, source: str, collections: Collection[str]) -> set[str]:
        """Documents with an expected state in every one of `collections`."""
        table = expected_table
        query = (select(table.c.doc_id)
                 .where(table.c.source == source, table.c.collection.in_(list(collections)))
                 .group_by(table.c.doc_id).having(func.count() == len(collections)))
        with self._engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def get_state(self, source: str, key: str) -> str | None:
        table = source_state_table
        query = select(table.c.value).where(table.c.source == source, table.c.key == key)
        with self._engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    # --- writing ---------------------------------------------------------------------------

    def upsert(self, rows: Iterable[LedgerRow]) -> None:
        """Insert or fully replace rows, all in one transaction."""
        with self._writing() as conn:
            for batch in _batches(rows, _BATCH):
                unique = _unique_in_key_order(batch)
                parameters = _columns(unique) if self._postgresql else _records(unique)
                conn.execute(self._upsert_ledger, parameters)

    def delete(self, source: str, collection: str, doc_ids: Iterable[str]) -> None:
        table = ledger_table
        scope = (table.c.source == source, table.c.collection == collection)
        with self._writing() as conn:
            for batch in _batches(doc_ids, _DELETE_BATCH):
                conn.execute(delete(table).where(*scope, table.c.doc_id.in_(batch)))

    def update_expected(self, source: str, collection: str, changed: dict[str, Expected],
                        removed: Iterable[str]) -> None:
        """Record the expected state of the documents whose expectation changed (only those:
        a diff that changes nothing writes nothing)."""
        table = expected_table
        scope = (table.c.source == source, table.c.collection == collection)
        with self._writing() as conn:
            for batch in _batches(removed, _DELETE_BATCH):
                conn.execute(delete(table).where(*scope, table.c.doc_id.in_(batch)))
            for items in _batches(sorted(changed.items()), _BATCH):
                conn.execute(self._upsert_expected, [
                    {"source": source, "collection": collection, "doc_id": doc_id,
                     "content_hash": e.content_hash, "payload_hash": e.payload_hash,
                     "chunk_count": e.chunk_count} for doc_id, e in items])

    def set_state(self, source: str, key: str, value: str) -> None:
        with self._writing() as conn:
            conn.execute(self._upsert_state, {"source": source, "key": key, "value": value})

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self._masked_url!r})"

    # --- internals -------------------------------------------------------------------------

    def _migrate(self) -> None:
        config = Config()
        # ConfigParser interpolates '%', which a folder name may contain
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        with self._writing() as conn:
            if conn.dialect.name == "postgresql":
                # processes opening a fresh database at once must not both create the tables
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('vector_sync.ledger'))"))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE),
        so a concurrent writer waits on busy_timeout instead of failing mid-transaction."""
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def _select_rows(self, query: Select[Any]) -> list[LedgerRow]:
        with self._engine.connect() as conn:
            return _to_rows(conn.execute(query))

    def _source_page(self, source: str, after: tuple[str, str] | None) -> list[LedgerRow]:
        table = ledger_table
        query = select(*_ROW_COLUMNS).where(table.c.source == source)
        if after is not None:
            query = query.where(tuple_(table.c.collection, table.c.doc_id) > tuple_(*after))
        query = query.order_by(table.c.collection, table.c.doc_id).limit(_PAGE)
        return self._select_rows(query)

    def _reason(self, error: BaseException) -> str:
        reason = str(error.orig if isinstance(error, DBAPIError) else error).strip()
        password = self._url.password
        return reason.replace(str(password), "***") if password else reason

    def _dispose_if_created(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()


_BACKENDS = ("sqlite", "postgresql")  # the two with INSERT ... ON CONFLICT DO UPDATE


def _parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        # the text may well contain a password, so it is not repeated
        raise LedgerUnavailable("the ledger URL is not a valid SQLAlchemy URL") from None


def _create_engine(url: URL) -> Engine:
    backend = url.get_backend_name()
    if backend not in _BACKENDS:
        raise ArgumentError(f"unsupported database {backend!r} (use sqlite or postgresql)")
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args=_libpq_timeout(url))
    _create_sqlite_folder(url)
    engine = create_engine(url)
    _configure_sqlite(engine)
    return engine


def _libpq_timeout(url: URL) -> dict[str, int]:
    # fail within seconds, not when the OS gives up on a silent host (minutes)
    libpq = url.get_driver_name() in ("psycopg2", "psycopg")
    return {"connect_timeout": 10} if libpq and "connect_timeout" not in url.query else {}


def _with_installed_driver(url: URL) -> URL:
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the dependency is psycopg2
    return url.set(drivername="postgresql+psycopg2") if url.drivername == "postgresql" else url


def _create_sqlite_folder(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine) -> None:
    """WAL + busy_timeout for concurrent writer processes, and SQLAlchemy (not the sqlite3
    module, which skips BEGIN for DDL) in control of transactions."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writing = conn.get_execution_options().get(_WRITE_OPTION, False)
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


def _ledger_upsert(on_postgresql: bool) -> Upsert:
    if not on_postgresql:
        return _replacing(sqlite.insert(ledger_table), ledger_table)
    # PostgreSQL gets a batch as one array per column, unnested by the server: a third of
    # the client CPU of SQLAlchemy's multi-row VALUES batching (which an ON CONFLICT
    # executemany only gets with a RETURNING); 10,000 rows: 0.5 s instead of 0.8 s
    columns = list(ledger_table.columns)
    arrays = select(*(func.unnest(cast(bindparam(c.name), ARRAY(c.type))) for c in columns))
    names = [c.name for c in columns]
    return _replacing(postgresql.insert(ledger_table).from_select(names, arrays), ledger_table)


def _simple_upsert(table: Table, on_postgresql: bool) -> Upsert:
    insert = postgresql.insert if on_postgresql else sqlite.insert
    return _replacing(insert(table), table)


def _replacing(insert: Upsert, table: Table) -> Upsert:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE SET every other column."""
    keys = [column.name for column in table.primary_key.columns]
    others = [column.name for column in table.columns if not column.primary_key]
    values = {name: insert.excluded[name] for name in others}
    return insert.on_conflict_do_update(index_elements=keys, set_=values)


def _unique_in_key_order(rows: list[LedgerRow]) -> list[LedgerRow]:
    """Validated, one per key (PostgreSQL refuses to upsert a key twice in one statement),
    in key order (concurrent PostgreSQL writers then lock rows in the same order)."""
    unique: dict[tuple[str, str, str], LedgerRow] = {}
    for row in rows:
        _validate(row)
        unique[(row.source, row.collection, row.doc_id)] = row
    return [unique[key] for key in sorted(unique)]


def _records(rows: list[LedgerRow]) -> list[dict[str, Any]]:
    return [{name: getattr(row, name) for name in _FIELDS} for row in rows]


def _columns(rows: list[LedgerRow]) -> dict[str, list[Any]]:
    return {name: [getattr(row, name) for row in rows] for name in _FIELDS}


def _validate(row: LedgerRow) -> None:
    if row.status not in STATUSES:
        raise ValueError(f"{row.doc_id!r}: status {row.status!r} is not one of {STATUSES}")
    for name in _DATETIME_FIELDS:
        value = getattr(row, name)
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{row.doc_id!r}: {name} must be timezone-aware, got {value!r}")


def _to_rows(result: Result[Any]) -> list[LedgerRow]:
    # selected columns are in field order, so positional construction is exact (and fast)
    return list(starmap(LedgerRow, result.all()))


def _for_source(query: Select[Any], source: str | None) -> Select[Any]:
    return query if source is None else query.where(ledger_table.c.source == source)


def _batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def open_ledger(state: StateConfig) -> Ledger:
    """The ledger of a config's state settings (a context manager: closes on exit)."""
    return Ledger(state.ledger_sqlalchemy_url())
