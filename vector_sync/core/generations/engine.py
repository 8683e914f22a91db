"""Building a new generation beside the serving one, and switching between them.

- `start`: record the generation the config asks for and fill it from the sources with the
  sync's own stages (snapshot, diff, embed, apply), under its physical name, in batches of
  documents. Each batch holds its source's lock only while it runs, so syncs of the serving
  generation go on in between; each applied batch is recorded in the ledger under the
  physical name, which is the checkpoint: a killed migration resumes with the documents not
  yet acknowledged there, and the write-ahead of the apply stage and the kept embeddings
  files mean no duplicate point and no acknowledged chunk embedded again. With the same
  model (a chunker change), vectors of chunk texts the serving generation already holds are
  reused.
- `switch`: under the locks of every source feeding the collection (so no sync slips in),
  an incremental catch-up of the new generation, its verify, the quality gate, then the
  pointer change and, in one ledger transaction, the rows trading names.
- `rollback`: the same the other way, to the newest retired generation (caught up first).
- `cleanup`: retired generations older than `migration.keep_old` are dropped.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from vector_sync.core import faults
from vector_sync.core.batches import batched
from vector_sync.core.consistency.verify import verify_source
from vector_sync.core.generations.gate import GateResult, run_gate
from vector_sync.core.generations.registry import Generation, Registry
from vector_sync.core.generations.serving import adopted_spec
from vector_sync.core.generations.spec import configured_spec, with_spec
from vector_sync.core.ledger import open_ledger
from vector_sync.core.locks import source_lock
from vector_sync.core.pipeline.apply import apply
from vector_sync.core.pipeline.diff import changes
from vector_sync.core.pipeline.embed import embeddings
from vector_sync.core.pipeline.snapshot import snapshot
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.store import open_store

log = logging.getLogger(__name__)


class MigrationRefused(Exception):
    """The migration command cannot do what was asked; the message says why."""


@contextmanager
def feeding_locks(config: VectorSyncConfig, collection: str) -> Iterator[None]:
    """The locks of every source feeding the collection, in name order (no deadlock with
    another holder of several): no sync of it runs while they are held."""
    with ExitStack() as held:
        for source in sorted(config.sources_feeding(collection)):
            held.enter_context(source_lock(config.state, source, config.state.lock_wait_s))
        yield


def _generations(config: VectorSyncConfig, collection: str) -> tuple[Generation, Generation | None]:
    if collection not in config.collections:
        raise MigrationRefused(f"unknown collection {collection!r} (configured: "
                               f"{', '.join(config.collections)})")
    with Registry.open(config.state) as registry:
        serving = registry.serving(collection)
        if serving is None:  # never synced through this version: adopt it as it is now
            registry.add(collection, collection, adopted_spec(
                configured_spec(config, collection), registry.vector_versions(collection)),
                "serving")
            serving = registry.serving(collection)
            assert serving is not None
        return serving, registry.building(collection)


def _derived(config: VectorSyncConfig, generation: Generation) -> VectorSyncConfig:
    return with_spec(config, generation.collection, generation.spec,
                     as_name=generation.ledger_name())


def _reuse_from(serving: Generation, building: Generation) -> tuple[str, str] | None:
    """Where vectors of identical chunk texts may come from: the serving generation, when
    it was embedded by the same model (a chunker change)."""
    if serving.spec.same_model(building.spec):
        return serving.collection, serving.spec.model
    return None


def _run_pass(derived: VectorSyncConfig, source: str, name: str, only: list[str] | None,
              reuse: tuple[str, str] | None) -> dict[str, int]:
    """One pass of the sync's stages into the generation (`only`: these documents)."""
    snapshot(derived, source, only=only)
    changes(derived, source, name)
    embedded = embeddings(derived, source, name, reuse_from=reuse)
    report = apply(derived, source, name)
    for doc_id, reason in report.failures[:5]:
        log.warning("migration of %s: %s/%s failed: %s", name, source, doc_id, reason)
    return {"chunks_embedded": int(embedded["chunks_embedded"]),
            "chunks_reused": int(embedded["chunks_reused"]),
            "failed": len(report.failures)}


# --- start and fill ----------------------------------------------------------------------------


def start(config: VectorSyncConfig, collection: str) -> Generation:
    """Build (or resume building) the generation the config asks for; returns it filled."""
    serving, building = _generations(config, collection)
    wanted = configured_spec(config, collection)
    if serving.fingerprint == wanted.fingerprint:
        raise MigrationRefused(f"collection {collection}: the config matches the serving "
                               f"generation {serving.physical}; nothing to migrate")
    serving = _rehome(config, serving)
    physical = wanted.physical(collection)
    with Registry.open(config.state) as registry:
        if building is not None and building.fingerprint != wanted.fingerprint:
            log.warning("%s: dropping %s, built for an earlier config", collection,
                        building.physical)
            _drop(config, registry, building)
            building = None
        if building is None:
            earlier = next((g for g in registry.retired(collection)
                            if g.fingerprint == wanted.fingerprint), None)
            if earlier is not None:  # built before: only what changed since is redone
                registry.update(earlier, state="building", retire_after=None)
            else:
                registry.add(collection, physical, wanted, "building")
            log.info("%s: building generation %s (%s) beside %s", collection, physical,
                     "; ".join(serving.spec.differences(wanted)), serving.physical)
    return fill(config, collection)


