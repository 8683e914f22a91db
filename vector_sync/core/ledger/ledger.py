"""The ledger: one row per (source, collection, doc_id) saying what Qdrant holds for it,
the expected state (what the source says Qdrant should hold) and per-source state such as
checkpoints: everything a run leaves for the next one. `Ledger` reads and writes them, each
call one transaction.

SQLite (a file in the state dir) by default, any PostgreSQL URL for shared deployments (see
db.py for the tables and engines, schema.py for the migrations that run on open, outages.py
for how a briefly unreachable server is waited out).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from itertools import starmap
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, Select, delete, func, select, tuple_
from sqlalchemy.engine import URL, Result, make_url
from sqlalchemy.exc import ArgumentError

from vector_sync.core.batches import batched
from vector_sync.core.events import outbox
from vector_sync.core.events.cloudevents import Event
from vector_sync.core.ledger.db import (
    create_engine_for,
    expected_table,
    ledger_table,
    ledger_upsert,
    simple_upsert,
    source_state_table,
    with_installed_driver,
    write_transaction,
)
from vector_sync.core.ledger.keyed import KeyedReads, expected_everywhere, synced_everywhere
from vector_sync.core.ledger.outages import LedgerUnavailable, OutageWindow, outage_tolerant
from vector_sync.core.ledger.rows import (
    FIELDS,
    STATUSES,
    Expected,
    LedgerRow,
    unique_in_key_order,
)
from vector_sync.core.ledger.schema import MigrationFailed, check_schema, migrate
from vector_sync.core.settings import StateConfig

_BATCH = 5_000  # rows per executemany: bounds memory for huge iterables
_IN_BATCH = 500  # ids per IN (...): far below every SQLite bound-parameter limit
_PAGE = 5_000  # rows per keyset page in source_rows()
_ROW_COLUMNS = [ledger_table.c[name] for name in FIELDS]


class Ledger(KeyedReads):
    """What Qdrant holds, per document and collection. Safe for several writer processes.
    Whole-collection reads (`rows`, `expected`, ...) are for small sets and tools; the stages
    read by doc_id batch or in pages (keyed.py)."""

    def __init__(self, url: str, outage_s: float = 0, read_only: bool = False):
        """`outage_s`: how long a PostgreSQL server may stay unreachable before a call
        fails (state.ledger_outage_s); its calls are retried meanwhile. `read_only`: for
        commands that change nothing (plan, status, verify): the schema is not migrated
        (SchemaNotCurrent when it is not the current one) and SQLite refuses any write."""
        given = _parse_url(url)
        self.outages = OutageWindow(given, outage_s)
        self._postgresql = given.get_backend_name() == "postgresql"
        try:
            engine = self._engine = create_engine_for(with_installed_driver(given), read_only)
            if read_only:
                masked_url = self.outages.masked_url
                self.outages.retrying(lambda: check_schema(engine, masked_url), doing="open")
            else:
                self.outages.retrying(lambda: migrate(engine), doing="open")
        except LedgerUnavailable:
            self._dispose_if_created()
            raise
        except (MigrationFailed, ArgumentError, ImportError, OSError) as error:
            self._dispose_if_created()
            raise LedgerUnavailable(f"cannot open the ledger at {self.outages.masked_url}: "
                                    f"{self.outages.reason(error)}") from None
        self._upsert_ledger = ledger_upsert(self._postgresql)
        self._upsert_state = simple_upsert(source_state_table, self._postgresql)
        self._upsert_expected = simple_upsert(expected_table, self._postgresql)

    # --- reading ---------------------------------------------------------------------------

    @outage_tolerant
    def rows(self, source: str, collection: str) -> dict[str, LedgerRow]:
        """Every row of one (source, collection), by doc_id."""
        query = select(*_ROW_COLUMNS).where(
            ledger_table.c.source == source, ledger_table.c.collection == collection
        )
        with self._engine.connect() as conn:
            return {row.doc_id: row for row in _to_rows(conn.execute(query))}

    @outage_tolerant
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

    @outage_tolerant
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

    @outage_tolerant
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

    @outage_tolerant
    def count_given_up(self, collection: str, source: str | None = None) -> int:
        """Failed rows of a collection (of every source, or one) the retries gave up on (no
        next attempt)."""
        table = ledger_table
        query = _for_source(select(func.count()).where(
            table.c.collection == collection, table.c.status == "failed",
            table.c.next_attempt_at.is_(None)), source)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    @outage_tolerant
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

    @outage_tolerant
    def synced_hints(self, source: str, collections: Collection[str]) -> dict[str, str]:
        """doc_id -> version hint, for documents synced in every one of `collections` at
        the same hint: the documents a sync may leave unread. One grouped query, no rows
        materialized (it runs on every sync, for every document)."""
        query = synced_everywhere(source, list(collections))
        with self._engine.connect() as conn:
            # .all(): one fetchall, not a fetchone per row (a third of the time at 20,000)
            return {doc_id: version for doc_id, version in conn.execute(query).all()}

    @outage_tolerant
    def expected(self, source: str, collection: str) -> dict[str, Expected]:
        """doc_id -> what Qdrant should hold, as of the last diff of this source."""
        table = expected_table
        query = select(table.c.doc_id, table.c.content_hash, table.c.payload_hash,
                       table.c.chunk_count).where(table.c.source == source,
                                                  table.c.collection == collection)
        with self._engine.connect() as conn:
            return {doc_id: Expected(c, p, n) for doc_id, c, p, n in conn.execute(query).all()}

    @outage_tolerant
    def expected_everywhere(self, source: str, collections: Collection[str]) -> set[str]:
        """Documents with an expected state in every one of `collections`."""
        with self._engine.connect() as conn:
            return set(conn.execute(expected_everywhere(source, list(collections)))
                       .scalars().all())

    @outage_tolerant
    def states(self, source: str) -> dict[str, str]:
        """key -> value of everything kept for `source` in source_state."""
        table = source_state_table
        query = select(table.c.key, table.c.value).where(table.c.source == source)
        with self._engine.connect() as conn:
            return {key: value for key, value in conn.execute(query).all()}

    @outage_tolerant
    def get_state(self, source: str, key: str) -> str | None:
        table = source_state_table
        query = select(table.c.value).where(table.c.source == source, table.c.key == key)
        with self._engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    # --- writing ---------------------------------------------------------------------------

    @outage_tolerant
    def upsert(self, rows: Iterable[LedgerRow], events: Sequence[Event] = ()) -> None:
        """Insert or fully replace rows, all in one transaction; `events`: the sync events
        these rows' changes make, written to the outbox in that same transaction."""
        with self._writing() as conn:
            for batch in batched(rows, _BATCH):
                unique = unique_in_key_order(batch)
                parameters = _columns(unique) if self._postgresql else _records(unique)
                conn.execute(self._upsert_ledger, parameters)
            outbox.insert(conn, events)

    @outage_tolerant
    def delete(self, source: str, collection: str, doc_ids: Iterable[str],
               events: Sequence[Event] = ()) -> None:
        """Forget rows; `events` go to the outbox in the same transaction."""
        table = ledger_table
        scope = (table.c.source == source, table.c.collection == collection)
        with self._writing() as conn:
            for batch in batched(doc_ids, _IN_BATCH):
                conn.execute(delete(table).where(*scope, table.c.doc_id.in_(batch)))
            outbox.insert(conn, events)

    @outage_tolerant
    def record_events(self, events: Sequence[Event]) -> None:
        """Events that go with no ledger row (a check's findings, a finished run)."""
        outbox.record(self._engine, events)

    @outage_tolerant
    def update_expected(self, source: str, collection: str,
                        changed: Mapping[str, Expected] | Iterable[tuple[str, Expected]],
                        removed: Iterable[str]) -> None:
        """Record the expected state of the documents whose expectation changed (only those:
        a diff that changes nothing writes nothing): doc_id -> Expected, or (doc_id,
        Expected) pairs streamed from a diff's spill file."""
        pairs = changed.items() if isinstance(changed, Mapping) else changed
        table = expected_table
        scope = (table.c.source == source, table.c.collection == collection)
        with self._writing() as conn:
            for batch in batched(removed, _IN_BATCH):
                conn.execute(delete(table).where(*scope, table.c.doc_id.in_(batch)))
            for items in map(sorted, batched(pairs, _BATCH)):
                conn.execute(self._upsert_expected, [
                    {"source": source, "collection": collection, "doc_id": doc_id,
                     "content_hash": e.content_hash, "payload_hash": e.payload_hash,
                     "chunk_count": e.chunk_count} for doc_id, e in items])

    @outage_tolerant
    def set_state(self, source: str, key: str, value: str) -> None:
        with self._writing() as conn:
            conn.execute(self._upsert_state, {"source": source, "key": key, "value": value})

    @outage_tolerant
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

    @property
    def engine(self) -> Engine:
        """The database, for the outbox's readers (core/events) and the metrics."""
        return self._engine

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
        return f"Ledger({self.outages.masked_url!r})"

    # --- internals -------------------------------------------------------------------------

    def _writing(self) -> AbstractContextManager[Connection]:
        return write_transaction(self._engine)

    def _select_rows(self, query: Select[Any]) -> list[LedgerRow]:
        with self._engine.connect() as conn:
            return _to_rows(conn.execute(query))

    @outage_tolerant
    def _source_page(self, source: str, after: tuple[str, str] | None) -> list[LedgerRow]:
        table = ledger_table
        query = select(*_ROW_COLUMNS).where(table.c.source == source)
        if after is not None:
            query = query.where(tuple_(table.c.collection, table.c.doc_id) > tuple_(*after))
        query = query.order_by(table.c.collection, table.c.doc_id).limit(_PAGE)
        return self._select_rows(query)

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


def _records(rows: list[LedgerRow]) -> list[dict[str, Any]]:
    return [{name: getattr(row, name) for name in FIELDS} for row in rows]


def _columns(rows: list[LedgerRow]) -> dict[str, list[Any]]:
    return {name: [getattr(row, name) for row in rows] for name in FIELDS}


def _to_rows(result: Result[Any]) -> list[LedgerRow]:
    # selected columns are in field order, so positional construction is exact (and fast)
    return list(starmap(LedgerRow, result.all()))


def _for_source(query: Select[Any], source: str | None) -> Select[Any]:
    return query if source is None else query.where(ledger_table.c.source == source)


def open_ledger(state: StateConfig) -> Ledger:
    """The ledger of a config's state settings (a context manager: closes on exit)."""
    return Ledger(state.ledger_sqlalchemy_url(), state.ledger_outage_s)
