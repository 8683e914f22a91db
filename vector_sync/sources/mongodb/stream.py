"""The collection's change stream, for the watch sensor's look (watch.py) and for the sync
itself (`history_since`: the `Checkpointed` capability of `MongoSource`).

A sync from a resumable token knows every document written or deleted since the last one:
it reads those and skips the id listing (at least every `full_listing_every_s` it lists all
the same). A token that cannot be resumed, a server without change streams (a standalone
mongod), or a dropped or renamed collection leave the history incomplete: the sync lists
and compares hints as it always did, and the new token is where the next one resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import json_util
from pymongo.change_stream import ChangeStream
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from vector_sync.core.documents import MISSING
from vector_sync.core.hashing import digest, stable_json
from vector_sync.core.secrets import mask_url
from vector_sync.sources.mongodb.settings import WRITE_BACK_FIELD, MongoSettings

STATE_VERSION = 1
MAX_AWAIT_MS = 100  # how long the last getMore waits for events that are not there yet
# the server has no change streams: 40573 standalone mongod ("only supported on replica
# sets"), 40324 unknown pipeline stage, 59 unknown command, 115 command not supported
NO_CHANGE_STREAMS = {40573, 40324, 59, 115}
# the stored token cannot be resumed: 9 unparsable, 260 invalid (e.g. an invalidate token
# given to resume_after), 280 ChangeStreamFatalError, 286 ChangeStreamHistoryLost
UNRESUMABLE = {9, 260, 280, 286}
DOCUMENT_EVENTS = {"insert", "update", "replace", "delete"}
# a sync reads the history for at most this long; beyond, it lists (the token has moved on
# to the last event read, so the next sync continues from there)
SYNC_DRAIN_BUDGET_S = 60.0


def scope_of(config: MongoSettings) -> str:
    """What a state is valid for: a state kept for another server, collection or filter
    says nothing about this one (and a changed filter alone calls for a sync)."""
    return digest(stable_json({
        "uri": mask_url(config.uri.get_secret_value()), "database": config.database,
        "collection": config.collection, "filter": config.filter,
        "updated_field": config.updated_field}))


def open_stream(collection: Collection[dict[str, Any]], config: MongoSettings,
                previous: Mapping[str, Any] | None) -> ChangeStream[dict[str, Any]]:
    """The stream from `previous`'s token (None: from now)."""
    resume: dict[str, Any] = {}
    if previous is not None:
        token = json_util.loads(json.dumps(previous["token"]))
        resume = {"start_after" if previous.get("invalidated") else "resume_after": token}
    return collection.watch(stream_pipeline(config), max_await_time_ms=MAX_AWAIT_MS, **resume)


def stream_pipeline(config: MongoSettings) -> list[dict[str, Any]]:
    """Leaves out updates that only set or unset syncMetadata (the sync's own write-back)."""
    if not config.write_back:
        return []
    touched = {"$concatArrays": [
        {"$map": {"input": {"$objectToArray": "$updateDescription.updatedFields"},
                  "in": "$$this.k"}},
        "$updateDescription.removedFields"]}
    top_level = {"$arrayElemAt": [{"$split": ["$$this", "."]}, 0]}
    other_field = {"$anyElementTrue": [{"$map": {
        "input": touched, "in": {"$ne": [top_level, WRITE_BACK_FIELD]}}}]}
    return [{"$match": {"$or": [{"operationType": {"$ne": "update"}},
                                {"$expr": other_field}]}}]


def stream_state(scope: str, stream: ChangeStream[dict[str, Any]],
                 invalidated: bool = False) -> dict[str, Any]:
    # the token as JSON (Extended JSON, in case a server's token holds binary data)
    token = json.loads(json_util.dumps(stream.resume_token))
    return {"v": STATE_VERSION, "scope": scope, "mode": "stream", "token": token,
            "invalidated": invalidated}


# --- the history a sync starts from ---------------------------------------------------------


@dataclass
class History:
    changed: set[str] = field(default_factory=set)  # doc_ids written or deleted
    checkpoint: str | None = None  # the state the next sync resumes from (JSON)
    complete: bool = False  # `changed` names every change since the previous checkpoint
    reason: str = ""


def history_since(collection: Collection[dict[str, Any]], config: MongoSettings,
                  checkpoint: str | None, doc_id: Callable[[Any], str]) -> History:
    """The documents changed since `checkpoint` (a state this function returned before).
    Raises PyMongoError when the server cannot be asked."""
    scope = scope_of(config)
    previous = _resumable(checkpoint, scope)
    try:
        if previous is None:
            return _fresh("no change-stream token applied yet (first sync, changed source "
                          "settings, or collections synced from different tokens)",
                          collection, config, scope)
        try:
            with open_stream(collection, config, previous) as stream:
                return _read(stream, scope, doc_id)
        except OperationFailure as error:
            if error.code not in UNRESUMABLE:
                raise
            return _fresh(f"the change stream cannot be resumed (code {error.code}: its "
                          "history has passed)", collection, config, scope)
    except OperationFailure as error:
        if error.code not in NO_CHANGE_STREAMS:
            raise
        return History(reason=f"the server has no change streams (code {error.code})")


def _resumable(checkpoint: str | None, scope: str) -> Mapping[str, Any] | None:
    try:
        state = json.loads(checkpoint) if checkpoint else None
    except ValueError:
        return None
    usable = isinstance(state, dict) and state.get("v") == STATE_VERSION and \
        state.get("scope") == scope and state.get("mode") == "stream"
    return state if usable else None


def _fresh(reason: str, collection: Collection[dict[str, Any]], config: MongoSettings,
           scope: str) -> History:
    """A new stream from now: its token is where the next sync resumes; this one lists."""
    with open_stream(collection, config, None) as stream:
        # one round trip for a token; not drained (a busy collection never runs dry): what
        # comes after it, the listing of this sync sees, and the next sync reads again
        stream.try_next()
        return History(checkpoint=json.dumps(stream_state(scope, stream)), reason=reason)


def _read(stream: ChangeStream[dict[str, Any]], scope: str,
          doc_id: Callable[[Any], str]) -> History:
    found = History(complete=True)
    deadline = time.monotonic() + SYNC_DRAIN_BUDGET_S
    invalidated = False
    while (event := stream.try_next()) is not None:  # None: drained
        operation = event.get("operationType")
        raw_id = (event.get("documentKey") or {}).get("_id", MISSING)
        if operation in DOCUMENT_EVENTS and raw_id is not MISSING:
            found.changed.add(doc_id(raw_id))
        elif operation in DOCUMENT_EVENTS:
            found.complete = False  # a document whose _id is unknown: the listing finds it
        else:  # drop, rename, dropDatabase, invalidate: the collection itself changed
            found.complete = False
            invalidated = operation == "invalidate"
            if invalidated:
                break  # the stream has ended; the next one starts after this event
        if time.monotonic() > deadline:
            found.complete = False
            break
    found.checkpoint = json.dumps(stream_state(scope, stream, invalidated))
    found.reason = f"change stream: {len(found.changed)} document(s) written or deleted" \
        if found.complete else "the change stream named the collection itself (dropped or " \
        "renamed), or more changes than one sync reads"
    return found
