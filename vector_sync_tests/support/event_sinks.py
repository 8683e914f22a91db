"""Readers of what the real NATS JetStream and Redis on this machine received, under names
unique to one test (a JetStream stream and subject prefix, a Redis stream key), removed
afterwards; and a loopback webhook receiver that checks every signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vector_sync_tests.support.services import service_missing

NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


@dataclass
class Names:
    stream: str
    prefix: str
    redis_key: str


@contextmanager
def unique_sinks() -> Iterator[Names]:
    """Names no other test uses; the stream and the key are deleted at the end."""
    if not _reachable(4222):
        service_missing("no NATS server on 127.0.0.1:4222")
    if not _reachable(6379):
        service_missing("no Redis server on 127.0.0.1:6379")
    tag = uuid.uuid4().hex[:12]
    names = Names(stream=f"VST_{tag.upper()}", prefix=f"vst_{tag}", redis_key=f"vst:{tag}")
    try:
        yield names
    finally:
        asyncio.run(_delete_stream(names.stream))
        import redis

        redis.Redis.from_url(REDIS_URL).delete(names.redis_key)


async def _delete_stream(stream: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    except NotFoundError:
        pass
    finally:
        await nc.close()


def jetstream_events(stream: str) -> list[dict[str, Any]]:
    """Every message of the stream, in stream order, read by an ordered pull consumer."""
    return asyncio.run(_read_stream(stream))


async def _read_stream(stream: str) -> list[dict[str, Any]]:
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        found: list[dict[str, Any]] = []
        if not total:
            return found
        consumer = await js.pull_subscribe("", durable=None, stream=stream)
        while len(found) < total:
            for message in await consumer.fetch(min(total - len(found), 256), timeout=5):
                event = json.loads(message.data)
                event["_subject"] = message.subject
                found.append(event)
                await message.ack()
        return found
    finally:
        await nc.close()


def redis_events(key: str) -> list[dict[str, Any]]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    found = []
    for _entry_id, fields in client.xrange(key):
        event = json.loads(fields[b"event"])
        assert fields[b"id"].decode() == event["id"]
        assert fields[b"type"].decode() == event["type"]
        found.append(event)
    return found


@dataclass
class Receiver:
    """A loopback webhook endpoint: keeps every event whose signature checks out, counts
    the others, and answers `status` (by event type, else 200)."""

    secret: bytes
    status: dict[str, int] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    url: str = ""


@contextmanager
def webhook_receiver(secret: str, status: dict[str, int] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(secret.encode(), status or {})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            stamp = self.headers["X-Vector-Sync-Timestamp"]
            want = "sha256=" + hmac.new(receiver.secret, stamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, self.headers["X-Vector-Sync-Signature"]):
                receiver.bad_signatures += 1
                code = 401
            else:
                event = json.loads(body)
                code = receiver.status.get(event["type"], 200)
                if code < 300:
                    receiver.received.append(event)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
