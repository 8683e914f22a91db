"""`plan`: the counts the next sync would report, computed without writing or embedding."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vector_sync.config import VectorSyncConfig
from vector_sync.core import engine
from vector_sync.core.embedder import Embedder
from vector_sync.core.ledger import Ledger
from vector_sync.core.stages import known_everywhere, mass_delete
from vector_sync.core.state_files import StateFiles, read_expected, read_rows
from vector_sync.sources import build_source, source_fields


@contextmanager
def read_only_ledger(config: VectorSyncConfig) -> Iterator[Ledger]:
    """The configured ledger, or an empty in-memory one if the default SQLite file does not
    exist yet (so that planning never creates the state dir)."""
    url = config.state.ledger_sqlalchemy_url()
    default_file = config.state.dir / "ledger.sqlite"
    if url.startswith("sqlite:///") and Path(url.removeprefix("sqlite:///")) == default_file \
            and not default_file.exists():
        url = "sqlite://"
    ledger = Ledger(url)
    try:
        yield ledger
    finally:
        ledger.close()


def plan_source(config: VectorSyncConfig, source_name: str, ledger: Ledger,
                full: bool = False) -> dict[str, dict[str, Any]]:
    """collection -> counts, exactly as `sync` would report them if nothing fails."""
    source = build_source(source_name, config.sources[source_name],
                          source_fields(config, source_name))
    specs = engine.collection_specs(config, source_name)
    files = StateFiles(config.state.dir)
    expected = known_everywhere(files, source_name, specs)
    snapshot = list(engine.snapshot_rows(source, ledger, specs, full, expected))
    result: dict[str, dict[str, Any]] = {}
    for spec in specs:
        embedder = Embedder(config.embedding_for(spec.name))
        diff = engine.Diff()
        differ = engine.Differ(spec, embedder.count_tokens(),
                               read_expected(files.expected(spec.name, source_name)))
        changes = differ.changes(snapshot, ledger.rows(source_name, spec.name), diff)
        embeddings = files.embeddings(spec.name, source_name)
        reusable = _reusable_keys(embeddings) if embeddings.exists() else {}
        to_embed = 0
        for change in changes:
            if change["action"] in ("added", "updated"):
                earlier = reusable.get((change["doc_id"], change["content_hash"]))
                if earlier != len(change["chunks"]):
                    to_embed += len(change["chunks"])
        result[spec.name] = {**{k: diff.counts[k] for k in engine.OUTCOMES},
                             "chunks_embedded": to_embed}
        guard = mass_delete(diff.as_dict(), config.sources[source_name].max_delete_fraction)
        if guard:  # sync would stop here unless --allow-mass-delete
            result[spec.name]["mass_delete_guard"] = guard
    return result


def _reusable_keys(path: Path) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for row in read_rows(path, ["doc_id", "content_hash"]):
        key = (row["doc_id"], row["content_hash"])
        counts[key] = counts.get(key, 0) + 1
    return counts
