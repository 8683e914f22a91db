"""What a finished run leaves for the systems around the index: its `sync.finished` event
(and `guard.tripped`, `collection.inconsistent`, `collection.repaired` when it found or did
that), and the running figures the metrics read (totals of chunks embedded and points
written, the histogram of run durations, the time of the last success, the last check's
inconsistency counts), kept in the ledger's `source_state` under keys of their own.

Recording a run twice (the CLI after its in-process run, and a run-status sensor seeing the
same run in the instance) changes nothing: the figures remember the last run ids they
counted, and the events' ids are the run id's digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vector_sync.core.events import cloudevents as ce
from vector_sync.core.ledger import Ledger

FIGURES = "metrics"  # source_state key of a source's running figures
CHECKS = "*"  # source_state source of the last checks' findings, one key per collection
CHECK_KEY = "inconsistent/"
# run durations (s) the histogram buckets, as Prometheus' `le`
BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_RUNS_KEPT = 50  # run ids a source's figures remember, against counting one twice


@dataclass
class Finding:
    """A consistency check's result for one collection."""

    collection: str
    checked: int
    missing: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # when only counts are known

    def count(self, kind: str) -> int:
        return self.counts.get(kind, len(getattr(self, kind)))


@dataclass
class FinishedRun:
    source: str  # "" for a run of no one source (the verify job)
    run_id: str
    trigger: str
    success: bool
    duration_s: float
    collections: dict[str, dict[str, int]] = field(default_factory=dict)
    error: str | None = None
    guard_tripped: dict[str, str] = field(default_factory=dict)  # collection -> why
    findings: list[Finding] = field(default_factory=list)
    repaired: bool = False
    ended: datetime = field(default_factory=lambda: datetime.now(UTC))


def _figures(ledger: Ledger, source: str) -> dict[str, Any]:
    text = ledger.get_state(source, FIGURES)
    return json.loads(text) if text else {}


def _count_run(figures: dict[str, Any], run: FinishedRun) -> None:
    figures["runs"] = [*figures.get("runs", []), run.run_id][-_RUNS_KEPT:]
    for name, key in (("chunks_embedded", "chunks_embedded"),
                      ("points_written", "points_written")):
        totals = figures.setdefault(name, {})
        for collection, counts in run.collections.items():
            totals[collection] = totals.get(collection, 0) + int(counts.get(key, 0))
    histogram = figures.setdefault("duration", {"buckets": [0] * len(BUCKETS), "sum": 0.0,
                                                "count": 0})
    for index, bound in enumerate(BUCKETS):
        histogram["buckets"][index] += run.duration_s <= bound
    histogram["sum"] += run.duration_s
    histogram["count"] += 1
    if run.success:
        figures["last_success"] = run.ended.timestamp()
    else:
        figures["last_failure"] = run.ended.timestamp()


def events_of(run: FinishedRun) -> list[ce.Event]:
    time = run.ended
    found: list[ce.Event] = []
    for collection, why in run.guard_tripped.items():
        found.append(ce.guard_tripped(run.source, collection, run.run_id, why, time))
    for finding in run.findings:
        kinds = {k: finding.count(k) for k in ("missing", "orphans", "stale")}
        if any(kinds.values()):
            first = sorted({*finding.missing, *finding.orphans, *finding.stale})
            found.append(ce.collection_event(
                ce.INCONSISTENT, run.source, finding.collection, time,
                {**kinds, "checked": finding.checked, "run_id": run.run_id,
                 "doc_ids": first[:ce.FIRST_IDS]}, run.run_id))
    if run.repaired and run.success:
        for collection, counts in run.collections.items():
            found.append(ce.collection_event(ce.REPAIRED, run.source, collection, time,
                                             {"run_id": run.run_id, "counts": counts},
                                             run.run_id))
    found.append(ce.sync_finished(run.source, run.run_id, run.trigger, run.success,
                                  run.collections, run.duration_s, time, run.error))
    return found


def record_run(ledger: Ledger, run: FinishedRun, with_events: bool) -> bool:
    """Record a finished run's figures (and, `with_events`, its events); False when this run
    was recorded before."""
    figures = _figures(ledger, run.source or CHECKS)
    if run.run_id in figures.get("runs", []):
        return False
    for finding in run.findings:
        ledger.set_state(CHECKS, CHECK_KEY + finding.collection, json.dumps(
            {k: finding.count(k) for k in ("missing", "orphans", "stale")}))
    if with_events:
        ledger.record_events(events_of(run))
    _count_run(figures, run)
    ledger.set_state(run.source or CHECKS, FIGURES, json.dumps(figures))
    return True


def figures(ledger: Ledger, source: str) -> dict[str, Any]:
    return _figures(ledger, source)


def findings(ledger: Ledger) -> dict[str, dict[str, int]]:
    """collection -> kind -> documents the last check found (missing, orphans, stale)."""
    found: dict[str, dict[str, int]] = {}
    for key, value in ledger.states(CHECKS).items():
        if key.startswith(CHECK_KEY):
            found[key.removeprefix(CHECK_KEY)] = json.loads(value)
    return found
