"""Sync events: what they cost a sync, and how many events a second each sink takes.

(a) The initial sync of the example vault and its no-op re-sync, each as the whole
    `vector-sync sync --json` process, with events off (no `events:`) and on (NATS
    JetStream, Redis Streams and a JSON Lines file at once), interleaved in one session:
    initial syncs 2 x 2, no-op syncs 5 x 2; the medians. Goal: on <= 5% slower than off;
    the no-op unchanged (it records no document event, only the run's sync.finished).
(b) Events per second a sink takes from the outbox: 20,000 events recorded in a fresh
    SQLite ledger, drained into one sink (the publisher's own batches), for the file,
    Redis, NATS JetStream (each publish acknowledged) and a loopback webhook receiver
    (one signed POST per event; 2,000 events).

Run: `.venv/bin/python benchmarks/events.py` (NATS on 127.0.0.1:4222 and Redis on :6379).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from _measure import measure

HERE = Path(__file__).resolve().parent
VAULT = HERE.parent / "examples" / "vault"
CLI = str(Path(sys.executable).with_name("vector-sync"))
TAG = uuid.uuid4().hex[:10]
STREAM, PREFIX, KEY = f"BENCH_{TAG.upper()}", f"bench_{TAG}", f"bench:{TAG}"


def _project(root: Path, events: bool) -> Path:
    shutil.copytree(VAULT, root / "vault")
    config: dict[str, Any] = {
        "state": {"dir": "state"},
        "sources": {"notes": {"kind": "markdown", "path": "vault", "include": ["**/*.md"],
                              "collections": ["notes"]}},
        "collections": {"notes": {"embed": ["title", "body"], "payload": ["tags", "path"]}}}
    if events:
        config["events"] = {"sinks": [
            {"kind": "nats", "stream": STREAM, "subject_prefix": PREFIX},
            {"kind": "redis", "stream_key": KEY},
            {"kind": "file", "path": "events.jsonl"}]}
    (root / "vector_sync.yaml").write_text(yaml.safe_dump(config))
    return root / "vector_sync.yaml"


def _sync(config: Path) -> float:
    return measure([CLI, "sync", "--config", str(config), "--json"]).seconds


def syncs(scratch: Path) -> dict[str, float]:
    figures: dict[str, list[float]] = {k: [] for k in ("initial_off", "initial_on", "noop_off",
                                                       "noop_on")}
    configs: dict[str, Path] = {}
    for round_ in range(2):
        for mode in ("off", "on"):
            root = scratch / f"{mode}{round_}"
            root.mkdir()
            configs[mode] = _project(root, mode == "on")
            figures[f"initial_{mode}"].append(_sync(configs[mode]))
    for _ in range(5):
        for mode in ("off", "on"):
            figures[f"noop_{mode}"].append(_sync(configs[mode]))
    return {k: statistics.median(v) for k, v in figures.items()}


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def sink_rates(scratch: Path) -> dict[str, float]:
    from vector_sync.core.events import outbox
    from vector_sync.core.events.cloudevents import SYNCED, make
    from vector_sync.core.events.config import EventsConfig
    from vector_sync.core.events.publisher import drain_sink
    from vector_sync.core.ledger import Ledger

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sinks = EventsConfig.model_validate({"sinks": [
        {"kind": "file", "path": str(scratch / "rate.jsonl"), "timeout_s": 600},
        {"kind": "redis", "stream_key": KEY + ":rate", "timeout_s": 600},
        {"kind": "nats", "stream": STREAM + "_RATE", "subject_prefix": PREFIX + "_rate",
         "timeout_s": 600},
        {"kind": "webhook", "url": f"http://127.0.0.1:{server.server_address[1]}/",
         "secret": "bench", "timeout_s": 600}]}).sinks
    rates: dict[str, float] = {}
    try:
        for sink in sinks:
            count = 2_000 if sink.kind == "webhook" else 20_000
            with Ledger(f"sqlite:///{scratch / f'rate_{sink.kind}.sqlite'}") as ledger:
                now = datetime.now(UTC)
                ledger.record_events([make(SYNCED, "notes", "notes", f"notes/doc{i}.md", now,
                                           {"doc_id": f"doc{i}.md", "action": "added",
                                            "chunks_embedded": 3, "points": 3}, i)
                                      for i in range(count)])
                started = time.perf_counter()
                done = drain_sink(ledger.engine, sink)
                seconds = time.perf_counter() - started
                assert done.delivered == count and done.error is None, done
                assert outbox.backlog(ledger.engine, [sink.sink_name])[sink.sink_name].events == 0
            rates[sink.kind] = count / seconds
    finally:
        server.shutdown()
    return rates


async def _cleanup() -> None:
    import nats
    import redis

    nc = await nats.connect("nats://127.0.0.1:4222")
    for stream in (STREAM, STREAM + "_RATE"):
        with contextlib.suppress(Exception):  # not created
            await nc.jetstream().delete_stream(stream)
    await nc.close()
    redis.Redis().delete(KEY, KEY + ":rate")


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="vector_sync_events_bench_"))
    try:
        timings = syncs(scratch)
        rates = sink_rates(scratch)
    finally:
        asyncio.run(_cleanup())
        shutil.rmtree(scratch, ignore_errors=True)
    print("| figure | events off | events on (NATS + Redis + file) | on vs off |")
    print("|---|---|---|---|")
    for name in ("initial", "noop"):
        off, on = timings[f"{name}_off"], timings[f"{name}_on"]
        print(f"| {name} sync (median, s) | {off:.2f} | {on:.2f} | {100 * (on / off - 1):+.1f}% |")
    print()
    print("| sink | events/s |")
    print("|---|---|")
    for kind, rate in rates.items():
        print(f"| {kind} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
