"""The ledger's reads for stages that stream: a batch of documents looked up by doc_id (one
indexed query per few hundred ids), and a collection's keys paged in doc_id order. A stage
built on them holds one batch of rows at a time, whatever the size of the source, where a
whole-collection read holds a Python object per document.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Executable, Select, distinct, func, select, text
from sqlalchemy.sql import ColumnElement

from vector_sync.core.batches import batched
from vector_sync.core.ledger.db import UNSYNCED, expected_table, ledger_table
from vector_sync.core.ledger.outages import OutageWindow, outage_tolerant
from vector_sync.core.ledger.rows import Expected

# ids per IN (...) of a keyed look-up: with the other parameters still below SQLite's
# oldest bound-parameter limit (999); larger lists save little (a lookup is index seeks)
KEYED_BATCH = 900
KEY_PAGE = 5_000  # keys per page of a paged read: about a megabyte of rows


class KeyedReads:
    """Mixed into Ledger: reads by doc_id batch, and paged reads of a collection's keys."""

    _engine: Engine
    outages: OutageWindow

    @outage_tolerant
    def hints_of(self, source: str, collections: Collection[str],
                 doc_ids: Sequence[str]) -> dict[str, str]:
        """doc_id -> version hint, of those of `doc_ids` a sync may leave unread: synced in
        every one of `collections` at the same hint, with an expected state in each."""
        table, names = ledger_table, list(collections)
        # the range is probed in the first collection: a clean document is in every one
        probe = select(table.c.doc_id).where(table.c.source == source,
                                             table.c.collection == names[0]) if names else None

        def clean(conn: Connection, ids: Condition) -> list[Any]:
            found = conn.execute(synced_everywhere(source, names).where(
                ids(table.c.doc_id))).all()
            if not found:
                return []
            known = set(conn.execute(expected_everywhere(source, names).where(
                ids(expected_table.c.doc_id))).scalars().all())
            return [row for row in found if row[0] in known]

        with self._engine.connect() as conn:
            return dict(_nearby(conn, doc_ids, probe, clean))

    @outage_tolerant
    def expected_of(self, source: str, collection: str,
                    doc_ids: Sequence[str]) -> dict[str, Expected]:
        """doc_id -> expected state, of those of `doc_ids` that have one."""
        table = expected_table
        scope = (table.c.source == source, table.c.collection == collection)
        query = select(table.c.doc_id, table.c.content_hash, table.c.payload_hash,
                       table.c.chunk_count).where(*scope)

        def rows(conn: Connection, ids: Condition) -> list[Any]:
            return list(conn.execute(query.where(ids(table.c.doc_id))).all())

        with self._engine.connect() as conn:
            found = _nearby(conn, doc_ids, select(table.c.doc_id).where(*scope), rows)
        return {d: Expected(c, p, n) for d, c, p, n in found}

    @outage_tolerant
    def present_of(self, source: str, collection: str, doc_ids: Sequence[str]) -> set[str]:
        """Those of `doc_ids` with a ledger row in the collection."""
        table = ledger_table
        found: set[str] = set()
        with self._engine.connect() as conn:
            for batch in batched(doc_ids, KEYED_BATCH):
                found.update(conn.execute(select(table.c.doc_id).where(
                    table.c.source == source, table.c.collection == collection,
                    table.c.doc_id.in_(batch))).scalars().all())
        return found

    @outage_tolerant
    def known_collections(self, source: str) -> list[str]:
        """The collections the ledger has rows or expected states of `source` in."""
        found: set[str] = set()
        with self._engine.connect() as conn:
            for table in (ledger_table, expected_table):
                found.update(conn.execute(select(table.c.collection).where(
                    table.c.source == source).distinct()).scalars().all())
        return sorted(found)

    @outage_tolerant
    def unsynced_of(self, source: str) -> dict[str, str]:
        """doc_id -> version hint ("" when none) of the documents of `source` with a row in
        some collection that is not synced, or synced without a hint: read by a partial index
        holding only those rows, so it costs what they number, not the source."""
        table = ledger_table
        query: Executable = select(table.c.doc_id, table.c.source_version).where(
            table.c.source == source, UNSYNCED)
        if self._engine.dialect.name == "sqlite":
            # without statistics SQLite would take the primary key's prefix (source) instead:
            # every row of the source
            query = text("SELECT doc_id, source_version FROM ledger INDEXED BY "
                         f"ix_ledger_unsynced WHERE source = :source AND {UNSYNCED.text}"
                         ).bindparams(source=source)
        found: dict[str, str] = {}
        with self._engine.connect() as conn:
            for doc_id, hint in conn.execute(query).all():
                found.setdefault(doc_id, hint or "")
        return found

    @outage_tolerant
    def count_rows(self, source: str, collection: str, with_points: bool = False) -> int:
        """Ledger rows of the collection (`with_points`: those with a chunk in Qdrant),
        counted by the database."""
        table = ledger_table
        query = select(func.count()).where(table.c.source == source,
                                           table.c.collection == collection)
        if with_points:
            query = query.where(table.c.chunk_count > 0)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    @outage_tolerant
    def expected_totals(self, source: str, collection: str) -> tuple[int, int]:
        """(documents with an expected state, points they call for)."""
        table = expected_table
        query = select(func.count(), func.coalesce(func.sum(table.c.chunk_count), 0)).where(
            table.c.source == source, table.c.collection == collection)
        with self._engine.connect() as conn:
            count, points = conn.execute(query).one()
        return int(count), int(points)

    def key_pages(self, source: str, collection: str
                  ) -> Iterator[list[tuple[str, int, str | None]]]:
        """(doc_id, chunk_count, source_version) of every ledger row of the collection, in
        pages in doc_id order."""
        table = ledger_table
        return self._pages(select(table.c.doc_id, table.c.chunk_count, table.c.source_version),
                           table.c.doc_id, table.c.source == source,
                           table.c.collection == collection)

    def id_pages(self, source: str, collection: str, expected: bool = False
                 ) -> Iterator[list[tuple[str]]]:
        """(doc_id,) of every ledger row (`expected`: expected state) of the collection, in
        pages in doc_id order."""
        table = expected_table if expected else ledger_table
        return self._pages(select(table.c.doc_id), table.c.doc_id, table.c.source == source,
                           table.c.collection == collection)

    def claim_pages(self, source: str, collection: str
                    ) -> Iterator[list[tuple[str, str | None, str | None, int]]]:
        """(doc_id, content_hash, payload_hash, chunk_count) of every ledger row of the
        collection (what the ledger says Qdrant holds), in pages in doc_id order."""
        table = ledger_table
        return self._pages(select(table.c.doc_id, table.c.content_hash, table.c.payload_hash,
                                  table.c.chunk_count),
                           table.c.doc_id, table.c.source == source,
                           table.c.collection == collection)

    def expected_pages(self, source: str, collection: str
                       ) -> Iterator[list[tuple[str, str, str, int]]]:
        """(doc_id, content_hash, payload_hash, chunk_count) of every expected state of the
        collection, in pages in doc_id order."""
        table = expected_table
        return self._pages(select(table.c.doc_id, table.c.content_hash, table.c.payload_hash,
                                  table.c.chunk_count),
                           table.c.doc_id, table.c.source == source,
                           table.c.collection == collection)

    def _pages(self, query: Select[Any], key: ColumnElement[str],
               *where: ColumnElement[bool]) -> Iterator[list[Any]]:
        """Keyset pages: no connection or transaction stays open while the caller works."""
        after: str | None = None
        while True:
            page = self._page(query, key, where, after)
            if page:
                yield page
            if len(page) < KEY_PAGE:
                return
            after = page[-1][0]

    @outage_tolerant
    def _page(self, query: Select[Any], key: ColumnElement[str],
              where: tuple[ColumnElement[bool], ...], after: str | None) -> list[Any]:
        query = query.where(*where)
        if after is not None:
            query = query.where(key > after)
        with self._engine.connect() as conn:
            # .all(): one fetchall, not a fetch per row; Rows are tuples to the caller
            return list(conn.execute(query.order_by(key).limit(KEY_PAGE)).all())


