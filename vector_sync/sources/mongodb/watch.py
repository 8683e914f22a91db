"""Has a MongoDB source changed since the last look? Cheap answers for the watch sensor.

No Dagster here: `poll_changes(name, config, state)` takes the state the previous call
returned (kept by the caller, e.g. in a sensor cursor) and says whether a sync is due.

- Change stream (the normal case): the collection's change stream is resumed from the token
  kept in the state, drained without blocking (`try_next`, short `max_await_time_ms`) for a
  few seconds at most, and its events are counted. The newest token, the post-batch one when
  no event came, becomes the new state, so a quiet collection keeps a fresh token.
- Any insert, update, replace or delete in the collection counts, whatever `filter` says:
  an update that moves a document *out* of the filter must remove it from Qdrant, yet its
  post-image no longer matches, and deletes carry no document at all. A sync that finds
  nothing relevant costs one pass over the ids and embeds nothing. The exception is
  write-back: updates that only touch `syncMetadata` are the sync's own writes and are
  filtered out on the server, or every sync would trigger the next one.
- A token that cannot be resumed (history pruned from the oplog, unparsable, fatal) or no
  token at all (first look, or the source's settings changed): a sync is due, because what
  happened meanwhile is unknown, and a new stream is started.
- Drop, rename or dropDatabase end the stream with an invalidate event: that is a change,
  and the next look continues with `start_after`, which is allowed past an invalidate where
  `resume_after` is not.
- Fallback, when the server has no change streams (a standalone mongod: code 40573): poll
  the document count and the largest `updated_field` (or `_id` without one). Without
  `updated_field` an edit in place changes neither, so it is only seen by the next sync that
  runs for another reason.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pymongo
from bson import json_util
from pymongo.change_stream import ChangeStream
from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError

from vector_sync.core.documents import MISSING, get_path
from vector_sync.core.source import ChangeCheck
from vector_sync.sources.mongodb.settings import MongoSettings, filter_from
from vector_sync.sources.mongodb.source import MongoSource
from vector_sync.sources.mongodb.stream import (
    NO_CHANGE_STREAMS,
    STATE_VERSION,
    UNRESUMABLE,
    open_stream,
    scope_of,
    stream_state,
)

DRAIN_BUDGET_S = 3.0  # stop reading events after this; the next look continues from there
TICK_TIMEOUT_S = 10.0  # every server operation of one look, including server selection

__all__ = ["poll_changes", "scope_of"]


def poll_changes(name: str, config: MongoSettings,
                 state: Mapping[str, Any] | None) -> ChangeCheck:
    """Whether source `name` changed since `state` (None: never looked), and the state to
    keep. Raises SourceUnavailable, credentials masked, when MongoDB cannot be asked."""
    source = MongoSource(name, config)
    scope = scope_of(config)
    previous, why = _usable(state, scope)
    try:
        with source.connect() as client:
            # finds the server within server_selection_timeout_ms; under pymongo.timeout()
            # below, server selection would wait for that whole deadline instead
            client.admin.command("ping")
            # one deadline for the rest, so a hung server cannot stall the sensor
            with pymongo.timeout(TICK_TIMEOUT_S):
                return _look(client[config.database][config.collection], config, scope,
                             previous, why)
    except PyMongoError as error:
        raise source.unavailable(error) from None


def _look(collection: Collection[dict[str, Any]], config: MongoSettings, scope: str,
          previous: Mapping[str, Any] | None, why: str) -> ChangeCheck:
    try:
        return _watch(collection, config, scope, previous, why)
    except OperationFailure as error:
        if error.code not in NO_CHANGE_STREAMS:
            raise
        return _poll(collection, config, scope, previous, why, _code(error))


def _usable(state: Mapping[str, Any] | None, scope: str) -> tuple[Mapping[str, Any] | None, str]:
    """The previous state if it can be continued from, else None and why not."""
    if not state:
        return None, "first look at this source: a full sync sets the baseline"
    if state.get("v") != STATE_VERSION or state.get("scope") != scope:
        return None, "the source's settings changed since the last look"
    return state, ""


def _code(error: OperationFailure) -> str:
    name = (error.details or {}).get("codeName") or "error"
    return f"{name} {error.code}"


def _where(config: MongoSettings) -> str:
    return f"{config.database}.{config.collection}"


# --- change streams --------------------------------------------------------------------------


def _watch(collection: Collection[dict[str, Any]], config: MongoSettings, scope: str,
           previous: Mapping[str, Any] | None, why: str) -> ChangeCheck:
    if previous is not None and previous.get("mode") == "stream":
        try:
            with open_stream(collection, config, previous) as stream:
                return _changes(stream, config, scope)
        except OperationFailure as error:
            if error.code not in UNRESUMABLE:
                raise
            why = f"cannot resume the change stream ({_code(error)}): a full sync catches up"
    elif previous is not None:
        why = "change streams are available now (polled before): a full sync sets the baseline"
    with open_stream(collection, config, None) as stream:
        _drain(stream)  # nothing to compare with: only the fresh token matters
        return ChangeCheck(True, f"{_where(config)}: {why}", stream_state(scope, stream))


def _drain(stream: ChangeStream[dict[str, Any]]) -> tuple[Counter[str], bool]:
    """The events available now, counted by operation type, and whether all were read (the
    time budget may stop earlier; the token then points at the last one read)."""
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + DRAIN_BUDGET_S
    while time.monotonic() < deadline:
        event = stream.try_next()  # None once a getMore came back empty: drained
        if event is None:
            return counts, True
        counts[str(event.get("operationType"))] += 1
    return counts, False


def _changes(stream: ChangeStream[dict[str, Any]], config: MongoSettings,
             scope: str) -> ChangeCheck:
    counts, complete = _drain(stream)
    state = stream_state(scope, stream, invalidated=counts["invalidate"] > 0)
    if not counts:
        return ChangeCheck(False, f"no change in {_where(config)}", state)
    total = sum(n for op, n in counts.items() if op != "invalidate")
    kinds = ", ".join(f"{n} {op}" for op, n in sorted(counts.items()))
    more = "" if complete else " (more pending: read on the next look)"
    changes = "1 change" if total == 1 else f"{total} changes"
    return ChangeCheck(True, f"{changes} in {_where(config)}: {kinds}{more}", state)


# --- polling fallback ------------------------------------------------------------------------


def _poll(collection: Collection[dict[str, Any]], config: MongoSettings, scope: str,
          previous: Mapping[str, Any] | None, why: str, error: str) -> ChangeCheck:
    query = filter_from(_where(config), config.filter)  # valid: the config checked it
    field = config.updated_field or "_id"
    now = {"count": _count(collection, query), "latest": _latest(collection, query, field)}
    state = {"v": STATE_VERSION, "scope": scope, "mode": "poll", **now}
    where = f"{_where(config)} (polled: no change streams, {error})"
    if previous is None or previous.get("mode") != "poll":
        why = why or "change streams unavailable now (watched before): a full sync catches up"
        return ChangeCheck(True, f"{where}: {why}", state)
    before = {"count": previous.get("count"), "latest": previous.get("latest")}
    if before == now:
        return ChangeCheck(False, f"no change in {where}", state)
    return ChangeCheck(True, f"{where}: count {before['count']} -> {now['count']}, "
                             f"largest {field} {before['latest']} -> {now['latest']}", state)


def _count(collection: Collection[dict[str, Any]], query: Mapping[str, Any]) -> int:
    # without a filter the collection's metadata answers, without reading any document;
    # with one, the count reads what the filter matches (an index on its fields helps)
    if not query:
        return collection.estimated_document_count()
    return collection.count_documents(query)


def _latest(collection: Collection[dict[str, Any]], query: Mapping[str, Any],
            field: str) -> str | None:
    """The largest value of `field` (one document, that field only: cheap with an index)."""
    projection = {field: 1} if field == "_id" else {field: 1, "_id": 0}
    for document in collection.find(query, projection).sort(field, -1).limit(1):
        value = get_path(document, field)
        # Extended JSON: any BSON value, and a date and a string that look alike differ
        return None if value is MISSING else json_util.dumps(value)
    return None
