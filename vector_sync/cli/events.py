"""`events tail` and `events redeliver` (the outbox, for debugging; sending again), and
`metrics serve` (Prometheus' /metrics from the ledger and the outbox)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from vector_sync.cli.common import FAILED, OK, UsageError, print_json
from vector_sync.config import VectorSyncConfig

FOLLOW_EVERY_S = 1.0


def _since(text: str) -> datetime:
    """An ISO time (UTC unless it says otherwise), or a duration back from now (`2h`)."""
    from vector_sync.core.stats import duration_s

    try:
        return datetime.now(UTC) - timedelta(seconds=duration_s(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r}: give an ISO time (2026-12-07T10:00:00Z) or a "
                         "duration back from now (30m, 2h, 7d)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _line(event: Any, deliveries: dict[str, tuple[str, int, str | None]]) -> str:
    from vector_sync.core.events.cloudevents import iso

    states = " ".join(f"{sink}={state}" + (f"({attempts})" if state != "delivered" else "")
                      for sink, (state, attempts, _error) in sorted(deliveries.items()))
    return (f"{event.seq:>8} {iso(event.time)} {event.type.removeprefix('vector_sync.'):<24} "
            f"{event.subject}  {json.dumps(event.data, sort_keys=True)[:160]}"
            + (f"  [{states}]" if states else "  [pending]"))


def cmd_events_tail(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.events import outbox
    from vector_sync.core.events.cloudevents import TYPES, envelope
    from vector_sync.core.pipeline.plan import read_only_ledger

    if args.type and args.type not in TYPES and f"vector_sync.{args.type}" not in TYPES:
        raise UsageError(f"--type {args.type!r}: one of {', '.join(TYPES)}")
    type_ = args.type if not args.type or args.type in TYPES else f"vector_sync.{args.type}"
    with read_only_ledger(config) as ledger:
        events = outbox.tail(ledger.engine, args.limit, type_=type_)
        newest = outbox.tail(ledger.engine, 1)
        after = newest[0].seq if newest else 0  # --follow: what comes after this
        while True:
            for event in events:
                deliveries = outbox.deliveries(ledger.engine, event.seq)
                if args.json:
                    print(json.dumps({"seq": event.seq, "event": envelope(event),
                                      "deliveries": {s: {"state": st, "attempts": n,
                                                         "last_error": e}
                                                     for s, (st, n, e) in deliveries.items()}},
                                     sort_keys=True), flush=True)
                else:
                    print(_line(event, deliveries), flush=True)
                after = max(after, event.seq)
            if not args.follow:
                return OK
            time.sleep(FOLLOW_EVERY_S)
            fresh = outbox.tail(ledger.engine, after=after)
            after = fresh[-1].seq if fresh else after
            events = [e for e in fresh if type_ is None or e.type == type_]


def cmd_events_redeliver(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.events import outbox
    from vector_sync.core.events.publisher import drain_sink
    from vector_sync.core.ledger import open_ledger

    sink = config.events.sink(args.sink)
    if sink is None:
        names = ", ".join(s.sink_name for s in config.events.sinks) or "none"
        raise UsageError(f"unknown sink {args.sink!r} (configured: {names})")
    since = _since(args.since)
    with open_ledger(config.state) as ledger:
        again = outbox.forget_deliveries(ledger.engine, sink.sink_name, since)
        drained = drain_sink(ledger.engine, sink)
        left = outbox.backlog(ledger.engine, [sink.sink_name])[sink.sink_name].events
    report = {"sink": sink.sink_name, "since": since.isoformat(), "resent": again,
              "delivered": drained.delivered, "refused": drained.refused, "pending": left,
              "error": drained.error}
    if args.json:
        print_json(report)
    else:
        print(f"{sink.sink_name}: {drained.delivered} delivered, {drained.refused} refused, "
              f"{left} waiting" + (f" ({drained.error})" if drained.error else ""))
    return FAILED if drained.error or left else OK


def cmd_metrics_serve(args: argparse.Namespace, config: VectorSyncConfig) -> int:
    from vector_sync.core.events.metrics import server

    httpd = server(config, args.host, args.port)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    host, port = httpd.server_address[:2]
    print(f"serving http://{host!s}:{port}/metrics", file=sys.stderr, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return OK


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    events = commands.add_parser("events", help="the sync event outbox: tail, redeliver")
    actions = events.add_subparsers(dest="action", required=True)
    tail = actions.add_parser("tail", parents=[common],
                              help="the newest events in the outbox, with each sink's delivery")
    tail.add_argument("--follow", action="store_true", help="keep printing new events")
    tail.add_argument("--type", help="only this type (document.synced or "
                      "vector_sync.document.synced)")
    tail.add_argument("--limit", type=int, default=20, help="events shown first")
    tail.set_defaults(handler=cmd_events_tail)
    redeliver = actions.add_parser("redeliver", parents=[common],
                                   help="send events to a sink again (same ids)")
    redeliver.add_argument("--sink", required=True, help="a sink's name (default: its kind)")
    redeliver.add_argument("--since", required=True,
                           help="an ISO time, or a duration back from now (30m, 2h, 7d)")
    redeliver.set_defaults(handler=cmd_events_redeliver)

    metrics = commands.add_parser("metrics", help="Prometheus metrics")
    metric_actions = metrics.add_subparsers(dest="action", required=True)
    serve = metric_actions.add_parser("serve", parents=[common],
                                      help="serve /metrics from the ledger and the outbox")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9464)
    serve.set_defaults(handler=cmd_metrics_serve)