def _rehome(config: VectorSyncConfig, serving: Generation) -> Generation:
    """A collection adopted in place (under the configured name) moves to its own physical
    name, so the name can become a pointer: copied point by point with its vectors (nothing
    embedded), under the feeding sources' locks. Embedded storage switches the pointer
    before dropping the old collection (no gap); a Qdrant server refuses an alias beside a
    collection of the same name, so it drops it first: searches in the one request between
    the two find no collection."""
    name = serving.collection
    if serving.physical != name:
        return serving
    target = serving.spec.physical(name)
    with feeding_locks(config, name), open_store(config.qdrant, config.state) as store:
        if not store.exists(name):
            raise MigrationRefused(f"collection {name} holds nothing yet: sync it first (a "
                                   "new collection is built with the config's settings)")
        if store.resolve(name) == name:
            copied = store.copy_collection(name, target)
            if store.ALIAS_NEEDS_FREE_NAME:
                store.drop(name)
                store.switch_alias(name, target)
            else:
                store.switch_alias(name, target)
                store.drop(name)
            log.info("%s: moved the serving collection to %s (%d points copied, nothing "
                     "embedded); %s now points at it", name, target, copied, name)
        with Registry.open(config.state) as registry:
            registry.rename_physical(serving, target)
            moved = registry.serving(name)
    assert moved is not None
    return moved


def fill(config: VectorSyncConfig, collection: str) -> Generation:
    serving, building = _generations(config, collection)
    if building is None:
        raise MigrationRefused(f"collection {collection}: no generation is being built "
                               "(`vector-sync migrate start`)")
    derived, name = _derived(config, building), building.physical
    reuse = _reuse_from(serving, building)
    todo: dict[str, list[str]] = {}
    total = 0
    with open_ledger(config.state) as ledger:
        for source in config.sources_feeding(collection):
            entries = list(derived.open_source(source).scan())
            total += len(entries)
            done = ledger.synced_hints(source, [name])
            todo[source] = sorted(e.doc_id for e in entries if done.get(e.doc_id) != e.version)
    left = sum(map(len, todo.values()))
    with Registry.open(config.state) as registry:
        registry.update(building, documents_total=total, documents_done=total - left)
    log.info("%s: %d of %d documents to build into %s%s", collection, left, total, name,
             " (vectors of unchanged chunk texts reused)" if reuse else "")
    for source, ids in todo.items():
        for batch in batched(ids, config.migration.batch_documents):
            started = time.perf_counter()
            with source_lock(config.state, source, config.state.lock_wait_s):
                counts = _run_pass(derived, source, name, batch, reuse)
            faults.reached("migration.batch_done")
            _record_progress(config, building, len(batch), counts,
                             time.perf_counter() - started)
    with feeding_locks(config, collection):  # deletions and edits since the listing
        catch_up(config, building)
    with Registry.open(config.state) as registry:
        return next(g for g in registry.all(collection) if g.physical == name)


def _record_progress(config: VectorSyncConfig, generation: Generation, documents: int,
                     counts: dict[str, int], seconds: float) -> None:
    with Registry.open(config.state) as registry:
        now = next(g for g in registry.all(generation.collection)
                   if g.physical == generation.physical)
        registry.update(now, documents_done=min(now.documents_done + documents,
                                                now.documents_total),
                        chunks_embedded=now.chunks_embedded + counts["chunks_embedded"],
                        chunks_reused=now.chunks_reused + counts["chunks_reused"],
                        seconds=now.seconds + seconds)
        now = next(g for g in registry.all(generation.collection)
                   if g.physical == generation.physical)
    eta = now.eta_s
    log.info("migration of %s into %s: %d/%d documents, %d chunks embedded, %d reused, "
             "%.1f chunks/s, ETA %s", now.collection, now.physical, now.documents_done,
             now.documents_total, now.chunks_embedded, now.chunks_reused, now.chunks_per_s,
             "unknown" if eta is None else f"{eta:.0f} s")


