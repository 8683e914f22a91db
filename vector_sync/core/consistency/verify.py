"""Consistency: what Qdrant actually holds, compared with what the source says it should
hold now (the expected state of a fresh dry run) and with what the ledger claims. It only
reports: `repair` is what writes.

Qdrant is scrolled once, payloads only (never vectors), folding every point into one of
BUCKETS digests keyed by doc_id; the expected state and the ledger are folded the same way.
Only buckets whose digests differ are drilled into with a second pass, so a consistent
collection costs one scroll and memory proportional to the bucket count (a Merkle-style
summary). The expected state is streamed too: `verify` spills it to a temporary file as it
derives it (expected_now.py) and pages through the ledger's claims, so neither is held
whole; the spot check after a sync looks up only its sample's expectations.

A sampling mode checks a random subset of documents by their point ids plus the total point
count, and says so.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vector_sync.core.consistency.compare import (
    Stream,
    Verification,
    Verifier,
    claim_of,
    holds_exactly,
)
from vector_sync.core.consistency.expected_now import expected_now, expected_of
from vector_sync.core.ledger import Expected, Ledger
from vector_sync.core.pipeline.plan import read_only_ledger
from vector_sync.core.settings import DEFAULT_MODEL, VectorSyncConfig
from vector_sync.core.spec import spec_for
from vector_sync.core.store import open_store
from vector_sync.core.text.embedder import Embedder
from vector_sync.core.text.model_files import DIMENSION

# --- the stage ------------------------------------------------------------------------------


def model_dimension(config: VectorSyncConfig, collection: str) -> int:
    """The configured model's vector size, without loading the default model."""
    embedding = config.embedding_for(collection)
    if embedding.model == DEFAULT_MODEL and embedding.model_path is None:
        return DIMENSION
    return Embedder(embedding).dimension


def verify_source(config: VectorSyncConfig, source: str, collections: list[str] | None = None,
                  sample: float | None = None) -> list[Verification]:
    """Verify the collections `source` feeds (or only `collections`) against the source as
    it is now (listed once for all of them) and against the ledger; with `sample`, only
    that fraction of the ledger's documents (sampled()). Writes nothing but temporary
    files. Raises SourceUnavailable or QdrantUnavailable."""
    if sample is not None:
        return sampled(config, source, sample, collections)
    results = []
    with read_only_ledger(config) as ledger, \
            tempfile.TemporaryDirectory(prefix="vector_sync_verify_") as scratch:
        spilled = expected_now(config, source, ledger, Path(scratch), collections)
        with open_store(config.qdrant, config.state) as store:
            for collection, expected in spilled.items():
                verifier = Verifier(store, source, spec_for(config, collection))
                results.append(verifier.verify_streams(
                    expected, _ledger_claims(ledger, source, collection),
                    model_dimension(config, collection), expected.checked, expected.points))
    return results


# what a sampled check cannot see, said with its result
UNSEEN = ("documents the ledger does not know (added to the source since the last sync) are "
          "not drawn; only the point count can show their points")
UNSEEN_UNSCOPED = "; a drawn document is read by its id, not matched against the source's " \
    "include and ignore rules (a listing applies them)"


