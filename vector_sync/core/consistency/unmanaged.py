"""What Qdrant holds that the config does not account for: collections this deployment
made that the config no longer names, and points of a named collection whose `source` is not
a source feeding it (a source removed from the config, another tool's points, points with no
`source` at all).

A sync never touches them: it only ever addresses its own sources' points. `verify` reports
them and fails; only `repair --prune` deletes them, and says what it deleted. Collections
another configuration or another tool made are "not managed here" (ownership.py): listed,
never counted as a problem, never deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from vector_sync.core.ledger import open_ledger
from vector_sync.core.pipeline.plan import read_only_ledger
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.store import open_store
from vector_sync.core.store.ownership import deployment_of

log = logging.getLogger(__name__)


@dataclass
class Unmanaged:
    collections: dict[str, int] = field(default_factory=dict)  # collection -> points
    # (collection, source or None for points without one) -> points
    sources: dict[tuple[str, str | None], int] = field(default_factory=dict)
    # collections not managed here -> the deployment that made them (None: not recorded)
    elsewhere: dict[str, str | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        """Whether there is anything of this deployment's to prune."""
        return bool(self.collections or self.sources)

    def not_managed_here(self) -> list[dict[str, Any]]:
        return [{"collection": c, "deployment": d} for c, d in sorted(self.elsewhere.items())]

    def summary(self) -> list[dict[str, Any]]:
        return [{"collection": c, "source": None, "points": n, "what": "collection not in "
                 "the config"} for c, n in sorted(self.collections.items())] + [
            {"collection": c, "source": s, "points": n,
             "what": "points without a source" if s is None else "source not feeding it"}
            for (c, s), n in sorted(self.sources.items(), key=lambda kv: (kv[0][0],
                                                                         kv[0][1] or ""))]


def find_unmanaged(config: VectorSyncConfig) -> Unmanaged:
    found = Unmanaged()
    with read_only_ledger(config) as ledger:
        ours = deployment_of(config, ledger)
    generations = _generations(config)
    with open_store(config.qdrant, config.state) as store:
        for collection in store.collections():
            if collection in generations:  # one of a configured collection's generations
                if store.resolve(generations[collection]) != collection:
                    continue  # building or retired: its own, not the config's to check
                collection = generations[collection]  # serving: checked under its name
            owner = store.deployment(collection)
            if not _managed_here(owner, ours, collection in config.collections):
                found.elsewhere[collection] = owner
                continue
            if collection not in config.collections:
                found.collections[collection] = store.count(collection, None)
                continue
            feeding = set(config.sources_feeding(collection))
            for source, points in store.sources(collection).items():
                if source not in feeding:
                    found.sources[(collection, source)] = points
    return found


def _generations(config: VectorSyncConfig) -> dict[str, str]:
    """Physical collection -> configured name, of this deployment's generations of the
    configured collections (docs/migrations.md): its own, whatever their name."""
    from vector_sync.core.generations.registry import Registry

    with Registry.open(config.state, read_only=True) as registry:
        return {physical: collection for physical, collection in registry.physicals().items()
                if collection in config.collections}


def _managed_here(owner: str | None, ours: str | None, named: bool) -> bool:
    if owner is None:  # made by an earlier vector_sync: the next sync adopts a named one
        return named
    return owner == ours


def prune(config: VectorSyncConfig, found: Unmanaged) -> None:
    """Delete what `find_unmanaged` found, and the ledger rows that described it."""
    with open_store(config.qdrant, config.state) as store, open_ledger(config.state) as ledger:
        for collection, points in found.collections.items():
            store.drop(collection)
            log.warning("prune: dropped collection %s (%d points; not in the config)",
                        collection, points)
        for (collection, source), points in found.sources.items():
            store.delete_source(collection, source)
            log.warning("prune: deleted %d point(s) of %s from %s", points,
                        f"source {source!r}" if source else "no source", collection)
        for source, collection in list(ledger.counts()):
            if collection in found.collections or (collection, source) in found.sources:
                ledger.delete(source, collection, list(ledger.rows(source, collection)))