def catch_up(config: VectorSyncConfig, generation: Generation) -> dict[str, int]:
    """An incremental pass of every feeding source into a generation that is not serving:
    only what changed since it was last written. The caller holds the feeding locks."""
    with Registry.open(config.state) as registry:
        serving = registry.serving(generation.collection)
    derived, name = _derived(config, generation), generation.ledger_name()
    reuse = _reuse_from(serving, generation) if serving else None
    totals = {"chunks_embedded": 0, "chunks_reused": 0, "failed": 0}
    for source in config.sources_feeding(generation.collection):
        for key, value in _run_pass(derived, source, name, None, reuse).items():
            totals[key] += value
    log.info("%s: caught up %s (%d chunks embedded, %d reused)", generation.collection,
             name, totals["chunks_embedded"], totals["chunks_reused"])
    return totals


# --- switch, rollback, cleanup -----------------------------------------------------------------


def verify_generation(config: VectorSyncConfig, generation: Generation) -> list[str]:
    """What the consistency checks find wrong with a generation that is not serving."""
    derived, name = _derived(config, generation), generation.ledger_name()
    problems = []
    for source in config.sources_feeding(generation.collection):
        for result in verify_source(derived, source, [name]):
            if not result.consistent:
                summary = result.summary()
                problems.append(f"{source}: " + ", ".join(
                    f"{k} {summary[k]}" for k in ("missing", "orphans", "stale")
                    if summary[k]) + (f" {result.config_problems}"
                                      if result.config_problems else ""))
    return problems


def switch(config: VectorSyncConfig, collection: str) -> dict[str, Any]:
    """Catch up, verify, gate, then the atomic pointer change; MigrationRefused (nothing
    switched) when verify or the gate fails."""
    serving, building = _generations(config, collection)
    with Registry.open(config.state) as registry:
        switching = registry.in_state(collection, "switching")
    if switching:  # an earlier switch died between the pointer change and the ledger swap
        return _finish_switch(config, serving, switching[0], None)
    if building is None:
        raise MigrationRefused(f"collection {collection}: no generation is being built "
                               "(`vector-sync migrate start`)")
    with feeding_locks(config, collection):
        catch_up(config, building)
        problems = verify_generation(config, building)
        if problems:
            raise MigrationRefused(f"{collection}: verify of {building.physical} failed: "
                                   + "; ".join(problems))
        gate = run_gate(config, serving, building)
        if not gate.passed:
            raise MigrationRefused(f"{collection}: the quality gate failed: {gate.reason}")
        return _finish_switch(config, serving, building, gate)


def _finish_switch(config: VectorSyncConfig, leaving: Generation, arriving: Generation,
                   gate: GateResult | None) -> dict[str, Any]:
    collection = leaving.collection
    with Registry.open(config.state) as registry:
        registry.update(arriving, state="switching")
    with open_store(config.qdrant, config.state) as store:
        store.switch_alias(collection, arriving.physical)
    faults.reached("migration.pointer_switched")
    with Registry.open(config.state) as registry:
        registry.swap(collection, leaving, arriving,
                      timedelta(seconds=config.migration.keep_old_s))
    log.info("%s now serves %s (was %s, kept for rollback for %s)", collection,
             arriving.physical, leaving.physical, config.migration.keep_old)
    return {"collection": collection, "serving": arriving.physical,
            "retired": leaving.physical, "gate": gate.as_dict() if gate else None}


def rollback(config: VectorSyncConfig, collection: str) -> dict[str, Any]:
    """Back to the newest retired generation, caught up first (edits since the switch)."""
    serving, _ = _generations(config, collection)
    with Registry.open(config.state) as registry:
        retired = registry.retired(collection)
    if not retired:
        raise MigrationRefused(f"collection {collection}: no earlier generation is kept "
                               "(cleaned up after migration.keep_old, or never switched)")
    with feeding_locks(config, collection):
        catch_up(config, retired[0])
        return _finish_switch(config, serving, retired[0], None)


def cleanup(config: VectorSyncConfig, collection: str | None = None,
            now: datetime | None = None) -> list[str]:
    """Drop retired generations past their `retire_after`; returns their physical names."""
    now = now or datetime.now(UTC)
    dropped = []
    with Registry.open(config.state) as registry:
        for generation in registry.all(collection):
            if generation.state == "retired" and generation.retire_after is not None \
                    and generation.retire_after <= now:
                _drop(config, registry, generation)
                dropped.append(generation.physical)
    return dropped


def _drop(config: VectorSyncConfig, registry: Registry, generation: Generation) -> None:
    with open_store(config.qdrant, config.state) as store:
        if store.aliases().get(generation.collection) == generation.physical:
            raise MigrationRefused(f"{generation.physical} is what {generation.collection} "
                                   "points at: not dropped")
        if store.exists(generation.physical):
            store.drop(generation.physical)
    registry.remove(generation)
    for stage in ("changes", "embeddings", "write_back"):  # its stages' hand-off files
        shutil.rmtree(config.state.dir / stage / generation.physical, ignore_errors=True)
    log.info("dropped generation %s of %s", generation.physical, generation.collection)
