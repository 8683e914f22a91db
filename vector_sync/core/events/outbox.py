"""The outbox: events stored in the ledger's database, in the transaction of the ledger
change they describe (`insert` takes that transaction's connection), and one delivery
record per (sink, event) once a sink took it (`delivered`) or refused it for good
(`failed`); `retrying` counts attempts that will be made again. A sink's backlog is every
event without a final record for it, oldest first."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import Connection, Engine, and_, delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite

from vector_sync.core.events.cloudevents import Event
from vector_sync.core.ledger.db import outbox_delivery_table, outbox_table, write_transaction

DeliveryState = Literal["delivered", "failed", "retrying"]
FINAL: tuple[DeliveryState, ...] = ("delivered", "failed")
_COLUMNS = ("event_id", "type", "source", "collection", "subject", "time", "data")
_ERROR_CHARS = 1000


def insert(conn: Connection, events: Sequence[Event]) -> None:
    """Add events in the caller's transaction. An id already there is the same transition
    recorded again (a repeated run): kept once."""
    if not events:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(outbox_table).on_conflict_do_nothing(
        index_elements=["event_id"])
    conn.execute(statement, [
        {"event_id": e.event_id, "type": e.type, "source": e.source,
         "collection": e.collection, "subject": e.subject, "time": e.time,
         "data": json.dumps(e.data, separators=(",", ":"), sort_keys=True, default=str)}
        for e in events])


def record(engine: Engine, events: Sequence[Event]) -> None:
    """Add events in a transaction of their own (events no ledger row change goes with)."""
    with write_transaction(engine) as conn:
        insert(conn, events)


def _event(row: Any) -> Event:
    return Event(row.event_id, row.type, row.source, row.collection, row.subject, row.time,
                 json.loads(row.data), row.seq)


def _undelivered(sink: str) -> Any:
    d = outbox_delivery_table
    return ~exists().where(d.c.seq == outbox_table.c.seq, d.c.sink == sink,
                           d.c.state.in_(FINAL))


def pending(engine: Engine, sink: str, limit: int = 500) -> list[Event]:
    """The oldest events `sink` has not taken (nor refused for good), in outbox order."""
    o = outbox_table
    query = select(o).where(_undelivered(sink)).order_by(o.c.seq).limit(limit)
    with engine.connect() as conn:
        return [_event(row) for row in conn.execute(query)]


def mark(engine: Engine, sink: str, seqs: Iterable[int], state: DeliveryState,
         error: str | None = None) -> None:
    """Record an attempt of `sink` at these events (each attempt counted)."""
    seqs = list(seqs)
    if not seqs:
        return
    d = outbox_delivery_table
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(d)
        statement = statement.on_conflict_do_update(
            index_elements=["sink", "seq"],
            set_={"state": statement.excluded.state, "attempts": d.c.attempts + 1,
                  "last_error": statement.excluded.last_error,
                  "delivered_at": statement.excluded.delivered_at,
                  "updated_at": statement.excluded.updated_at})
        conn.execute(statement, [
            {"sink": sink, "seq": seq, "state": state, "attempts": 1,
             "last_error": error[:_ERROR_CHARS] if error else None,
             "delivered_at": now if state == "delivered" else None, "updated_at": now}
            for seq in seqs])


class Backlog(NamedTuple):
    events: int
    oldest: datetime | None  # the time of the oldest event not yet delivered
    failed: int  # events refused for good (a webhook's 4xx)
    last_error: str | None


def backlog(engine: Engine, sinks: Sequence[str],
            collection: str | None = None) -> dict[str, Backlog]:
    """Per sink: events it has yet to take (of one collection's documents, or all)."""
    o, d = outbox_table, outbox_delivery_table
    found: dict[str, Backlog] = {}
    with engine.connect() as conn:
        for sink in sinks:
            query = select(func.count(), func.min(o.c.time)).where(_undelivered(sink))
            if collection is not None:
                query = query.where(o.c.collection == collection)
            count, oldest = conn.execute(query).one()
            failed = conn.execute(select(func.count()).where(
                d.c.sink == sink, d.c.state == "failed")).scalar_one()
            error = conn.execute(
                select(d.c.last_error).where(d.c.sink == sink, d.c.last_error.is_not(None))
                .order_by(d.c.updated_at.desc()).limit(1)).scalar_one_or_none()
            found[sink] = Backlog(int(count), oldest, int(failed), error)
    return found


def tail(engine: Engine, limit: int = 20, after: int = 0, type_: str | None = None,
         since: datetime | None = None) -> list[Event]:
    """The newest `limit` events after seq `after` (all of them when `after` is given),
    oldest first."""
    o = outbox_table
    query = select(o).where(o.c.seq > after)
    if type_:
        query = query.where(o.c.type == type_)
    if since is not None:
        query = query.where(o.c.time >= since)
    query = query.order_by(o.c.seq) if after else query.order_by(o.c.seq.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [_event(row) for row in conn.execute(query)]
    return rows if after else rows[::-1]


def deliveries(engine: Engine, seq: int) -> dict[str, tuple[str, int, str | None]]:
    """sink -> (state, attempts, last error) of one event."""
    d = outbox_delivery_table
    query = select(d.c.sink, d.c.state, d.c.attempts, d.c.last_error).where(d.c.seq == seq)
    with engine.connect() as conn:
        return {sink: (state, attempts, error) for sink, state, attempts, error in
                conn.execute(query)}


def forget_deliveries(engine: Engine, sink: str, since: datetime) -> int:
    """Make `sink` take again every event since `since` (`events redeliver`)."""
    d, o = outbox_delivery_table, outbox_table
    with write_transaction(engine) as conn:
        result = conn.execute(delete(d).where(d.c.sink == sink, d.c.seq.in_(
            select(o.c.seq).where(o.c.time >= since))))
    return int(result.rowcount or 0)


def prune(engine: Engine, sinks: Sequence[str], before: datetime) -> int:
    """Delete events older than `before` that every sink has (delivered or refused)."""
    o, d = outbox_table, outbox_delivery_table
    done = [exists().where(d.c.seq == o.c.seq, d.c.sink == s, d.c.state.in_(FINAL))
            for s in sinks]
    old = select(o.c.seq).where(o.c.time < before, and_(*done)) if done else \
        select(o.c.seq).where(o.c.time < before)
    with engine.connect() as conn:  # usually nothing: no write transaction for that
        if conn.execute(old.limit(1)).first() is None:
            return 0
    with write_transaction(engine) as conn:
        seqs = list(conn.execute(old).scalars())
        for start in range(0, len(seqs), 500):
            batch = seqs[start:start + 500]
            conn.execute(delete(d).where(d.c.seq.in_(batch)))
            conn.execute(delete(o).where(o.c.seq.in_(batch)))
    return len(seqs)


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox_table)).scalar_one())
