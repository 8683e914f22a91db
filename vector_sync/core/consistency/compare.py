"""The comparison behind `verify` and the spot check: what Qdrant holds for one source's
documents against an expected state and the ledger's claims, streamed (verify.py runs it).

Qdrant is scrolled once, payloads only (never vectors), folding every point into one of
BUCKETS digests keyed by doc_id; the expected state and the ledger are folded the same way.
Only buckets whose digests differ are drilled into with a second pass, so a consistent
collection costs one scroll and memory proportional to the bucket count (a Merkle-style
summary). A sampled check looks its documents' points up by point id and counts the rest.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vector_sync.core.batches import old_objects_frozen
from vector_sync.core.documents import nested_subset
from vector_sync.core.hashing import payload_hash, point_id
from vector_sync.core.ledger import Expected, LedgerRow
from vector_sync.core.spec import CollectionSpec
from vector_sync.core.store import QdrantStore

BUCKETS = 1024
# documents remembered per scroll (their payload's hash): bounded, so a
# collection of millions of documents is not held; a document's points are mostly met
# close together, and one met again after a reset is only hashed again
MEMO = 8_192
SAMPLE_SIZE = 20  # offending doc_ids kept per problem for reports
# (doc_id, expected state) of a collection, read anew on each call (from a file, the ledger)
Stream = Callable[[], Iterable[tuple[str, Expected]]]


def bucket_of(doc_id: str) -> int:
    """A document's bucket, for this process only (buckets are never stored or compared
    across processes): Python's own string hash, a fifth of a blake2b's time, computed
    three times per document. The point digests folded into a bucket stay blake2b."""
    return hash(doc_id) % BUCKETS


def _point_digest(doc_id: str, index: int, chash: str, phash: str, count: int) -> int:
    text = f"{doc_id}\x1f{index}\x1f{chash}\x1f{phash}\x1f{count}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest())


def _fold_expected(digests: list[int], doc_id: str, state: Expected) -> None:
    chash, phash, count = state
    bucket = bucket_of(doc_id)
    for index in range(count):
        digests[bucket] ^= _point_digest(doc_id, index, chash, phash, count)


@dataclass
class Held:
    """What Qdrant holds for one document: chunk index -> (content, payload hash, count)."""

    chunks: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    # points claiming this doc_id under ids vector_sync would not compute (another tool, an
    # older id scheme, a hand-made copy): always orphans, deleted by repair by these ids
    foreign: list[str] = field(default_factory=list)

    def add(self, index: int, chash: str, phash: str, count: int) -> None:
        self.chunks[index] = (chash, phash, count)

    @property
    def indexes(self) -> set[int]:
        return set(self.chunks)

    def matches(self, want: tuple[str, str, int], indexes: range) -> bool:
        """Every chunk in `indexes` is there and carries exactly `want`."""
        return all(self.chunks.get(i) == want for i in indexes)


@dataclass
class Verification:
    source: str
    collection: str
    checked: int = 0  # documents of the source checked
    points: int = 0  # points of the source seen in Qdrant
    missing: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    ledger_disagrees: list[str] = field(default_factory=list)
    config_problems: list[str] = field(default_factory=list)
    buckets_differing: int = 0
    # points the expected state accounts for (its chunk counts summed): compared with
    # `points`, it is how sampling finds a lost or extra point in a document it did not draw
    points_expected: int = 0
    sampled: str | None = None  # what a sampling run checked
    unseen: str | None = None  # what it cannot see
    held: dict[str, Held] = field(default_factory=dict)  # drilled documents only
    seconds: float = 0.0

    @property
    def consistent(self) -> bool:
        return not (self.missing or self.orphans or self.stale or self.config_problems
                    or self.points != self.points_expected)

    def summary(self) -> dict[str, Any]:
        """The counts every report uses (CLI, checks, docs): documents `checked`, and of
        them `missing`, `orphans`, `stale` and `ledger_disagreements`; `points` held in
        Qdrant beside `points_expected`."""
        return {
            "checked": self.checked, "missing": len(self.missing),
            "orphans": len(self.orphans), "stale": len(self.stale),
            "ledger_disagreements": len(self.ledger_disagrees),
            "points": self.points, "points_expected": self.points_expected,
            "config_problems": self.config_problems, "buckets": BUCKETS,
            "buckets_differing": self.buckets_differing,
            "sampled": self.sampled,
            "sample_cannot_see": self.unseen,
            "seconds": self.seconds,
        }

    def offenders(self) -> list[tuple[str, str]]:
        """(problem, doc_id), a bounded sample per problem."""
        return [(problem, doc_id) for problem, ids in (
            ("missing", self.missing), ("orphan", self.orphans), ("stale", self.stale),
            ("ledger", self.ledger_disagrees)) for doc_id in sorted(ids)[:SAMPLE_SIZE]]


class Verifier:
    def __init__(self, store: QdrantStore, source: str, spec: CollectionSpec) -> None:
        self.store, self.source, self.spec = store, source, spec
        self._payload_keys = sorted({p.split(".", 1)[0] for p in spec.payload})
        # top-level keys only (the usual case): the subset is a dict comprehension, a fifth
        # of nested_subset's time, paid once per document held
        self._flat = None if any("." in p for p in spec.payload) else tuple(spec.payload)

    @old_objects_frozen()
    def verify(self, expected: dict[str, Expected], ledger_rows: dict[str, LedgerRow],
               dimension: int | None, sample: float | None = None,
               at_least: int = 1) -> Verification:
        """Against an expected state and ledger rows held in memory (tools, small sets)."""
        checked, points = len(expected), sum(state[2] for state in expected.values())
        if sample is not None:
            ordered = sorted(expected)
            chosen = pick(lambda: ((d, expected[d]) for d in ordered), checked, sample, at_least)
            return self.verify_sample(chosen, checked, points, dimension)
        return self.verify_streams(
            lambda: iter(expected.items()),
            lambda: ((d, claim_of(row)) for d, row in ledger_rows.items()),
            dimension, checked, points)

    @old_objects_frozen()
    def verify_streams(self, expected: Stream, claims: Stream, dimension: int | None,
                       checked: int, points_expected: int) -> Verification:
        """The complete check. `expected`: the expected state of `checked` documents calling
        for `points_expected` points; `claims`: what the ledger says Qdrant holds. Each is
        read once for the digests and once more, only when a bucket differs."""
        started = time.perf_counter()
        result = Verification(self.source, self.spec.name, checked=checked,
                              points_expected=points_expected)
        result.config_problems = self._config_problems(dimension)
        self._complete(result, expected, claims)
        result.seconds = round(time.perf_counter() - started, 3)
        return result

    @old_objects_frozen()
    def verify_sample(self, chosen: dict[str, Expected], checked: int, points_expected: int,
                      dimension: int | None) -> Verification:
        """The sampled check: the `chosen` documents (of `checked`, calling for
        `points_expected` points) by point id, and the point count."""
        started = time.perf_counter()
        result = Verification(self.source, self.spec.name, checked=checked,
                              points_expected=points_expected)
        result.config_problems = self._config_problems(dimension)
        self._sampled(result, chosen)
        result.seconds = round(time.perf_counter() - started, 3)
        return result

    # --- the collection itself ---------------------------------------------------------------

    def _config_problems(self, dimension: int | None) -> list[str]:
        name = self.spec.name
        if not self.store.exists(name):
            return []  # nothing written yet; documents that should be there count as missing
        vectors = self.store.vectors(name)
        if vectors is None:
            return [f"collection {name!r} uses named vectors; vector_sync writes one unnamed"]
        size, distance = vectors
        problems = []
        if dimension is not None and size != dimension:
            problems.append(f"vector size {size}, but {self.spec.model} produces {dimension}")
        if distance != "Cosine":
            problems.append(f"distance {distance}, expected Cosine")
        model = self.store.model(name)
        if model is not None and model != self.spec.model:
            problems.append(f"collection was built with model {model!r}, config says "
                            f"{self.spec.model!r}")
        return problems

    # --- complete check: digests, then drill-down --------------------------------------------

    def _complete(self, result: Verification, expected: Stream, claims: Stream) -> None:
        expected_digests = [0] * BUCKETS
        for doc_id, state in expected():
            _fold_expected(expected_digests, doc_id, state)
        ledger_digests = [0] * BUCKETS
        for doc_id, claim in claims():
            _fold_expected(ledger_digests, doc_id, claim)
        held_digests = [0] * BUCKETS
        for doc_id, index, chash, phash, count, foreign in self._points():
            # a foreign point folds in its own id, so it can never cancel or match anything
            held_digests[bucket_of(doc_id)] ^= _point_digest(
                doc_id, index, chash if foreign is None else foreign, phash, count)
            result.points += 1
        differing = {b for b in range(BUCKETS) if held_digests[b] != expected_digests[b]
                     or held_digests[b] != ledger_digests[b]}
        result.buckets_differing = len(differing)
        if not differing:
            return
        for doc_id, index, chash, phash, count, foreign in self._points():
            if bucket_of(doc_id) in differing:
                held = result.held.setdefault(doc_id, Held())
                if foreign is None:
                    held.add(index, chash, phash, count)
                else:
                    held.foreign.append(foreign)
        # only the differing buckets' documents are held from here on
        wants = {d: state for d, state in expected() if bucket_of(d) in differing}
        claimed = {d: claim for d, claim in claims() if bucket_of(d) in differing}
        for doc_id in sorted(result.held.keys() | wants.keys() | claimed.keys()):
            self._classify(result, doc_id, wants.get(doc_id), result.held.get(doc_id))
            if (doc_id in claimed or doc_id in result.held) and \
                    not holds_exactly(result.held.get(doc_id), claimed.get(doc_id)):
                result.ledger_disagrees.append(doc_id)

    def _points(self) -> Iterator[tuple[str, int, str, str, int, str | None]]:
        """Every point of the source, described, with its id when it is foreign."""
        keys = ["doc_id", "chunk_index", "chunk_count", "content_hash", *self._payload_keys]
        hashed: dict[str, tuple[dict[str, Any], str]] = {}
        for point in self.store.scroll(self.spec.name, self.source, with_payload=keys):
            described = self._describe(point.payload, hashed)
            ours = point_id(self.source, described[0], described[1])
            yield *described, (None if point.id == ours else point.id)

    def _describe(self, payload: dict[str, Any], hashed: dict[str, tuple[dict[str, Any], str]]
                  ) -> tuple[str, int, str, str, int]:
        """(doc_id, chunk index, content hash, payload hash, chunk count) of a point. The
        chunks of a document normally carry one payload, so `hashed` keeps its hash per
        document: comparing dicts is far cheaper than canonical JSON plus a digest."""
        doc_id = str(payload.get("doc_id"))
        subset = nested_subset(payload, self.spec.payload) if self._flat is None else {
            key: value for key in self._flat if (value := payload.get(key)) is not None}
        known = hashed.get(doc_id)
        if known is None and len(hashed) >= MEMO:
            hashed.clear()
        if known is None or known[0] != subset:
            known = hashed[doc_id] = (subset, payload_hash(subset))
        return (doc_id, int(payload.get("chunk_index", -1)), str(payload.get("content_hash")),
                known[1], int(payload.get("chunk_count", -1)))

    @staticmethod
    def _classify(result: Verification, doc_id: str, want: Expected | None,
                  held: Held | None) -> None:
        count = want[2] if want else 0
        complete = held is not None and set(range(count)) <= held.indexes
        if count and not complete:
            result.missing.append(doc_id)
        surplus = held is not None and bool(held.indexes) and (
            not count or max(held.indexes) >= count)  # gone from the source, or extra chunks
        if surplus or (held is not None and held.foreign):
            result.orphans.append(doc_id)
        if want and count and complete and held and not held.matches(want, range(count)):
            result.stale.append(doc_id)

    # --- sampling: a random subset by point id, plus the total count -------------------------

    def _sampled(self, result: Verification, chosen: dict[str, Expected]) -> None:
        if self.store.exists(self.spec.name):
            for doc_id, want in chosen.items():
                ids = [point_id(self.source, doc_id, i) for i in range(want[2] + 1)]
                held = Held()
                for payload in self.store.payloads(self.spec.name, ids):
                    held.add(*self._describe(payload, {})[1:])
                result.held[doc_id] = held
                self._classify(result, doc_id, want, held if held.indexes else None)
            result.points = self.store.count(self.spec.name, self.source)
        else:
            result.missing = [d for d, want in chosen.items() if want[2]]
        result.sampled = (f"{len(chosen)} of {result.checked} documents by point id, and the "
                          f"point count ({result.points} held, {result.points_expected} "
                          "expected)")


def pick(stream: Stream, count: int, fraction: float, at_least: int = 1) -> dict[str, Expected]:
    """A seeded random sample of `fraction` (at least `at_least`) of the `count` documents
    `stream` yields, taken as it passes: only the sample is held."""
    wanted = min(count, max(at_least, int(count * fraction)))
    positions = random.Random(0).sample(range(count), wanted) if count else []
    rank = {position: i for i, position in enumerate(positions)}
    found: list[tuple[str, Expected] | None] = [None] * wanted
    for position, item in enumerate(stream()):
        if (i := rank.get(position)) is not None:
            found[i] = item
    return dict(item for item in found if item is not None)


def claim_of(row: LedgerRow) -> Expected:
    """What the ledger says Qdrant holds for a document."""
    if row.content_hash is None:
        return Expected("", "", 0)
    return Expected(row.content_hash, row.payload_hash or "", row.chunk_count)


def holds_exactly(held: Held | None, claim: Expected | None) -> bool:
    count = claim[2] if claim else 0
    if held is None or claim is None:
        return held is None and count == 0
    return held.indexes == set(range(count)) and held.matches(claim, range(count))
