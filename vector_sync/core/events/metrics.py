"""The Prometheus figures of a deployment, read from the ledger and the outbox only (no
source, no Qdrant): cheap enough to scrape every few seconds.

| metric | labels | from |
|---|---|---|
| vector_sync_documents | source, collection, status | the ledger's rows |
| vector_sync_chunks_embedded_total | source, collection | each run's figures |
| vector_sync_points_written_total | collection | each run's figures |
| vector_sync_last_success_timestamp_seconds | source | the last run that succeeded |
| vector_sync_last_failure_timestamp_seconds | source | the last run that failed |
| vector_sync_freshness_window_seconds | source | twice `sensors.resync_every_s` |
| vector_sync_sync_duration_seconds (histogram) | source | each run's duration |
| vector_sync_inconsistent_documents | collection, kind | the last verification or spot check |
| vector_sync_events_pending | sink | events a sink has yet to take |
| vector_sync_events_refused | sink | events a sink refused for good |
| vector_sync_ledger_up | | 1 when the ledger could be read |
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import MetricsHandler
from prometheus_client.registry import Collector

from vector_sync.core.events import outbox, runs
from vector_sync.core.ledger import Ledger, LedgerUnavailable
from vector_sync.core.settings import VectorSyncConfig

log = logging.getLogger(__name__)
KINDS = ("missing", "orphans", "stale")


class LedgerCollector(Collector):
    """Reads the figures on every scrape; the ledger is opened once, read-only."""

    def __init__(self, config: VectorSyncConfig) -> None:
        self.config = config
        self._ledger: Ledger | None = None

    def _open(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.config.state.ledger_sqlalchemy_url(),
                                  self.config.state.ledger_outage_s, read_only=True)
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("vector_sync_ledger_up", "1 when the ledger could be read")
        try:
            found = list(self._figures(self._open()))
        except LedgerUnavailable as error:
            log.warning("metrics: %s", error)
            self.close()
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from found

    def _figures(self, ledger: Ledger) -> Iterator[Metric]:
        documents = GaugeMetricFamily("vector_sync_documents", "Documents in the ledger by "
                                      "status", labels=["source", "collection", "status"])
        for (source, collection), by_status in sorted(ledger.counts().items()):
            for status, number in by_status.items():
                documents.add_metric([source, collection, status], number)
        yield documents
        yield from self._runs(ledger)
        inconsistent = GaugeMetricFamily(
            "vector_sync_inconsistent_documents", "Documents the last verification or spot "
            "check found wrong", labels=["collection", "kind"])
        findings = runs.findings(ledger)
        for collection in sorted({*self.config.collections, *findings}):
            for kind in KINDS:
                inconsistent.add_metric([collection, kind],
                                        findings.get(collection, {}).get(kind, 0))
        yield inconsistent
        yield from self._events(ledger)

    def _runs(self, ledger: Ledger) -> Iterator[Metric]:
        embedded = CounterMetricFamily("vector_sync_chunks_embedded", "Chunks embedded by "
                                       "syncs", labels=["source", "collection"])
        written: dict[str, int] = {}
        success = GaugeMetricFamily("vector_sync_last_success_timestamp_seconds",
                                    "When the source's last successful sync ended",
                                    labels=["source"])
        failure = GaugeMetricFamily("vector_sync_last_failure_timestamp_seconds",
                                    "When the source's last failed sync ended",
                                    labels=["source"])
        window = GaugeMetricFamily("vector_sync_freshness_window_seconds", "A source not "
                                   "synced successfully for this long has fallen behind",
                                   labels=["source"])
        duration = HistogramMetricFamily("vector_sync_sync_duration_seconds",
                                         "Duration of syncs", labels=["source"])
        for source in sorted(self.config.sources):
            figures: dict[str, Any] = runs.figures(ledger, source)
            window.add_metric([source], 2 * self.config.sensors.resync_every_s)
            for collection in self.config.sources[source].collections:
                embedded.add_metric([source, collection],
                                    figures.get("chunks_embedded", {}).get(collection, 0))
            for collection, number in figures.get("points_written", {}).items():
                written[collection] = written.get(collection, 0) + number
            if "last_success" in figures:
                success.add_metric([source], figures["last_success"])
            if "last_failure" in figures:
                failure.add_metric([source], figures["last_failure"])
            histogram = figures.get("duration")
            if histogram:
                buckets = [(str(float(bound)), count) for bound, count in
                           zip(runs.BUCKETS, histogram["buckets"], strict=True)]
                duration.add_metric([source], [*buckets, ("+Inf", histogram["count"])],
                                    histogram["sum"])
        points = CounterMetricFamily("vector_sync_points_written", "Points upserted into "
                                     "Qdrant by syncs", labels=["collection"])
        for collection in sorted({*self.config.collections, *written}):
            points.add_metric([collection], written.get(collection, 0))
        yield from (embedded, points, success, failure, window, duration)

    def _events(self, ledger: Ledger) -> Iterator[Metric]:
        pending = GaugeMetricFamily("vector_sync_events_pending", "Events a sink has yet to "
                                    "take", labels=["sink"])
        refused = GaugeMetricFamily("vector_sync_events_refused", "Events a sink refused "
                                    "for good (a webhook's 4xx)", labels=["sink"])
        sinks = [s.sink_name for s in self.config.events.sinks]
        for sink, backlog in outbox.backlog(ledger.engine, sinks).items():
            pending.add_metric([sink], backlog.events)
            refused.add_metric([sink], backlog.failed)
        yield pending
        yield refused


def registry_for(config: VectorSyncConfig) -> tuple[CollectorRegistry, LedgerCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = LedgerCollector(config)
    registry.register(collector)
    return registry, collector


def render(config: VectorSyncConfig) -> str:
    """The /metrics text, once."""
    registry, collector = registry_for(config)
    try:
        return generate_latest(registry).decode()
    finally:
        collector.close()


def server(config: VectorSyncConfig, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server answering /metrics (call serve_forever)."""
    registry, _ = registry_for(config)
    return ThreadingHTTPServer((host, port), MetricsHandler.factory(registry))
