"""After the apply stage: sources that record each document's sync status in the document
itself (the WritesBack capability, e.g. MongoDB's `write_back`) learn the outcome of every
document of the change set, as the ledger now has it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping

from vector_sync.core.ledger import Ledger, LedgerRow
from vector_sync.core.pipeline.state_files import StateFiles, read_json, write_json
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.core.source import SourceUnavailable, SyncOutcome, WritesBack

log = logging.getLogger(__name__)


def write_back(config: VectorSyncConfig, source: str, collection: str, ledger: Ledger,
               changed: Iterable[str]) -> None:
    """Tell a source that writes sync status back the outcome of the documents in `changed`
    (a change set's, read only for such a source). What is owed is noted in a file first
    and cleared only once written, so a run killed or refused half-way is made up for by the
    next one, even when that one finds nothing changed."""
    target = config.open_source(source)
    if not (isinstance(target, WritesBack) and target.writes_back):
        return
    owed_file = StateFiles(config.state.dir).write_back(collection, source)
    owed = sorted(set(changed) | set(read_json(owed_file, [])))
    if not owed:
        return
    write_json(owed_file, owed)
    rows = {row.doc_id: row for row in ledger.rows_of(source, collection, owed)}
    try:
        target.write_back(outcomes_from_ledger(collection, owed, rows))
    except SourceUnavailable as error:  # Qdrant and the ledger are right already
        log.warning("could not write sync status back to %s (%d document(s) owed, written by "
                    "the next run): %s", source, len(owed), error)
        return
    owed_file.unlink()


def outcomes_from_ledger(collection: str, doc_ids: Iterable[str],
                         rows: Mapping[str, LedgerRow]) -> Iterator[SyncOutcome]:
    """What the ledger says about `doc_ids` in `collection` after a sync: no row, or a synced
    row without chunks, means the document is not (or no longer) in that collection."""
    for doc_id in doc_ids:
        row = rows.get(doc_id)
        if row is None or (row.status == "synced" and row.chunk_count == 0):
            yield SyncOutcome(doc_id, collection, "removed", None, None)
        else:
            yield SyncOutcome(doc_id, collection, row.status, row.content_hash, row.last_error)
