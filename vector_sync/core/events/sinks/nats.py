"""NATS JetStream: the stream is created when missing (capturing `<subject_prefix>.>`); each
event is published on `<subject_prefix>.<type without "vector_sync.">` with its id as
`Nats-Msg-Id` (JetStream drops a copy it already has within its duplicate window), and
counts as delivered only once JetStream acknowledged it."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

from vector_sync.core.events.cloudevents import PREFIX, Event, encode
from vector_sync.core.events.config import NatsSinkConfig
from vector_sync.core.events.sinks.base import Sent


def _without_websockets() -> None:
    """nats-py imports aiohttp, when installed, for ws:// servers only: 0.25 s added to
    every sync that publishes (a no-op sync's one event). This sink speaks nats:// and
    tls://, so aiohttp is hidden while nats-py is imported (and importable again after)."""
    if "aiohttp" in sys.modules or "nats" in sys.modules:
        return
    sys.modules["aiohttp"] = None  # type: ignore[assignment]
    try:
        import nats.aio.transport  # noqa: F401 - imported here, without aiohttp
    finally:
        del sys.modules["aiohttp"]


_without_websockets()

import nats  # noqa: E402 - after the guard above
from nats.js.errors import NotFoundError  # noqa: E402

_IN_FLIGHT = 256  # publishes awaiting their acknowledgement at once


def subject_of(prefix: str, type_: str) -> str:
    return f"{prefix}.{type_.removeprefix(PREFIX)}"


async def _quiet(_error: Exception) -> None:
    """nats-py logs every connection error itself; the drain reports them once."""


class NatsSink:
    def __init__(self, config: NatsSinkConfig) -> None:
        self.name = config.sink_name
        self.config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Any = None
        self._js: Any = None

    def open(self, deadline: float) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            # the deadline bounds everything, whatever the client's own retries do
            self._loop.run_until_complete(asyncio.wait_for(
                self._connect(deadline), max(deadline - time.monotonic(), 0.1)))
        except BaseException:
            self.close()
            raise

    async def _connect(self, deadline: float) -> None:
        wait = max(deadline - time.monotonic(), 0.1)
        self._nc = await nats.connect(
            self.config.url.get_secret_value(), connect_timeout=wait, allow_reconnect=False,
            max_reconnect_attempts=1, error_cb=_quiet)
        self._js = self._nc.jetstream(timeout=wait)
        try:
            await self._js.stream_info(self.config.stream)
        except NotFoundError:
            await self._js.add_stream(name=self.config.stream,
                                      subjects=[f"{self.config.subject_prefix}.>"])

    def send(self, events: Sequence[Event], deadline: float) -> Sent:
        assert self._loop is not None
        sent = Sent()
        try:
            self._loop.run_until_complete(asyncio.wait_for(
                self._publish(events, deadline, sent), max(deadline - time.monotonic(), 0.1)))
        except TimeoutError:
            sent.stopped = "acknowledgements not received within timeout_s"
        return sent

    async def _publish(self, events: Sequence[Event], deadline: float, sent: Sent) -> None:
        for start in range(0, len(events), _IN_FLIGHT):
            window = events[start:start + _IN_FLIGHT]
            wait = max(deadline - time.monotonic(), 0.1)
            # sent in order on one connection: JetStream stores them in that order
            acks = await asyncio.gather(*(
                self._js.publish(subject_of(self.config.subject_prefix, e.type), encode(e),
                                 timeout=wait, headers={"Nats-Msg-Id": e.event_id})
                for e in window), return_exceptions=True)
            for event, ack in zip(window, acks, strict=True):
                if isinstance(ack, BaseException):
                    # what follows waits, so a subscriber never sees a later event first
                    sent.stopped = f"not acknowledged: {type(ack).__name__}: {ack}"
                    return
                sent.taken.append(event.seq)

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            if self._nc is not None and not self._nc.is_closed:
                self._loop.run_until_complete(asyncio.wait_for(self._nc.close(), 2))
        except Exception:  # noqa: BLE001, S110 - a dead connection: nothing to close
            pass
        finally:
            self._loop.close()
            self._loop, self._nc, self._js = None, None, None
