"""One document, looked at closely: the points Qdrant holds for it, its ledger row and the
state the source calls for now, and whether the three agree, judged exactly as the
consistency check judges a document (missing, orphan, stale, ledger disagreement).

It only reads: the source is listed as a dry run does, the ledger is opened read-only
(never created) and Qdrant is scrolled for the document's points.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vector_sync.core.consistency.compare import (
    Held,
    Verification,
    Verifier,
    claim_of,
    holds_exactly,
)
from vector_sync.core.consistency.expected_now import expected_now
from vector_sync.core.hashing import point_id
from vector_sync.core.ledger import Expected, LedgerRow
from vector_sync.core.pipeline.plan import read_only_ledger
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.source import SourceUnavailable
from vector_sync.core.spec import spec_for
from vector_sync.core.store import QdrantStore, StoredPoint, open_store

TEXT_HEAD = 80  # characters of a chunk's text shown
# payload keys every point carries; the rest are the collection's payload fields
POINT_KEYS = ("source", "doc_id", "chunk_index", "chunk_count", "content_hash", "text")
LEDGER_FIELDS = ("status", "source_version", "content_hash", "payload_hash", "chunk_count",
                 "attempts", "error_code", "last_error", "last_attempt_at", "last_synced_at",
                 "next_attempt_at")


@dataclass
class Inspection:
    source: str
    collection: str
    doc_id: str
    points: list[dict[str, Any]] = field(default_factory=list)  # by chunk index
    ledger: dict[str, Any] | None = None  # the ledger row, None: no row
    expected: dict[str, Any] | None = None  # None: the source gives it no chunks here
    source_error: str | None = None  # the source could not be read: nothing expected known
    differences: list[dict[str, str]] = field(default_factory=list)  # problem, detail

    @property
    def known(self) -> bool:
        return bool(self.points or self.ledger or self.expected)

    @property
    def agrees(self) -> bool:
        return self.known and self.source_error is None and not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "collection": self.collection, "doc_id": self.doc_id,
                "known": self.known, "agrees": self.agrees,
                "differences": self.differences, "source_error": self.source_error,
                "expected": self.expected, "ledger": self.ledger, "points": self.points}


def inspect_document(config: VectorSyncConfig, source: str, collection: str,
                     doc_id: str) -> Inspection:
    """Raises QdrantUnavailable or LedgerUnavailable; an unavailable source is reported in
    `source_error` (what Qdrant and the ledger hold is still shown)."""
    found = Inspection(source, collection, doc_id)
    want: Expected | None = None
    with read_only_ledger(config) as ledger:
        rows = ledger.rows_of(source, collection, [doc_id])
        row = rows[0] if rows else None
        try:  # the source's expected state streamed to a file, this document picked out
            with tempfile.TemporaryDirectory(prefix="vector_sync_inspect_") as scratch:
                spilled = expected_now(config, source, ledger, Path(scratch), [collection])
                found_now = spilled.get(collection)
                want = None if found_now is None else next(
                    (state for d, state in found_now() if d == doc_id), None)
        except SourceUnavailable as error:
            found.source_error = str(error)
    held, found.points = _held(config, source, collection, doc_id)
    found.points.sort(key=lambda p: (p["chunk_index"], p["id"]))
    found.ledger = None if row is None else {k: getattr(row, k) for k in LEDGER_FIELDS}
    if want is not None and want.chunk_count:
        found.expected = want._asdict()
    if found.source_error is None:
        found.differences = _differences(source, collection, doc_id, want, held)
    found.differences += _ledger_difference(row, held)
    return found


def _held(config: VectorSyncConfig, source: str, collection: str,
          doc_id: str) -> tuple[Held, list[dict[str, Any]]]:
    """What Qdrant holds of the document, described as the check sees it and as shown."""
    held, shown = Held(), list[dict[str, Any]]()
    # embedded storage that does not exist yet holds nothing; opening it would create it
    if config.qdrant.url is None and not config.state.qdrant_path.exists():
        return held, shown
    with open_store(config.qdrant, config.state) as store:
        verifier = Verifier(store, source, spec_for(config, collection))
        for point in _points_of(store, source, collection, doc_id):
            _, index, chash, phash, count = verifier._describe(point.payload, {})
            ours = point.id == point_id(source, doc_id, index)
            if ours:
                held.add(index, chash, phash, count)
            else:
                held.foreign.append(point.id)
            shown.append(_shown(point.id, point.payload, phash, ours))
    return held, shown


def _points_of(store: QdrantStore, source: str, collection: str,
               doc_id: str) -> list[StoredPoint]:
    """Every point of the source claiming `doc_id`, whatever its id: the ids are found by a
    scroll of the doc_id key alone, then read with their whole payload."""
    ids = [p.id for p in store.scroll(collection, source, with_payload=["doc_id"])
           if p.payload.get("doc_id") == doc_id]
    return store.retrieve(collection, ids, True, False) if ids else []


def _shown(point_id_: str, payload: dict[str, Any], phash: str, ours: bool) -> dict[str, Any]:
    text = " ".join(str(payload.get("text", "")).split())
    return {
        "id": point_id_, "id_computed_by_vector_sync": ours,
        "chunk_index": payload.get("chunk_index"), "chunk_count": payload.get("chunk_count"),
        "content_hash": payload.get("content_hash"), "payload_hash": phash,
        "text_head": text[:TEXT_HEAD] + ("..." if len(text) > TEXT_HEAD else ""),
        "payload": {k: v for k, v in payload.items() if k not in POINT_KEYS},
    }


def _differences(source: str, collection: str, doc_id: str, want: Expected | None,
                 held: Held) -> list[dict[str, str]]:
    """The consistency check's verdict on this document, each problem with its detail."""
    verdict = Verification(source, collection)
    Verifier._classify(verdict, doc_id, want, held if held.indexes or held.foreign else None)
    count = want.chunk_count if want else 0
    found = []
    if verdict.missing:
        absent = sorted(set(range(count)) - held.indexes)
        found.append({"problem": "missing", "detail": f"chunk(s) {_listed(absent)} of the "
                      f"{count} expected are not in Qdrant"})
    if verdict.orphans:
        extra = sorted(i for i in held.indexes if i >= count)
        if extra:
            found.append({"problem": "orphan", "detail": (
                f"Qdrant holds chunk(s) {_listed(extra)} beyond the {count} expected" if count
                else f"Qdrant holds {len(extra)} point(s), but the source gives the document "
                "no chunks in this collection (gone, or without any embedded field)")})
        if held.foreign:
            found.append({"problem": "orphan", "detail": f"{len(held.foreign)} point(s) "
                          "under ids vector_sync does not compute: "
                          + ", ".join(held.foreign)})
    if verdict.stale and want is not None:
        found.append({"problem": "stale", "detail": "; ".join(
            f"chunk {i}: " + _compared(held.chunks[i], tuple(want))
            for i in range(count) if held.chunks[i] != tuple(want))})
    return found


