"""What the UI shows of a collection: tables for metadata, and the ledger's view of it.

Every `qdrant_<collection>` materialization, whoever started it, records the collection's
status counts (so the UI plots them over time) and the documents that failed with their
errors, and evaluates the `failed_documents` check from the same rows: a warning while the
failed documents are being retried, an error once retries gave up on any of them.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from vector_sync.core.ledger import STATUSES, open_ledger
from vector_sync.core.settings import VectorSyncConfig
from vector_sync.defs.jobs import FAILED

LISTED = 100  # rows shown in a table; the counts beside it cover every row


def table(records: list[dict[str, Any]], columns: dict[str, str]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord(record) for record in records],
        schema=dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in columns.items()]))


def collection_status(settings: VectorSyncConfig, collection: str) -> dict[str, Any]:
    """The ledger's documents of `collection` by status (every source feeding it), and a
    table of the failed ones, most recent first."""
    with open_ledger(settings.state) as ledger:
        by_status: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for counts in ledger.counts(collection=collection).values():  # one per source
            for status, number in counts.items():
                by_status[status] += number
        failed = ledger.failed(limit=LISTED, collection=collection)
        given_up = ledger.count_given_up(collection)  # every source, as the counts above
    rows = [{"source": r.source, "doc_id": r.doc_id, "error_code": r.error_code or "",
             "error": r.last_error or "", "attempts": r.attempts,
             "next_retry": f"{r.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
             if r.next_attempt_at else "retries exhausted"} for r in failed]
    return {
        **{f"documents_{status}": number for status, number in by_status.items()},
        "documents_given_up": given_up,
        "failed_documents": table(rows, {
            "source": "string", "doc_id": "string", "error_code": "string", "error": "string",
            "attempts": "int", "next_retry": "string"}),
    }


def failed_documents_check(status: dict[str, Any]) -> dg.AssetCheckResult:
    """Failed while any document of the collection is failed; the run still succeeds (the
    rest was applied). WARN while the retry sensor takes them again; ERROR once it gave up
    on one: nothing will fix it without a person, and an ERROR check is what turns the
    asset's box red in the UI's graph."""
    failed, given_up = status["documents_failed"], status["documents_given_up"]
    shown = len(status["failed_documents"].records)
    return dg.AssetCheckResult(
        check_name=FAILED, passed=failed == 0,
        severity=dg.AssetCheckSeverity.ERROR if given_up else dg.AssetCheckSeverity.WARN,
        description=None if failed == 0 else
        f"{failed} document(s) failed" + (
            f", retries exhausted for {given_up}: fix them, then run resync_documents with "
            "their ids" if given_up else ", retried with backoff")
        + (f"; the {shown} most recent are listed" if shown < failed else "")
        + ": see the table (`vector-sync status` lists them too)",
        metadata={"documents_failed": failed, "documents_given_up": given_up,
                  "failed_documents": status["failed_documents"]})
