"""Drains the outbox: every sink gets the events it has not taken, oldest first, within its
own `timeout_s`, so a sink that is down costs a sync at most that long and never fails it;
what it did not take waits for the next drain (the end of the next apply step, or the
`events_drain` sensor). Then events every sink has are pruned after `events.retention`."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from vector_sync.core import faults
from vector_sync.core.events import outbox
from vector_sync.core.events.config import (
    EventsConfig,
    FileSinkConfig,
    NatsSinkConfig,
    RedisSinkConfig,
    SinkConfig,
    WebhookSinkConfig,
)
from vector_sync.core.events.sinks.base import Sink
from vector_sync.core.secrets import mask_url, scrub, url_secrets

if TYPE_CHECKING:
    from vector_sync.core.ledger import Ledger
    from vector_sync.core.settings import VectorSyncConfig

log = logging.getLogger(__name__)
BATCH = 500  # events read from the outbox and handed to a sink at once


@dataclass
class Drained:
    delivered: int = 0
    refused: int = 0
    error: str | None = None  # why the sink stopped before its backlog was empty


def _secrets(config: SinkConfig) -> list[str]:
    found: list[str] = []
    url = getattr(config, "url", None)
    if url is not None:
        found += url_secrets(url.get_secret_value())
    secret = getattr(config, "secret", None)
    if secret is not None:
        found.append(secret.get_secret_value())
    return [s for s in found if s]


def _masked(config: SinkConfig, text: str) -> str:
    url = getattr(config, "url", None)
    if url is not None:
        raw = url.get_secret_value()
        text = text.replace(raw, mask_url(raw))
    return scrub(text, _secrets(config))


def sink_for(config: SinkConfig) -> Sink:
    """The sink of a config; its client library is imported only when it has work."""
    if isinstance(config, NatsSinkConfig):
        from vector_sync.core.events.sinks.nats import NatsSink
        return NatsSink(config)
    if isinstance(config, RedisSinkConfig):
        from vector_sync.core.events.sinks.redis import RedisSink
        return RedisSink(config)
    if isinstance(config, WebhookSinkConfig):
        from vector_sync.core.events.sinks.webhook import WebhookSink
        return WebhookSink(config)
    if isinstance(config, FileSinkConfig):
        from vector_sync.core.events.sinks.file import FileSink
        return FileSink(config)
    raise TypeError(f"unknown sink {config!r}")


def drain_sink(engine: Engine, config: SinkConfig) -> Drained:
    """Deliver `config`'s backlog until it is empty or the sink's time is up."""
    name = config.sink_name
    deadline = time.monotonic() + config.timeout_s
    done = Drained()
    batch = outbox.pending(engine, name, BATCH)
    if not batch:
        return done
    sink = sink_for(config)
    try:
        sink.open(deadline)
        while batch:
            sent = sink.send(batch, deadline)
            faults.reached("events.sent")  # taken by the sink, not yet recorded
            outbox.mark(engine, name, sent.taken, "delivered")
            faults.reached("events.marked")
            for seq, why in sent.refused:
                outbox.mark(engine, name, [seq], "failed", _masked(config, why))
            done.delivered += len(sent.taken)
            done.refused += len(sent.refused)
            if sent.stopped is not None:
                raise _Stopped(sent.stopped)
            if time.monotonic() >= deadline:
                done.error = f"{config.timeout_s:g} s (timeout_s) spent, backlog left"
                break
            batch = outbox.pending(engine, name, BATCH)
    except Exception as error:  # noqa: BLE001 - a sink down never fails the caller
        why = str(error) if isinstance(error, _Stopped) else f"{type(error).__name__}: {error}"
        done.error = _masked(config, why)[:1000] or type(error).__name__
        left = outbox.pending(engine, name, 1)
        outbox.mark(engine, name, [e.seq for e in left], "retrying", done.error)
    finally:
        with contextlib.suppress(Exception):  # closing a broken connection
            sink.close()
    return done


class _Stopped(Exception):
    """The sink refused to go on (the reason is its message)."""


def drain(engine: Engine, events: EventsConfig) -> dict[str, Drained]:
    """Drain every sink, then prune; never raises for a sink."""
    results: dict[str, Drained] = {}
    for config in events.sinks:
        results[config.sink_name] = result = drain_sink(engine, config)
        if result.error:
            log.warning("events: sink %s: %s (%d delivered; the rest waits in the outbox)",
                        config.sink_name, result.error, result.delivered)
    try:
        cutoff = datetime.now(UTC) - timedelta(seconds=events.retention_s)
        outbox.prune(engine, [s.sink_name for s in events.sinks], cutoff)
    except Exception as error:  # noqa: BLE001 - pruning is housekeeping
        log.warning("events: pruning the outbox failed: %s", error)
    return results


def deliver_events(config: VectorSyncConfig, ledger: Ledger) -> dict[str, Drained]:
    """`drain` for a sync: whatever goes wrong (the ledger itself unreachable), the sync
    goes on; the events wait in the outbox."""
    try:
        return drain(ledger.engine, config.events)
    except Exception as error:  # noqa: BLE001 - delivery never fails a sync
        log.warning("events: not delivered now, they wait in the outbox: %s: %s",
                    type(error).__name__, error)
        return {}
