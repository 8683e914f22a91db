"""The rows one stage hands the next, one type per hand-off: the snapshot's rows (of a sync,
one per document that needs a decision: read, failed or gone), the change set (one per
document whose collection must change, or whose ledger row must learn something), the
embeddings (one per chunk to upsert); and the named sets of change actions every stage
decides by.

Rows are NamedTuples: a no-op sync of a large source passes tens of thousands of them
through each stage, and a tuple is the cheapest row to build from a Parquet column and to
read a field of. Their Parquet schemas are in state_files.py. This module imports nothing
heavy: the CLI takes the outcome names from here at start-up.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

# "skipped": listed by the scan, not read (its version hint matches what was synced); only a
# full stream (verify, a dry run) has such rows: a sync's snapshot file counts them instead.
# "gone": a document the ledger may have that the source no longer has (deleted, out of
# scope), written by a sync's snapshot so that its diff never pages through the ledger
SnapshotState = Literal["read", "skipped", "failed", "gone"]

# What the change set does with a document in one collection:
#   added / updated    new content: chunked, embedded, upserted (updated: it had points)
#   payload_updated    same content, new payload fields: the points' payload is set
#   deleted            its points go (gone from the source, or none of its embedded fields)
#   unchanged          Qdrant keeps what it has; the ledger learns a new version hint
#   failed             the source could not read it: Qdrant keeps what it has
#   forgotten          gone from the source, had no points here: only the ledger forgets it
Action = Literal["added", "updated", "payload_updated", "deleted", "unchanged", "failed",
                 "forgotten"]

# the outcomes a sync counts and reports, in the order it shows them ("forgotten" is none):
# actions, used as the names of counts
OUTCOMES: tuple[str, ...] = ("added", "updated", "payload_updated", "deleted", "unchanged",
                             "failed")
EMBEDS: frozenset[Action] = frozenset({"added", "updated"})  # chunks embedded and upserted
WRITES_QDRANT: frozenset[Action] = frozenset({"added", "updated", "payload_updated", "deleted"})
# written to Qdrant without vectors: payload updates and deletions, many per request
OPERATES: frozenset[Action] = WRITES_QDRANT - EMBEDS
# the points stay as they are: the ledger keeps the chunk count it has
KEEPS_POINTS: frozenset[Action] = frozenset({"unchanged", "payload_updated"})
# the document leaves the collection (its ledger row goes, unless the source still has it)
LEAVES: frozenset[Action] = frozenset({"deleted", "forgotten"})

# What a stage reports about its run, shown on its Dagster materialization: counts, seconds,
# the file it wrote, how the source found its changes (the source's own details). The Dagster
# layer adds values of its own kinds to it, so its values are not narrowed here.
Metadata = dict[str, Any]


class SnapshotRow(NamedTuple):
    """A document of the source now (or, "gone", one it no longer has). `fields_json` when
    it was read; `error_code` and `error` when reading it failed."""

    doc_id: str
    version: str | None  # None: a "gone" row, or a document synced without a hint
    state: SnapshotState
    fields_json: str | None = None
    error_code: str | None = None
    error: str | None = None


class Change(NamedTuple):
    """What one collection must do with one document. An added, updated or payload-updated
    document carries its hashes and payload, an added or updated one its chunk texts; a
    deleted one has hashes only when the source still has it (without embedded fields); a
    failed one carries the read error; a forgotten one only its id."""

    doc_id: str
    action: Action
    source_version: str | None = None
    content_hash: str | None = None
    payload_hash: str | None = None
    payload_json: str | None = None
    chunks: list[str] | None = None
    error_code: str | None = None
    error: str | None = None


class EmbeddingRow(NamedTuple):
    """The vector of one chunk of an added or updated document, in change-set order."""

    doc_id: str
    content_hash: str
    chunk_index: int
    vector: list[float]  # while the embed stage writes it, possibly a float32 array