def sampled(config: VectorSyncConfig, source: str, fraction: float,
            collections: list[str] | None = None, at_least: int = 1) -> list[Verification]:
    """The sampled check: `fraction` of each collection's documents drawn from the ledger's
    expected state by position (as the spot check draws them), only those read from the
    source, by id (one read for every collection), and compared with Qdrant by point id
    and with the ledger's rows; then the points counted. Its cost follows the sample, not
    the source. `points_expected` is the ledger's, corrected by what the sample found
    changed; what it cannot see is said in `unseen`."""
    names = [c for c in config.sources[source].collections
             if collections is None or c in collections]
    results = []
    with read_only_ledger(config) as ledger:
        drawn, totals = {}, {}
        for collection in names:
            totals[collection] = ledger.expected_totals(source, collection)
            drawn[collection] = _drawn(ledger, source, collection, totals[collection][0],
                                       fraction, at_least)
        now, scoped = expected_of(config, source, ledger,
                                  sorted(set().union(*drawn.values())), names)
        with open_store(config.qdrant, config.state) as store:
            for collection in names:
                checked, points = totals[collection]
                gone = Expected("", "", 0)  # not in the source now: none of its points
                chosen = {d: now[collection].get(d, gone) for d in drawn[collection]}
                points += sum(chosen[d].chunk_count - was.chunk_count
                              for d, was in drawn[collection].items())
                result = Verifier(store, source, spec_for(config, collection)).verify_sample(
                    chosen, checked, points, model_dimension(config, collection))
                _compare_claims(ledger, result)
                result.unseen = UNSEEN + ("" if scoped else UNSEEN_UNSCOPED)
                results.append(result)
    return results


def _compare_claims(ledger: Ledger, result: Verification) -> None:
    """The ledger's rows of the documents a sample looked up, against what Qdrant holds."""
    claims = {row.doc_id: claim_of(row)
              for row in ledger.rows_of(result.source, result.collection, result.held)}
    result.ledger_disagrees = sorted(d for d, held in result.held.items()
                                     if not holds_exactly(held, claims.get(d)))


def _ledger_claims(ledger: Ledger, source: str, collection: str) -> Stream:
    def claims() -> Iterator[tuple[str, Expected]]:
        for page in ledger.claim_pages(source, collection):
            for doc_id, chash, phash, count in page:
                yield doc_id, (Expected("", "", 0) if chash is None
                               else Expected(chash, phash or "", count))
    return claims


def _drawn(ledger: Ledger, source: str, collection: str, count: int, fraction: float,
           at_least: int, at_most: int | None = None) -> dict[str, Expected]:
    """The expected states of a seeded random sample of `fraction` (at least `at_least`, at
    most `at_most`) of the `count` documents the ledger expects, by position in doc_id
    order: the positions `pick` draws, taken from the ledger's pages by index (no row is
    looked at one by one) and the pages after the last position left unread."""
    wanted = min(count, max(at_least, int(count * fraction)), at_most or count)
    positions = sorted(random.Random(0).sample(range(count), wanted)) if count else []
    found: dict[str, Expected] = {}
    start, next_one = 0, 0
    for page in ledger.expected_pages(source, collection) if positions else ():
        end = start + len(page)
        while next_one < len(positions) and positions[next_one] < end:
            doc_id, chash, phash, chunks = page[positions[next_one] - start]
            found[doc_id] = Expected(chash, phash, chunks)
            next_one += 1
        if next_one == len(positions):
            break
        start = end
    return found


SPOT_CHECK = 0.02  # the fraction of documents a sync's spot check reads back
SPOT_CHECK_AT_LEAST = 20
# a sync's cost must not grow with the source: 2,000 documents still find a fault touching
# 0.15% of them 95 times in 100, and `verify` is the complete check
SPOT_CHECK_AT_MOST = 2_000


def spot_check(config: VectorSyncConfig, source: str, collection: str) -> Verification:
    """What every sync checks after writing, cheaply (no source read, a sample of the
    documents): Qdrant against what the ledger recorded of the source's last diff, by point
    id for 2% of the documents (at least 20, at most 2,000), the points counted, and the
    ledger's claims for the documents read back. `verify_source` is the complete check.
    Only the sample's expectations are held: the rest pass by, page by page."""
    with read_only_ledger(config) as ledger, open_store(config.qdrant, config.state) as store:
        verifier = Verifier(store, source, spec_for(config, collection))
        checked, points = ledger.expected_totals(source, collection)
        chosen = _drawn(ledger, source, collection, checked, SPOT_CHECK, SPOT_CHECK_AT_LEAST,
                        SPOT_CHECK_AT_MOST)
        result = verifier.verify_sample(chosen, checked, points,
                                        model_dimension(config, collection))
        _compare_claims(ledger, result)
    return result
