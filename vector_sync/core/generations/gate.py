"""The quality gate before a switch: the old and the new generation asked the same canary
queries.

Canaries are the configured `migration.canaries`, else chunk texts sampled from the serving
generation (every n-th point by id: the same sample every time for the same collection).
For each canary both generations return their top-k documents (each embedding the query
with its own model); the gate measures

- overlap: the mean share of the old generation's top-k documents the new one returns too;
- recall (sampled canaries only): the share of canaries whose own document the new
  generation returns in its top-k (a chunk's text must find its document);

and passes when both reach `migration.min_overlap` and `migration.min_recall`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vector_sync.core.generations.registry import Generation
from vector_sync.core.generations.spec import with_spec
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.store import QdrantStore, open_store
from vector_sync.core.text.embedder import Embedder

QUERY_CHARS = 500  # a sampled chunk is cut to a query's length


@dataclass
class GateResult:
    passed: bool
    overlap: float
    recall: float | None
    canaries: int
    sampled: bool
    seconds: float
    reason: str = ""
    worst: list[dict[str, Any]] = field(default_factory=list)  # lowest-overlap canaries

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "overlap": self.overlap, "recall": self.recall,
                "canaries": self.canaries, "sampled": self.sampled, "seconds": self.seconds,
                "reason": self.reason, "worst": self.worst}


def sample_canaries(store: QdrantStore, collection: str,
                    count: int) -> list[tuple[str, str]]:
    """(text, doc_id) of `count` points spread evenly over the collection, by point id."""
    points = sorted(store.scroll(collection, None, ["text", "doc_id"]), key=lambda p: p.id)
    if not points:
        return []
    step = max(len(points) / count, 1.0)
    picked = [points[int(i * step)] for i in range(min(count, len(points)))]
    return [(str(p.payload.get("text", ""))[:QUERY_CHARS], str(p.payload.get("doc_id")))
            for p in picked]


def _documents(store: QdrantStore, collection: str, vector: Any, k: int) -> list[str]:
    """The first `k` distinct documents of the nearest points."""
    found: dict[str, None] = {}
    for hit in store.search(collection, list(vector), k * 3):
        found.setdefault(str(hit.payload.get("doc_id")), None)
        if len(found) == k:
            break
    return list(found)


def run_gate(config: VectorSyncConfig, serving: Generation, building: Generation) -> GateResult:
    settings = config.migration
    started = time.perf_counter()
    old_model = Embedder(with_spec(config, serving.collection, serving.spec)
                         .embedding_for(serving.collection))
    new_model = Embedder(with_spec(config, building.collection, building.spec)
                         .embedding_for(building.collection))
    with open_store(config.qdrant, config.state) as store:
        canaries: list[tuple[str, str | None]] = [(t, None) for t in settings.canaries]
        sampled = not canaries
        if sampled:
            canaries = list(sample_canaries(store, serving.collection, settings.canary_count))
        if not canaries:
            return GateResult(False, 0.0, None, 0, sampled, 0.0,
                              "no canary: the serving generation holds no points and "
                              "migration.canaries is empty")
        texts = [text for text, _ in canaries]
        old_vectors, new_vectors = old_model.embed(texts), new_model.embed(texts)
        overlaps: list[float] = []
        recalled: list[bool] = []
        worst: list[tuple[float, str]] = []
        for (text, doc_id), old_vector, new_vector in zip(canaries, old_vectors, new_vectors,
                                                          strict=True):
            old = _documents(store, serving.collection, old_vector, settings.top_k)
            new = _documents(store, building.physical, new_vector, settings.top_k)
            share = len(set(old) & set(new)) / len(old) if old else 0.0
            overlaps.append(share)
            worst.append((round(share, 3), text[:80]))
            if doc_id is not None:
                recalled.append(doc_id in new)
    overlap = round(sum(overlaps) / len(overlaps), 3)
    recall = round(sum(recalled) / len(recalled), 3) if recalled else None
    reasons = []
    if overlap < settings.min_overlap:
        reasons.append(f"top-{settings.top_k} overlap {overlap} < min_overlap "
                       f"{settings.min_overlap}")
    if recall is not None and recall < settings.min_recall:
        reasons.append(f"recall {recall} < min_recall {settings.min_recall}")
    return GateResult(not reasons, overlap, recall, len(canaries), sampled,
                      round(time.perf_counter() - started, 3), "; ".join(reasons),
                      [{"canary": t, "overlap": o} for o, t in sorted(worst)[:3]])
