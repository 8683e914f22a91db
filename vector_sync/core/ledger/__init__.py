"""The ledger: one row per (source, collection, doc_id) saying what Qdrant holds for it,
the expected state (what the source says Qdrant should hold) and per-source state such as
checkpoints: everything a run leaves for the next one.

SQLite (a file in the state dir) by default, any PostgreSQL URL for shared deployments. The
schema is only ever created or changed by the Alembic migrations shipped in `migrations/`,
which run on open (see ledger_db.py for the tables and engines).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import starmap
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Literal, NamedTuple, ParamSpec, TypeVar, get_args

from sqlalchemy import (
    Connection,
    Select,
    delete,
    distinct,
    func,
    inspect,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import URL, Result, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from vector_sync.core.batches import batched
from vector_sync.core.ledger.db import (
    VERSION_TABLE,
    WRITE_OPTION,
    create_engine_for,
    expected_table,
    ledger_table,
    ledger_upsert,
    simple_upsert,
    source_state_table,
    with_installed_driver,
)
from vector_sync.core.settings import StateConfig

Status = Literal["pending", "synced", "stale", "failed"]
STATUSES: tuple[Status, ...] = get_args(Status)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# the newest migration (a test checks that Alembic agrees): a ledger already there is opened
# without Alembic
HEAD_REVISION = "0002"
_BATCH = 5_000  # rows per executemany: bounds memory for huge iterables
_IN_BATCH = 500  # ids per IN (...): far below every SQLite bound-parameter limit
_PAGE = 5_000  # rows per keyset page in source_rows()
_RETRY_DELAYS_S = (0.5, 1, 2, 4)  # then every 5 s, while the outage window lasts
log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


class MigrationFailed(Exception):
    """Alembic could not bring the schema to the current revision."""


class LedgerUnavailable(Exception):
    """The ledger database cannot be opened, migrated, read or written (a PostgreSQL server
    unreachable for longer than the outage window); the message names the masked URL."""


class SchemaNotCurrent(LedgerUnavailable):
    """A ledger opened read-only is not at this version's schema revision: `revision` None
    means it has no tables yet (nothing was synced into it)."""

    def __init__(self, url: str, revision: str | None) -> None:
        self.revision = revision
        super().__init__(
            f"the ledger at {url} has no tables yet" if revision is None else
            f"the ledger at {url} is at schema revision {revision}, older than this "
            f"version's ({HEAD_REVISION}): run `vector-sync sync` first, which upgrades it "
            "(plan, status and verify never change the ledger)")


def _outage_tolerant(method: Callable[Concatenate[Ledger, P], R]) -> Callable[
        Concatenate[Ledger, P], R]:
    """Reads and transactions of the ledger, repeated while a PostgreSQL server is briefly
    unreachable (a restart, a failover). Safe because each call is one transaction, rolled
    back by the server when the connection drops, and writes are idempotent upserts and
    deletes. An iterator argument is taken into a list first, so a retry sees it whole."""

    @functools.wraps(method)
    def tolerant(self: Ledger, *args: P.args, **kwargs: P.kwargs) -> R:
        kept = [list(a) if isinstance(a, Iterator) else a for a in args]
        return self._retrying(lambda: method(self, *kept, **kwargs))  # type: ignore[arg-type]

    return tolerant


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


_ROW_COLUMNS = [ledger_table.c[name] for name in _FIELDS]


class Ledger:
    """What Qdrant holds, per document and collection. Safe for several writer processes."""

    def __init__(self, url: str, outage_s: float = 0, read_only: bool = False):
        """`outage_s`: how long a PostgreSQL server may stay unreachable before a call
        fails (state.ledger_outage_s); its calls are retried meanwhile. `read_only`: for
        commands that change nothing (plan, status, verify): the schema is not migrated
        (SchemaNotCurrent when it is not the current one) and SQLite refuses any write."""
        given = _parse_url(url)
        self._masked_url = given.render_as_string(hide_password=True)
        self._url = with_installed_driver(given)
        self._postgresql = self._url.get_backend_name() == "postgresql"
        self._outage_s = outage_s
        try:
            self._engine = create_engine_for(self._url, read_only)
            self._retrying(self._check_schema if read_only else self._migrate, doing="open")
        except LedgerUnavailable:
            self._dispose_if_created()
            raise
        except (MigrationFailed, ArgumentError, ImportError, OSError) as error:
            self._dispose_if_created()
            raise LedgerUnavailable(
                f"cannot open the ledger at {self._masked_url}: {self._reason(error)}"
            ) from None
        self._upsert_ledger = ledger_upsert(self._postgresql)
        self._upsert_state = simple_upsert(source_state_table, self._postgresql)
        self._upsert_expected = simple_upsert(expected_table, self._postgresql)

    # --- reading ---------------------------------------------------------------------------

    @_outage_tolerant
    def rows(self, source: str, collection: str) -> dict[str, LedgerRow]:
        """Every row of one (source, collection), by doc_id."""
        query = select(*_ROW_COLUMNS).where(
            ledger_table.c.source == source, ledger_table.c.collection == collection
        )
        with self._engine.connect() as conn:
            return {row.doc_id: row for row in _to_rows(conn.execute(query))}

    @_outage_tolerant
    def chunk_counts(self, source: str, collection: str) -> dict[str, int]:
        """doc_id -> chunk_count of one (source, collection), without building the rows: 0
        means no point of the document can be in Qdrant."""
        table = ledger_table
        query = select(table.c.doc_id, table.c.chunk_count).where(
            table.c.source == source, table.c.collection == collection)
        with self._engine.connect() as conn:
            return {doc_id: count for doc_id, count in conn.execute(query).all()}

    @_outage_tolerant
    def rows_of(self, source: str, collection: str, doc_ids: Iterable[str]) -> list[LedgerRow]:
        """The rows of these documents in one (source, collection), those that exist."""
        table = ledger_table
        found: list[LedgerRow] = []
        for batch in batched(doc_ids, _IN_BATCH):
            found += self._select_rows(select(*_ROW_COLUMNS).where(
                table.c.source == source, table.c.collection == collection,
                table.c.doc_id.in_(batch)))
        return found

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

    @_outage_tolerant
    def counts(self, source: str | None = None, collection: str | None = None,
               ) -> dict[tuple[str, str], dict[str, int]]:
        """(source, collection) -> status -> number of rows; every status is present."""
        table = ledger_table
        groups = (table.c.source, table.c.collection, table.c.status)
        query = _for_source(select(*groups, func.count()), source).group_by(*groups)
        if collection is not None:
            query = query.where(table.c.collection == collection)
        result: dict[tuple[str, str], dict[str, int]] = {}
        with self._engine.connect() as conn:
            for row_source, collection, status, number in conn.execute(query):
                by_status = result.setdefault((row_source, collection), dict.fromkeys(STATUSES, 0))
                by_status[status] = number
        return result

    @_outage_tolerant
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

    @_outage_tolerant
    def count_given_up(self, source: str, collection: str) -> int:
        """Failed rows the retries gave up on (no next attempt)."""
        table = ledger_table
        query = select(func.count()).where(
            table.c.source == source, table.c.collection == collection,
            table.c.status == "failed", table.c.next_attempt_at.is_(None))
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    @_outage_tolerant
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

    @_outage_tolerant
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
            # .all(): one fetchall, not a fetchone per row (a third of the time at 20,000)
            return {doc_id: version for doc_id, version in conn.execute(query).all()}

    @_outage_tolerant
    def expected(self, source: str, collection: str) -> dict[str, Expected]:
        """doc_id -> what Qdrant should hold, as of the last diff of this source."""
        table = expected_table
        query = select(table.c.doc_id, table.c.content_hash, table.c.payload_hash,
                       table.c.chunk_count).where(table.c.source == source,
                                                  table.c.collection == collection)
        with self._engine.connect() as conn:
            return {doc_id: Expected(c, p, n) for doc_id, c, p, n in conn.execute(query).all()}

    @_outage_tolerant
    def expected_everywhere(self, source: str, collections: Collection[str]) -> set[str]:
        """Documents with an expected state in every one of `collections`."""
        table = expected_table
        query = (select(table.c.doc_id)
                 .where(table.c.source == source, table.c.collection.in_(list(collections)))
                 .group_by(table.c.doc_id).having(func.count() == len(collections)))
        with self._engine.connect() as conn:
            return set(conn.execute(query).scalars().all())

    @_outage_tolerant
    def get_state(self, source: str, key: str) -> str | None:
        table = source_state_table
        query = select(table.c.value).where(table.c.source == source, table.c.key == key)
        with self._engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    # --- writing ---------------------------------------------------------------------------

    @_outage_tolerant
    def upsert(self, rows: Iterable[LedgerRow]) -> None:
        """Insert or fully replace rows, all in one transaction."""
        with self._writing() as conn:
            for batch in batched(rows, _BATCH):
                unique = _unique_in_key_order(batch)
                parameters = _columns(unique) if self._postgresql else _records(unique)
                conn.execute(self._upsert_ledger, parameters)

    @_outage_tolerant
    def delete(self, source: str, collection: str, doc_ids: Iterable[str]) -> None:
        table = ledger_table
        scope = (table.c.source == source, table.c.collection == collection)
        with self._writing() as conn:
            for batch in batched(doc_ids, _IN_BATCH):
                conn.execute(delete(table).where(*scope, table.c.doc_id.in_(batch)))

    @_outage_tolerant
    def update_expected(self, source: str, collection: str, changed: dict[str, Expected],
                        removed: Iterable[str]) -> None:
        """Record the expected state of the documents whose expectation changed (only those:
        a diff that changes nothing writes nothing)."""
        table = expected_table
        scope = (table.c.source == source, table.c.collection == collection)
        with self._writing() as conn:
            for batch in batched(removed, _IN_BATCH):
                conn.execute(delete(table).where(*scope, table.c.doc_id.in_(batch)))
            for items in batched(sorted(changed.items()), _BATCH):
                conn.execute(self._upsert_expected, [
                    {"source": source, "collection": collection, "doc_id": doc_id,
                     "content_hash": e.content_hash, "payload_hash": e.payload_hash,
                     "chunk_count": e.chunk_count} for doc_id, e in items])

    @_outage_tolerant
    def set_state(self, source: str, key: str, value: str) -> None:
        with self._writing() as conn:
            conn.execute(self._upsert_state, {"source": source, "key": key, "value": value})

    @_outage_tolerant
    def first_state(self, source: str, key: str, value: str) -> str:
        """The value kept under `key`, storing `value` if there is none yet: of processes
        racing to set it, the first one's value is everyone's."""
        table = source_state_table
        with self._writing() as conn:
            kept = conn.execute(select(table.c.value).where(
                table.c.source == source, table.c.key == key)).scalar_one_or_none()
            if kept is not None:
                return str(kept)
            conn.execute(self._upsert_state, {"source": source, "key": key, "value": value})
        return value

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
        if self._revision() == HEAD_REVISION:
            return  # the usual case: no Alembic to import, no migration scripts to read
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        config = Config()
        # ConfigParser interpolates '%', which a folder name may contain
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        with self._writing() as conn:
            if conn.dialect.name == "postgresql":
                # processes opening a fresh database at once must not both create the tables
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('vector_sync.ledger'))"))
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as error:
                raise MigrationFailed(str(error)) from None

    def _check_schema(self) -> None:
        # not _revision(): an unreachable server must be waited for, not read as "no tables"
        with self._engine.connect() as conn:
            revision = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() \
                if inspect(conn).has_table(VERSION_TABLE) else None
        if revision != HEAD_REVISION:
            raise SchemaNotCurrent(self._masked_url, revision)

    def _revision(self) -> str | None:
        """The schema revision the database is at (None before the first migration)."""
        try:
            with self._engine.connect() as conn:
                versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        except DBAPIError:  # no version table yet
            return None
        return str(versions[0][0]) if len(versions) == 1 else None

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE),
        so a concurrent writer waits on busy_timeout instead of failing mid-transaction."""
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def _select_rows(self, query: Select[Any]) -> list[LedgerRow]:
        with self._engine.connect() as conn:
            return _to_rows(conn.execute(query))

    @_outage_tolerant
    def _source_page(self, source: str, after: tuple[str, str] | None) -> list[LedgerRow]:
        table = ledger_table
        query = select(*_ROW_COLUMNS).where(table.c.source == source)
        if after is not None:
            query = query.where(tuple_(table.c.collection, table.c.doc_id) > tuple_(*after))
        query = query.order_by(table.c.collection, table.c.doc_id).limit(_PAGE)
        return self._select_rows(query)

    def _retrying(self, work: Callable[[], R], doing: str = "use") -> R:
        """`work()`, repeated while the PostgreSQL server is unreachable, for up to the
        outage window; any other database error (or the window over) is LedgerUnavailable."""
        deadline, delays = time.monotonic() + self._outage_s, iter(_RETRY_DELAYS_S)
        while True:
            try:
                return work()
            except DBAPIError as error:
                reason = self._reason(error)
                failed = f"cannot {doing} the ledger at {self._masked_url}: "
                left = deadline - time.monotonic()
                if not self._is_outage(error) or self._outage_s == 0:
                    raise LedgerUnavailable(failed + reason) from None
                if left <= 0:
                    raise LedgerUnavailable(
                        f"{failed}unreachable for {self._outage_s:g} s "
                        f"(state.ledger_outage_s): {reason}") from None
                log.warning("the ledger at %s is unreachable (%s): retrying for up to %.0f s",
                            self._masked_url, reason.splitlines()[0], left)
                time.sleep(min(next(delays, 5), left))

    def _is_outage(self, error: DBAPIError) -> bool:
        # SQLite is a local file: its errors (disk full, corruption) do not pass by waiting,
        # and a busy database is already waited for (busy_timeout)
        return self._postgresql and (error.connection_invalidated or isinstance(
            error, OperationalError | InterfaceError))

    def _reason(self, error: BaseException) -> str:
        reason = str(error.orig if isinstance(error, DBAPIError) else error).strip()
        password = self._url.password
        return reason.replace(str(password), "***") if password else reason

    def _dispose_if_created(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()


def _parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        # the text may well contain a password, so it is not repeated
        raise LedgerUnavailable("the ledger URL is not a valid SQLAlchemy URL") from None


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


def open_ledger(state: StateConfig) -> Ledger:
    """The ledger of a config's state settings (a context manager: closes on exit)."""
    return Ledger(state.ledger_sqlalchemy_url(), state.ledger_outage_s)
