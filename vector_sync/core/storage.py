"""What vector_sync keeps on disk beside the vectors, for `status --storage`: the ledger, the
state directory without Qdrant's storage (the stage hand-off files and the rest), and
Qdrant's storage, so that a user sees whether tracking state stays small next to the
vectors it tracks. Measured cheaply at any size: file sizes only (embedded Qdrant is never
opened, that would load its shards), the tables' size from PostgreSQL, the point counts
from a Qdrant server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from vector_sync.core.ledger import Ledger
from vector_sync.core.settings import VectorSyncConfig

FLOAT32 = 4  # bytes per vector dimension in Qdrant's own storage


@dataclass(frozen=True)
class Size:
    """Bytes, or None when they cannot be measured; `how`: what was measured, or why not."""

    bytes: int | None
    how: str

    def as_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "measured": self.how}


@dataclass(frozen=True)
class Storage:
    ledger: Size
    state: Size
    qdrant: Size
    state_parts: dict[str, int] = field(default_factory=dict)  # top-level entry -> bytes

    @property
    def ratio(self) -> float | None:
        """(ledger + state) / Qdrant, when all three are known."""
        known = (self.ledger.bytes, self.state.bytes, self.qdrant.bytes)
        if any(b is None for b in known) or not self.qdrant.bytes:
            return None
        return ((self.ledger.bytes or 0) + (self.state.bytes or 0)) / self.qdrant.bytes

    def as_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {"ledger": self.ledger.as_dict(),
                "state": {**self.state.as_dict(), "parts": dict(self.state_parts)},
                "qdrant": self.qdrant.as_dict(),
                "ratio": None if ratio is None else round(ratio, 4)}


def measure(config: VectorSyncConfig, ledger: Ledger) -> Storage:
    """`ledger`: the configured one, opened (read only), to size a PostgreSQL ledger."""
    files = _sqlite_files(config.state.ledger_sqlalchemy_url())
    shm = [f.with_name(f.name + "-shm") for f in (files or ())[:1]]
    parts = state_parts(config.state.dir, skip={config.state.qdrant_path, *(files or ()), *shm})
    state = Size(sum(parts.values()), f"{config.state.dir} without Qdrant's storage"
                 + (" and the ledger" if files and _inside(files[0], config.state.dir) else ""))
    return Storage(_ledger_size(files, ledger), state, _qdrant_size(config), parts)


def disk_usage(path: Path) -> int:
    """Bytes the files under `path` (or the file) occupy on disk: allocated blocks, as `du`
    counts them, not their apparent size (embedded Qdrant preallocates sparse files many
    times larger than what they hold). Files removed while it walks are skipped."""
    try:
        if not path.is_dir():
            return _allocated(path.lstat()) if path.exists() else 0
    except OSError:
        return 0
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += _allocated(os.lstat(os.path.join(folder, name)))
            except OSError:  # gone meanwhile (a run replacing its files)
                continue
    return total


def _allocated(stat: os.stat_result) -> int:
    blocks = getattr(stat, "st_blocks", None)  # absent on Windows
    return stat.st_size if blocks is None else blocks * 512


def state_parts(root: Path, skip: set[Path]) -> dict[str, int]:
    """Bytes per top-level entry of the state directory (snapshots, changes, embeddings,
    write_back, locks, ...), without the entries in `skip`."""
    if not root.is_dir():
        return {}
    skipped = {p.resolve() for p in skip}
    return {entry.name: disk_usage(entry) for entry in sorted(root.iterdir())
            if entry.resolve() not in skipped}


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _sqlite_files(url: str) -> list[Path] | None:
    """A SQLite ledger's database file and its journals (not the `-shm` index a reader
    maps while it has the file open); None for another database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return []
    main = Path(database)
    return [main, *(main.with_name(main.name + suffix) for suffix in ("-wal", "-journal"))]


def _ledger_size(files: list[Path] | None, ledger: Ledger) -> Size:
    if files is not None:
        if not files:
            return Size(None, "n/a (SQLite in memory)")
        return Size(sum(disk_usage(f) for f in files), f"SQLite {files[0]}")
    if ledger.engine.dialect.name != "postgresql":
        return Size(None, f"n/a ({ledger.engine.dialect.name} is not measured)")
    from vector_sync.core.ledger.db import VERSION_TABLE, metadata

    tables = [t.name for t in metadata.sorted_tables] + [VERSION_TABLE]
    # pg_total_relation_size: the table with its indexes and TOAST data
    query = text("SELECT coalesce(sum(pg_total_relation_size(to_regclass(name))), 0) "
                 "FROM unnest(CAST(:tables AS text[])) AS name")
    try:
        with ledger.engine.connect() as connection:
            size = int(connection.execute(query, {"tables": tables}).scalar_one())
    except SQLAlchemyError as error:
        return Size(None, f"n/a (PostgreSQL: {type(error).__name__})")
    return Size(size, f"PostgreSQL, {len(tables)} tables with their indexes")


def _qdrant_size(config: VectorSyncConfig) -> Size:
    if not config.qdrant.url:
        path = config.state.qdrant_path
        return Size(disk_usage(path), f"embedded storage {path}")
    from vector_sync.core.store import open_store

    points, estimate = 0, 0
    try:
        with open_store(config.qdrant, config.state) as store:
            for collection in config.collections:
                dimension = store.vector_size(collection) if store.exists(collection) else None
                if dimension:
                    count = store.count(collection, None)
                    points += count
                    estimate += count * dimension * FLOAT32
    except Exception as error:  # noqa: BLE001 - a size is not worth failing `status` for
        return Size(None, f"n/a (the server: {type(error).__name__}: {error})"[:300])
    return Size(estimate, f"on the server: an estimate, {points} points x their vector "
                "size in float32 (vectors only)")
