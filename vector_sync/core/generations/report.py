"""What `migrate status` and `migrate plan` report: read-only, nothing embedded for real
beyond a few sample chunks to measure the model's throughput."""

from __future__ import annotations

import time
from typing import Any

from vector_sync.core.generations.registry import Generation, Registry
from vector_sync.core.generations.spec import GenerationSpec, configured_spec, with_spec
from vector_sync.core.pipeline.diff import Diff, KeyedDiff, differ_for
from vector_sync.core.pipeline.plan import read_only_ledger
from vector_sync.core.pipeline.rows import EMBEDS
from vector_sync.core.pipeline.snapshot import snapshot_rows
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.spec import collection_specs
from vector_sync.core.store import open_store
from vector_sync.core.text.embedder import Embedder

SAMPLE_CHUNKS = 32  # chunks embedded to measure the new model's throughput


def _state(serving: Generation | None, building: Generation | None,
           switching: bool, pending: bool) -> str:
    if switching:
        return "switching"
    if building is not None:
        return "ready" if building.documents_total and \
            building.documents_done >= building.documents_total else "building"
    return "pending" if pending else "serving"


def status(config: VectorSyncConfig, collections: list[str]) -> dict[str, Any]:
    """Per collection, the keys `migrate status --json` promises, and more."""
    found: dict[str, Any] = {}
    with Registry.open(config.state, read_only=True) as registry:
        for collection in collections:
            wanted = configured_spec(config, collection)
            serving, building = registry.serving(collection), registry.building(collection)
            switching = bool(registry.in_state(collection, "switching"))
            pending = serving is not None and serving.fingerprint != wanted.fingerprint
            found[collection] = {
                "serving": serving.physical if serving else collection,
                "building": building.physical if building else None,
                "state": _state(serving, building, switching, pending),
                "documents_done": building.documents_done if building else 0,
                "documents_total": building.documents_total if building else 0,
                "chunks_per_s": building.chunks_per_s if building else 0.0,
                "eta_s": building.eta_s if building else None,
                "chunks_embedded": building.chunks_embedded if building else 0,
                "chunks_reused": building.chunks_reused if building else 0,
                "changes": serving.spec.differences(wanted) if serving else [],
                "retired": [{"physical": g.physical, "switched_at": g.switched_at,
                             "retire_after": g.retire_after}
                            for g in registry.retired(collection)],
            }
    return {"collections": found}


def plan(config: VectorSyncConfig, collections: list[str]) -> dict[str, Any]:
    """Which collections a migration would rebuild, why, the chunks it would embed and
    reuse, and how long the embedding would take at the throughput measured now."""
    found: dict[str, Any] = {}
    with Registry.open(config.state, read_only=True) as registry:
        current = {c: registry.serving(c) for c in collections}
    for collection in collections:
        wanted = configured_spec(config, collection)
        serving = current[collection]
        old = serving.spec if serving else wanted
        entry: dict[str, Any] = {"serving": serving.physical if serving else collection,
                                 "rebuild": old.fingerprint != wanted.fingerprint,
                                 "changes": old.differences(wanted),
                                 "target": wanted.physical(collection),
                                 "spec": wanted.as_dict()}
        if entry["rebuild"]:
            entry.update(_estimate(config, collection, old, wanted))
        found[collection] = entry
    return {"collections": found}


def _estimate(config: VectorSyncConfig, collection: str, old: GenerationSpec,
              wanted: GenerationSpec) -> dict[str, Any]:
    name = wanted.physical(collection)
    derived = with_spec(config, collection, wanted, as_name=name)
    held: set[str] = set()
    if old.same_model(wanted):  # a chunker change: identical chunk texts keep their vectors
        with open_store(config.qdrant, config.state) as store:
            if store.exists(collection):
                held = {str(p.payload.get("text")) for p in
                        store.scroll(collection, None, ["text"])}
    documents = to_embed = to_reuse = 0
    sample: list[str] = []
    with read_only_ledger(config) as ledger:
        for source_name in config.sources_feeding(collection):
            source = config.sources[source_name].open_read_only(
                source_name, derived.fields_of(source_name))
            rows = snapshot_rows(source, ledger, collection_specs(derived, source_name))
            keyed = KeyedDiff(ledger, source_name, differ_for(derived, name, {}),
                              keep_changed=False)
            for change in keyed.changes(rows, Diff()):
                if change.action not in EMBEDS:
                    continue
                documents += 1
                for text in change.chunks or ():
                    if text in held:
                        to_reuse += 1
                    else:
                        to_embed += 1
                        if len(sample) < SAMPLE_CHUNKS:
                            sample.append(text)
    rate = _throughput(derived.embedding_for(name), sample)
    return {"documents": documents, "chunks_to_embed": to_embed, "chunks_to_reuse": to_reuse,
            "embedding_chunks_per_s": rate,
            "estimated_s": round(to_embed / rate, 1) if rate else None}


def _throughput(embedding: Any, sample: list[str]) -> float | None:
    if not sample:
        return None
    embedder = Embedder(embedding)
    embedder.embed(sample[:1])  # loading the model is not embedding
    started = time.perf_counter()
    embedder.embed(sample)
    return round(len(sample) / (time.perf_counter() - started), 1)
