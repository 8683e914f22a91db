"""The generations of each collection, in the ledger's `generations` table: which physical
collection serves a configured name, which one is being built (and how far it got), which
ones are retired and until when they are kept for rollback.

Ledger rows follow the pointer: the serving generation's document rows, expected state and
per-source state are always under the configured name (so status, verify, the sensors and
every sync read them as before); a building or retired generation's are under its physical
name. A switch swaps the two sets of names in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    delete,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from vector_sync.core.generations.spec import GenerationSpec
from vector_sync.core.ledger import open_ledger
from vector_sync.core.ledger.db import (
    create_engine_for,
    expected_table,
    generations_table,
    ledger_table,
    source_state_table,
    with_installed_driver,
    write_transaction,
)
from vector_sync.core.ledger.outages import OutageWindow
from vector_sync.core.settings import StateConfig

log = logging.getLogger(__name__)
T = generations_table
# per-source state kept per collection (core/pipeline/checkpoints.py): moved with the rows
STATE_PREFIXES = ("collection_fingerprint:", "checkpoint:")


class Generation(NamedTuple):
    collection: str
    physical: str
    fingerprint: str
    spec: GenerationSpec
    state: str  # building, switching, serving, retired
    created_at: datetime
    switched_at: datetime | None
    retire_after: datetime | None
    documents_done: int
    documents_total: int
    chunks_embedded: int
    chunks_reused: int
    seconds: float

    @property
    def chunks_per_s(self) -> float:
        return round(self.chunks_embedded / self.seconds, 1) if self.seconds else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first batch)."""
        left = self.documents_total - self.documents_done
        if left <= 0:
            return 0.0
        if not self.documents_done or not self.seconds:
            return None
        return round(left * self.seconds / self.documents_done, 1)

    def ledger_name(self) -> str:
        """The name its ledger rows are under."""
        return self.collection if self.state == "serving" else self.physical


def _row(values: Any) -> Generation:
    (collection, physical, fingerprint, spec_json, state, created, switched, retire, done,
     total, embedded, reused, seconds) = values
    return Generation(str(collection), str(physical), str(fingerprint),
                      GenerationSpec.from_json(str(spec_json)), str(state), created, switched,
                      retire, int(done), int(total), int(embedded), int(reused),
                      float(seconds))


_COLUMNS = (T.c.collection, T.c.physical, T.c.fingerprint, T.c.spec_json, T.c.state,
            T.c.created_at, T.c.switched_at, T.c.retire_after, T.c.documents_done,
            T.c.documents_total, T.c.chunks_embedded, T.c.chunks_reused, T.c.seconds)


