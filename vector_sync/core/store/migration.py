"""Embedded storage written by earlier versions (qdrant-client's local mode) becomes
qdrant-edge shards the first time it is opened, once, under the storage lock.

Local mode keeps `meta.json` and `collection/<name>/storage.sqlite` in the same folder. Every
point is copied with its vector and payload into `shards.migrating/`, which is renamed to
`shards/` only when complete, so a crash part-way leaves the old storage untouched and the
next open starts over. The old files are then moved aside, not deleted.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from vector_sync.core.batches import batched
from vector_sync.core.store.base import Point, QdrantStore

log = logging.getLogger(__name__)
BATCH = 1_024
LOCAL_MODE_FILES = ("meta.json", "collection", ".lock")


def migrate_if_local_mode(root: Path, shards_dir: Path,
                          new_store: Callable[[Path], QdrantStore]) -> None:
    """`new_store(folder)`: the embedded engine's storage in a folder, to copy into (given
    by the engine, which calls this when it opens)."""
    if not (root / "meta.json").is_file():
        return
    if not shards_dir.exists():
        _copy(root, shards_dir, new_store)
    backup = root.parent / "qdrant-local-mode-backup"
    backup.mkdir(exist_ok=True)
    for name in LOCAL_MODE_FILES:
        if (root / name).exists():
            (root / name).rename(backup / name)
    log.warning("the old embedded storage is kept in %s; delete it once you are satisfied",
                backup)


def _copy(root: Path, shards_dir: Path, new_store: Callable[[Path], QdrantStore]) -> None:
    # qdrant-client only for this one-off copy: opening embedded storage never imports it
    from qdrant_client import QdrantClient

    from vector_sync.core.store.server import ServerStore

    started = time.perf_counter()
    log.warning("migrating the embedded Qdrant storage at %s from qdrant-client's local mode "
                "to Qdrant's embedded engine (once; this reads every point)", root)
    staging = shards_dir.with_name(shards_dir.name + ".migrating")
    shutil.rmtree(staging, ignore_errors=True)  # a migration a crash interrupted
    old = ServerStore(QdrantClient(path=str(root)))  # the same API over the local files
    new = new_store(staging)
    try:
        for collection in old.collections():
            vectors = old.vectors(collection)
            if vectors is None:
                raise RuntimeError(f"collection {collection!r} has named vectors, which "
                                   "vector_sync never writes; migrate it by hand")
            new.create(collection, vectors[0], vectors[1], old.metadata(collection))
            copied = 0
            for stored in batched(old.scroll(collection, None, True, with_vectors=True), BATCH):
                new.upsert(collection, [Point(p.id, p.vector or [], p.payload) for p in stored])
                copied += len(stored)
            log.warning("migrated collection %s: %d points", collection, copied)
    finally:
        new.close()
        old.close()
    staging.rename(shards_dir)
    log.warning("migration finished in %.1f s", time.perf_counter() - started)
