"""The event types and their CloudEvents 1.0 envelope (structured JSON mode).

An event's id is a digest of the transition it describes (its type, the document, the state
before and the state after), so the same transition recorded again, or delivered again,
carries the same id: consumers deduplicate by it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

PREFIX = "vector_sync."
SYNCED = "vector_sync.document.synced"
DELETED = "vector_sync.document.deleted"
FAILED = "vector_sync.document.failed"
GIVEN_UP = "vector_sync.document.given_up"
INCONSISTENT = "vector_sync.collection.inconsistent"
REPAIRED = "vector_sync.collection.repaired"
SYNC_FINISHED = "vector_sync.sync.finished"
GUARD_TRIPPED = "vector_sync.guard.tripped"
TYPES = (SYNCED, DELETED, FAILED, GIVEN_UP, INCONSISTENT, REPAIRED, SYNC_FINISHED,
         GUARD_TRIPPED)
FIRST_IDS = 100  # document ids an inconsistency event names


class Event(NamedTuple):
    """One outbox row before it is written (`seq` 0) or as read back."""

    event_id: str
    type: str
    source: str  # the vector_sync source it concerns ("" for none)
    collection: str | None
    subject: str
    time: datetime
    data: dict[str, Any]
    seq: int = 0


def event_id(*parts: object) -> str:
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(event: Event) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode JSON object of an event."""
    origin = f"/vector_sync/sources/{event.source}" if event.source else "/vector_sync"
    return {"specversion": "1.0", "id": event.event_id, "source": origin, "type": event.type,
            "subject": event.subject, "time": iso(event.time),
            "datacontenttype": "application/json", "data": event.data}


def encode(event: Event) -> bytes:
    return json.dumps(envelope(event), separators=(",", ":"), sort_keys=True).encode()


def make(type_: str, source: str, collection: str | None, subject: str, time: datetime,
         data: dict[str, Any], *identity: object) -> Event:
    """An event whose id is a digest of its type, subject and `identity` (the transition)."""
    return Event(event_id(type_, source, subject, *identity), type_, source, collection,
                 subject, time, data)


def collection_event(type_: str, source: str, collection: str, time: datetime,
                     data: dict[str, Any], *identity: object) -> Event:
    return make(type_, source, collection, collection, time,
                {"source": source, "collection": collection, **data}, *identity)


def inconsistent(source: str, collection: str, time: datetime, missing: list[str],
                 orphans: list[str], stale: list[str], checked: int, scope: str) -> Event:
    """What a verification or a sync's spot check found wrong (`scope`: "verify" or
    "spot_check"): one event per check that found something."""
    first = sorted({*missing, *orphans, *stale})[:FIRST_IDS]
    counts = {"missing": len(missing), "orphans": len(orphans), "stale": len(stale)}
    return collection_event(
        INCONSISTENT, source, collection, time,
        {**counts, "checked": checked, "scope": scope, "doc_ids": first},
        scope, iso(time))


def sync_finished(source: str, run_id: str, trigger: str, success: bool,
                  collections: dict[str, dict[str, int]], duration_s: float,
                  time: datetime, error: str | None = None) -> Event:
    return make(SYNC_FINISHED, source, None, source, time,
                {"source": source, "run_id": run_id, "trigger": trigger, "success": success,
                 "error": error, "collections": collections,
                 "duration_s": round(duration_s, 3)}, run_id)


def guard_tripped(source: str, collection: str, run_id: str, description: str,
                  time: datetime) -> Event:
    return collection_event(GUARD_TRIPPED, source, collection, time,
                            {"run_id": run_id, "description": description}, run_id)