class Registry:
    def __init__(self, engine: Engine | None, outages: OutageWindow | None = None) -> None:
        self.engine = engine  # None: a ledger with no generations table yet (read-only)
        # a PostgreSQL server briefly unreachable is waited out, as by the ledger
        self.outages = outages

    @classmethod
    @contextmanager
    def open(cls, state: StateConfig, read_only: bool = False) -> Iterator[Registry]:
        """Writable: the ledger is created or upgraded first. Read-only: a ledger that does
        not exist yet, or predates generations, reads as having none."""
        url = make_url(state.ledger_sqlalchemy_url())
        if read_only:
            database = url.database or ""
            if url.get_backend_name() == "sqlite" and database and \
                    not Path(database).exists():
                yield cls(None)
                return
        else:
            with open_ledger(state):
                pass  # migrated to the current schema
        engine = create_engine_for(with_installed_driver(url), read_only=read_only)
        outages = OutageWindow(url, state.ledger_outage_s)
        try:
            if read_only and not outages.retrying(lambda: _has_table(engine), doing="open"):
                yield cls(None)
                return
            yield cls(engine, outages)
        finally:
            engine.dispose()

    # --- reading ---------------------------------------------------------------------------

    def all(self, collection: str | None = None) -> list[Generation]:
        if self.engine is None:
            return []
        query = select(*_COLUMNS).order_by(T.c.collection, T.c.created_at)
        if collection is not None:
            query = query.where(T.c.collection == collection)
        engine = self.engine

        def read() -> list[Generation]:
            with engine.connect() as conn:
                return [_row(r) for r in conn.execute(query)]

        return self.outages.retrying(read, doing="read") if self.outages else read()

    def in_state(self, collection: str, *states: str) -> list[Generation]:
        return [g for g in self.all(collection) if g.state in states]

    def serving(self, collection: str) -> Generation | None:
        found = self.in_state(collection, "serving", "switching")
        return next((g for g in found if g.state == "serving"), found[0] if found else None)

    def building(self, collection: str) -> Generation | None:
        found = self.in_state(collection, "building")
        return found[0] if found else None

    def retired(self, collection: str) -> list[Generation]:
        """Newest switch first."""
        return sorted(self.in_state(collection, "retired"),
                      key=lambda g: g.switched_at or g.created_at, reverse=True)

    def vector_versions(self, collection: str) -> dict[str, int]:
        """Model and chunker (`vector_version`) -> documents, of the rows under a name."""
        if self.engine is None:
            return {}
        table = ledger_table
        query = (select(table.c.vector_version, func.count())
                 .where(table.c.collection == collection, table.c.vector_version.is_not(None))
                 .group_by(table.c.vector_version))
        with self.engine.connect() as conn:
            return {str(version): int(count) for version, count in conn.execute(query)}

    def physicals(self) -> dict[str, str]:
        """Every generation's physical collection -> the configured name it belongs to."""
        return {g.physical: g.collection for g in self.all()}

    # --- writing ---------------------------------------------------------------------------

    def _engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("the generations registry was opened read-only")
        return self.engine

    def add(self, collection: str, physical: str, spec: GenerationSpec, state: str) -> None:
        """Record a generation; one already recorded under the same names is kept as it is
        (processes starting at once, e.g. runs of two sources feeding a collection, may all
        record its first generation)."""
        now = datetime.now(UTC)
        with write_transaction(self._engine()) as conn:
            insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)
            conn.execute(insert(T).values(
                collection=collection, physical=physical, fingerprint=spec.fingerprint,
                spec_json=spec.to_json(), state=state, created_at=now, updated_at=now,
            ).on_conflict_do_nothing())

    def update(self, generation: Generation, **values: object) -> None:
        with write_transaction(self._engine()) as conn:
            conn.execute(update(T).where(_key(generation)).values(
                **values, updated_at=datetime.now(UTC)))

    def remove(self, generation: Generation) -> None:
        """Forget a generation and every ledger row under its name (not the serving one)."""
        name = generation.ledger_name()
        with write_transaction(self._engine()) as conn:
            conn.execute(delete(T).where(_key(generation)))
            _delete_rows(conn, name)

    def rename_physical(self, generation: Generation, physical: str) -> None:
        """The serving generation moved to another physical collection (its rows are under
        the configured name and stay there)."""
        self.update(generation, physical=physical)

    def swap(self, collection: str, leaving: Generation, arriving: Generation,
             keep_old: timedelta) -> None:
        """After the pointer moved from `leaving` to `arriving`: in one transaction the
        ledger rows trade names (the arriving generation's rows take the configured name,
        the leaving one's its physical name) and the two states change."""
        now = datetime.now(UTC)
        parking = f"{collection}__switching"
        with write_transaction(self._engine()) as conn:
            _rename_rows(conn, collection, parking)
            _rename_rows(conn, arriving.physical, collection)
            _rename_rows(conn, parking, leaving.physical)
            conn.execute(update(T).where(_key(leaving)).values(
                state="retired", retire_after=now + keep_old, updated_at=now))
            conn.execute(update(T).where(_key(arriving)).values(
                state="serving", switched_at=now, retire_after=None, updated_at=now))
        log.info("%s: the ledger rows now describe %s as the serving generation", collection,
                 arriving.physical)


def _has_table(engine: Engine) -> bool:
    with engine.connect() as conn:
        return inspect(conn).has_table(T.name)


def _key(generation: Generation) -> ColumnElement[bool]:
    return and_(T.c.collection == generation.collection, T.c.physical == generation.physical)


def _rename_rows(conn: Connection, old: str, new: str) -> None:
    for table in (ledger_table, expected_table):
        conn.execute(update(table).where(table.c.collection == old).values(collection=new))
    state = source_state_table
    for prefix in STATE_PREFIXES:
        rows = conn.execute(select(state.c.source, state.c.key).where(
            state.c.key == prefix + old)).all()
        for source, key in rows:
            conn.execute(delete(state).where(state.c.source == source,
                                             state.c.key == prefix + new))
            conn.execute(update(state).where(state.c.source == source, state.c.key == key)
                         .values(key=prefix + new))


def _delete_rows(conn: Connection, name: str) -> None:
    for table in (ledger_table, expected_table):
        conn.execute(delete(table).where(table.c.collection == name))
    state = source_state_table
    conn.execute(delete(state).where(state.c.key.in_([p + name for p in STATE_PREFIXES])))
