"""Consistency: what Qdrant actually holds, compared with what the source says it should
hold now (the expected state of a fresh dry run) and with what the ledger claims. It only
reports: `repair` is what writes.

Qdrant is scrolled once, payloads only (never vectors), folding every point into one of
BUCKETS digests keyed by doc_id; the expected state and the ledger are folded the same way.
Only buckets whose digests differ are drilled into with a second pass, so a consistent
collection costs one scroll and memory proportional to the bucket count (a Merkle-style
summary). A sampling mode checks a random subset of documents by their point ids plus the
total point count, and says so.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from vector_sync.core.batches import old_objects_frozen
from vector_sync.core.documents import nested_subset
from vector_sync.core.hashing import payload_hash, point_id
from vector_sync.core.ledger import Expected, LedgerRow
from vector_sync.core.pipeline.plan import dry_run, read_only_ledger
from vector_sync.core.settings import DEFAULT_MODEL, VectorSyncConfig
from vector_sync.core.spec import CollectionSpec, spec_for
from vector_sync.core.store import QdrantStore, open_store
from vector_sync.core.text.embedder import Embedder
from vector_sync.core.text.model_files import DIMENSION

BUCKETS = 1024
SAMPLE_SIZE = 20  # offending doc_ids kept per problem for reports


def bucket_of(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=4).digest()) % BUCKETS


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

    @old_objects_frozen()
    def verify(self, expected: dict[str, Expected], ledger_rows: dict[str, LedgerRow],
               dimension: int | None, sample: float | None = None,
               at_least: int = 1) -> Verification:
        started = time.perf_counter()
        result = Verification(self.source, self.spec.name, checked=len(expected),
                              points_expected=sum(state[2] for state in expected.values()))
        result.config_problems = self._config_problems(dimension)
        if sample is not None:
            self._sampled(result, expected, sample, at_least)
        else:
            self._complete(result, expected, ledger_rows)
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

    def _complete(self, result: Verification, expected: dict[str, Expected],
                  ledger_rows: dict[str, LedgerRow]) -> None:
        expected_digests = [0] * BUCKETS
        for doc_id, state in expected.items():
            _fold_expected(expected_digests, doc_id, state)
        ledger_digests = [0] * BUCKETS
        for doc_id, row in ledger_rows.items():
            _fold_expected(ledger_digests, doc_id, _claim(row))
        held_digests = [0] * BUCKETS
        buckets: dict[str, int] = {}  # a document's chunks are many points: hash it once
        for doc_id, index, chash, phash, count, foreign in self._points():
            if (bucket := buckets.get(doc_id)) is None:
                bucket = buckets[doc_id] = bucket_of(doc_id)
            # a foreign point folds in its own id, so it can never cancel or match anything
            held_digests[bucket] ^= _point_digest(
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
        suspects = set(result.held) | {d for d in expected if bucket_of(d) in differing} | {
            d for d in ledger_rows if bucket_of(d) in differing}
        for doc_id in sorted(suspects):
            self._classify(result, doc_id, expected.get(doc_id), result.held.get(doc_id))
            if doc_id in ledger_rows or doc_id in result.held:
                claim = _claim(ledger_rows[doc_id]) if doc_id in ledger_rows else None
                if not _holds_exactly(result.held.get(doc_id), claim):
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
        subset = nested_subset(payload, self.spec.payload)
        known = hashed.get(doc_id)
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

    def _sampled(self, result: Verification, expected: dict[str, Expected],
                 fraction: float, at_least: int = 1) -> None:
        chosen = sorted(expected)
        wanted = min(len(chosen), max(at_least, int(len(chosen) * fraction)))
        chosen = random.Random(0).sample(chosen, wanted) if chosen else []
        if self.store.exists(self.spec.name):
            for doc_id in chosen:
                count = expected[doc_id][2]
                ids = [point_id(self.source, doc_id, i) for i in range(count + 1)]
                held = Held()
                for payload in self.store.payloads(self.spec.name, ids):
                    held.add(*self._describe(payload, {})[1:])
                result.held[doc_id] = held
                self._classify(result, doc_id, expected[doc_id],
                               held if held.indexes else None)
            result.points = self.store.count(self.spec.name, self.source)
        else:
            result.missing = [d for d in chosen if expected[d][2]]
        result.sampled = (f"{len(chosen)} of {len(expected)} documents by point id, and the "
                          f"point count ({result.points} held, {result.points_expected} "
                          "expected)")


def _claim(row: LedgerRow) -> Expected:
    """What the ledger says Qdrant holds for a document."""
    if row.content_hash is None:
        return Expected("", "", 0)
    return Expected(row.content_hash, row.payload_hash or "", row.chunk_count)


def _holds_exactly(held: Held | None, claim: Expected | None) -> bool:
    count = claim[2] if claim else 0
    if held is None or claim is None:
        return held is None and count == 0
    return held.indexes == set(range(count)) and held.matches(claim, range(count))


# --- the stage ------------------------------------------------------------------------------


def model_dimension(config: VectorSyncConfig, collection: str) -> int:
    """The configured model's vector size, without loading the default model."""
    embedding = config.embedding_for(collection)
    if embedding.model == DEFAULT_MODEL and embedding.model_path is None:
        return DIMENSION
    return Embedder(embedding).dimension


def verify_source(config: VectorSyncConfig, source: str, collections: list[str] | None = None,
                  sample: float | None = None) -> list[Verification]:
    """Verify the collections `source` feeds (or only `collections`) against the source as
    it is now and against the ledger. Writes nothing. Raises SourceUnavailable or
    QdrantUnavailable."""
    with read_only_ledger(config) as ledger:
        run = dry_run(config, source, ledger, collections=collections)
        rows = {c: ledger.rows(source, c) for c in run.expected}
    results = []
    with open_store(config.qdrant, config.state) as store:
        for collection, expected in run.expected.items():
            verifier = Verifier(store, source, spec_for(config, collection))
            results.append(verifier.verify(expected, rows[collection],
                                           model_dimension(config, collection), sample))
    return results


SPOT_CHECK = 0.02  # the fraction of documents a sync's spot check reads back
SPOT_CHECK_AT_LEAST = 20


def spot_check(config: VectorSyncConfig, source: str, collection: str) -> Verification:
    """What every sync checks after writing, cheaply (no source read, a sample of the
    documents): Qdrant against what the ledger recorded of the source's last diff, by point
    id for 2% of the documents (at least 20), the points counted, and the ledger's claims
    for the documents read back. `verify_source` is the complete check."""
    with read_only_ledger(config) as ledger, open_store(config.qdrant, config.state) as store:
        verifier = Verifier(store, source, spec_for(config, collection))
        result = verifier.verify(ledger.expected(source, collection), {},
                                 model_dimension(config, collection), SPOT_CHECK,
                                 at_least=SPOT_CHECK_AT_LEAST)
        claims = {row.doc_id: _claim(row)
                  for row in ledger.rows_of(source, collection, result.held)}
    result.ledger_disagrees = sorted(d for d, held in result.held.items()
                                     if not _holds_exactly(held, claims.get(d)))
    return result