def _ledger_difference(row: LedgerRow | None, held: Held) -> list[dict[str, str]]:
    claim = claim_of(row) if row is not None else None
    if holds_exactly(held if held.indexes or held.foreign else None, claim):
        return []
    if claim is None:
        return [{"problem": "ledger",
                 "detail": "the ledger has no row for a document Qdrant holds points of"}]
    claimed = set(range(claim.chunk_count))
    absent, extra = sorted(claimed - held.indexes), sorted(held.indexes - claimed)
    found = [f"chunk {i}: " + _compared(held.chunks[i], tuple(claim), "the ledger says")
             for i in sorted(claimed & held.indexes) if held.chunks[i] != tuple(claim)]
    if absent:
        found.append(f"chunk(s) {_listed(absent)} the ledger claims are not in Qdrant")
    if extra:
        found.append(f"Qdrant holds chunk(s) {_listed(extra)} the ledger does not claim")
    return [{"problem": "ledger", "detail": "; ".join(found)}]


def _compared(held: tuple[str, str, int], want: tuple[Any, ...], says: str = "expected") -> str:
    names = ("content_hash", "payload_hash", "chunk_count")
    return ", ".join(f"{name} {h} ({says} {w})" for name, h, w in zip(names, held, want,
                                                                       strict=True) if h != w)


def _listed(indexes: list[int]) -> str:
    shown = ", ".join(map(str, indexes[:20]))
    return shown + (f" and {len(indexes) - 20} more" if len(indexes) > 20 else "")
