"""Where each source's sync stands, kept in the ledger's source_state table.

- The config fingerprint of each collection: when it changes (fields, model, chunking), every
  document's hashes may change, so the next snapshot reads every document.
- The checkpoint of a source with a change history (`Checkpointed`, e.g. a Git commit): the
  snapshot notes where it was pinned; each collection records it once it applied that
  snapshot; the next scan diffs from the one all collections agree on.
- When such a source last listed every document: a complete history lets a sync skip the
  listing, until the source's `full_listing_every_s` has passed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from vector_sync.core.ledger import Ledger
from vector_sync.core.pipeline.rows import Metadata
from vector_sync.core.source import Checkpointed, Source
from vector_sync.core.spec import CollectionSpec

SCANNED_CHECKPOINT = "checkpoint:scanned"
LISTED_AT = "listed_at"  # epoch seconds of the last full listing


def _config_key(collection: str) -> str:
    return f"collection_fingerprint:{collection}"


def _checkpoint_key(collection: str) -> str:
    return f"checkpoint:{collection}"


def config_changed(ledger: Ledger, source: str, specs: Iterable[CollectionSpec]) -> bool:
    """A collection's config changed since the source last applied to it."""
    return any(ledger.get_state(source, _config_key(s.name)) != s.fingerprint for s in specs)


def record_config(ledger: Ledger, source: str, spec: CollectionSpec) -> None:
    """Every document of `source` now matches this config in `spec.name`, or is failed."""
    ledger.set_state(source, _config_key(spec.name), spec.fingerprint)


def forget_config(ledger: Ledger, source: str, collection: str) -> None:
    """The collection was emptied (dropped to be rebuilt): the next sync of `source` reads
    every document, listed in full, as after a config change (its history alone would name
    only what changed since)."""
    ledger.set_state(source, _config_key(collection), "")


def last_checkpoint(ledger: Ledger, source: str, collections: Iterable[str]) -> str | None:
    """The checkpoint every collection of the source has applied; None if one has none or
    they differ (the source then compares everything)."""
    found = {ledger.get_state(source, _checkpoint_key(c)) for c in collections}
    return found.pop() if len(found) == 1 else None


def note_checkpoint(ledger: Ledger, source: Source) -> Metadata:
    """After a snapshot: remember where it was pinned (none for a snapshot that did not
    detect changes, e.g. a targeted one); returns the source's detection metadata."""
    if not isinstance(source, Checkpointed):
        return {}
    ledger.set_state(source.name, SCANNED_CHECKPOINT, source.checkpoint or "")
    return dict(source.detection)


def record_checkpoint(ledger: Ledger, source: str, collection: str) -> None:
    """The collection applied the last snapshot: it is synced up to that snapshot's
    checkpoint. Rows that failed stay failed in the ledger and are read again anyway."""
    scanned = ledger.get_state(source, SCANNED_CHECKPOINT)
    if scanned:
        ledger.set_state(source, _checkpoint_key(collection), scanned)


def listing_due(ledger: Ledger, source: str, every_s: float) -> bool:
    """The source must be listed in full: never listed yet, or `every_s` has passed."""
    listed = ledger.get_state(source, LISTED_AT)
    return listed is None or every_s <= 0 or time.time() - float(listed) >= every_s


def note_listing(ledger: Ledger, source: str) -> None:
    ledger.set_state(source, LISTED_AT, repr(time.time()))
