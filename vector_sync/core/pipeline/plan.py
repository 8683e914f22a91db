"""A dry run: what a sync of one source would do right now, computed in memory.

It powers `plan` (the counts the next sync would report) and the consistency checks (the
expected state of the source as it is now). Nothing is written and nothing is embedded: the
source is opened read-only (no crawl cache or clone updated), the ledger is read as it is
(not migrated, not even created when it does not exist yet).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from vector_sync.core.ledger import Expected, Ledger, SchemaNotCurrent
from vector_sync.core.pipeline.diff import Diff, KeyedDiff, differ_for, mass_delete
from vector_sync.core.pipeline.embed import held_chunks, worth_reading_back
from vector_sync.core.pipeline.rows import EMBEDS, OUTCOMES
from vector_sync.core.pipeline.snapshot import snapshot_rows
from vector_sync.core.pipeline.state_files import EMBEDDINGS, StateFiles, read_rows
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.spec import collection_specs


@contextmanager
def read_only_ledger(config: VectorSyncConfig) -> Iterator[Ledger]:
    """The configured ledger, for reading only: never migrated, never written (SQLite refuses
    writes), retried like any ledger while a PostgreSQL server is briefly unreachable. A
    ledger nothing was synced into yet (no SQLite file, or no tables) reads as an empty one,
    kept in memory, so planning or verifying creates nothing. Raises LedgerUnavailable,
    SchemaNotCurrent when the schema is older than this version's (`sync` upgrades it)."""
    url = config.state.ledger_sqlalchemy_url()
    if _missing_sqlite_file(url):
        ledger = Ledger("sqlite://")
    else:
        try:
            ledger = Ledger(url, config.state.ledger_outage_s, read_only=True)
        except SchemaNotCurrent as behind:
            if behind.revision is not None:
                raise
            ledger = Ledger("sqlite://")
    with ledger:
        yield ledger


def _missing_sqlite_file(url: str) -> bool:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # Ledger() says what is wrong with it, without echoing it
    database = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") \
        and not database.startswith("file:") and not Path(database).exists()


@dataclass
class DryRun:
    """Per collection of the source: the change set's counts, the chunks that would be
    embedded (reusable earlier vectors not counted) and the expected state."""

    diffs: dict[str, Diff] = field(default_factory=dict)
    to_embed: dict[str, int] = field(default_factory=dict)
    to_reuse: dict[str, int] = field(default_factory=dict)  # chunks given an existing vector
    expected: dict[str, dict[str, Expected]] = field(default_factory=dict)


def dry_run(config: VectorSyncConfig, source_name: str, ledger: Ledger, full: bool = False,
            collections: Collection[str] | None = None) -> DryRun:
    """Scan (reading only what the hints say changed) and diff every collection of the
    source, or only `collections`. Raises SourceUnavailable."""
    specs = [s for s in collection_specs(config, source_name)
             if collections is None or s.name in collections]
    source = config.sources[source_name].open_read_only(source_name, config.fields_of(source_name))
    snapshot = list(snapshot_rows(source, ledger, specs, full))
    files = StateFiles(config.state.dir)
    result = DryRun()
    for spec in specs:
        diff = result.diffs[spec.name] = Diff()
        keyed = KeyedDiff(ledger, source_name, differ_for(config, spec.name, {}),
                          keep_changed=False)
        keyed.on_expected = result.expected.setdefault(spec.name, {}).update
        changes = list(keyed.changes(snapshot, diff))
        embedded = [c for c in changes if c.action in EMBEDS]
        # what the embed stage would reuse: an earlier embeddings file, chunks Qdrant holds
        reusable = _reusable_keys(files.embeddings(spec.name, source_name))
        held = held_chunks(config, source_name, spec.name, worth_reading_back(changes),
                           with_vectors=False, ledger=ledger)
        result.to_embed[spec.name] = sum(
            0 if reusable.get((c.doc_id, c.content_hash)) == len(c.chunks or ())
            else sum(text not in held for text in c.chunks or ()) for c in embedded)
        result.to_reuse[spec.name] = sum(len(c.chunks or ()) for c in embedded) - \
            result.to_embed[spec.name]
    return result


def plan_source(config: VectorSyncConfig, source_name: str, ledger: Ledger,
                full: bool = False) -> dict[str, dict[str, int | str]]:
    """collection -> counts, exactly as `sync` would report them if nothing fails (and why
    the mass-delete guard would stop it, under "mass_delete_guard")."""
    run = dry_run(config, source_name, ledger, full)
    result: dict[str, dict[str, int | str]] = {}
    for collection, diff in run.diffs.items():
        counts: dict[str, int | str] = {**{k: diff.counts[k] for k in OUTCOMES},
                                  "chunks_embedded": run.to_embed[collection],
                                  "chunks_reused": run.to_reuse[collection]}
        guard = mass_delete(diff.as_dict(), config.sources[source_name].max_delete_fraction)
        if guard:  # sync would stop here unless --allow-mass-delete
            counts["mass_delete_guard"] = guard
        result[collection] = counts
    return result


def _reusable_keys(path: Path) -> dict[tuple[str | None, str | None], int]:
    """(doc_id, content_hash) -> vectors kept in an earlier embeddings file."""
    counts: dict[tuple[str | None, str | None], int] = {}
    if path.exists():
        for row in read_rows(path, EMBEDDINGS, ["doc_id", "content_hash"]):
            key = (row.doc_id, row.content_hash)
            counts[key] = counts.get(key, 0) + 1
    return counts