def synced_everywhere(source: str, collections: list[str]) -> Select[Any]:
    """(doc_id, hint) of documents synced in every one of `collections` at the same hint."""
    table = ledger_table
    return (select(table.c.doc_id, func.min(table.c.source_version))
            .where(table.c.source == source, table.c.collection.in_(collections),
                   table.c.status == "synced", table.c.source_version.is_not(None))
            .group_by(table.c.doc_id)
            .having(func.count() == len(collections),
                    func.count(distinct(table.c.source_version)) == 1))


def expected_everywhere(source: str, collections: list[str]) -> Select[Any]:
    """doc_id of documents with an expected state in every one of `collections`."""
    table = expected_table
    return (select(table.c.doc_id)
            .where(table.c.source == source, table.c.collection.in_(collections))
            .group_by(table.c.doc_id).having(func.count() == len(collections)))


Condition = Callable[[ColumnElement[str]], ColumnElement[bool]]  # ids, on a doc_id column


def _nearby(conn: Connection, doc_ids: Sequence[str], probe: Select[Any] | None,
            rows: Callable[[Connection, Condition], list[Any]]) -> list[Any]:
    """`rows(conn, ids)` for `doc_ids`: rows whose first value is a doc_id, those of other
    ids dropped. A listing in name order hands over runs of neighbouring ids, so the range
    between the lowest and highest id is read first, in one sequential read, when `probe`
    (a select of one doc_id column) finds few more rows in it than there are ids: a look-up
    per id costs several times as much. The ids not found there (all of them, when the
    range is wide) are looked up by IN (...) batches, so the answer is exact whatever the
    order of the listing or the database's collation."""
    wanted = set(doc_ids)
    found: list[Any] = []
    if probe is not None and len(wanted) > 1:
        low, high = min(wanted), max(wanted)
        limit = 2 * len(wanted) + 1
        column = probe.selected_columns[0]
        near = conn.execute(select(func.count()).select_from(
            probe.where(column >= low, column <= high).limit(limit).subquery())).scalar_one()
        if near < limit:
            found = [row for row in rows(conn, lambda key: (key >= low) & (key <= high))
                     if row[0] in wanted]
            wanted.difference_update(row[0] for row in found)
    for batch in batched(sorted(wanted), KEYED_BATCH):
        found += rows(conn, lambda key, ids=batch: key.in_(ids))  # type: ignore[misc]
    return found
