"""Redis Streams: one `XADD <stream_key> MAXLEN ~ <maxlen> * id <id> type <type> subject
<subject> event <CloudEvent JSON>` per event, a batch per round trip (a pipeline)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis

from vector_sync.core.events.cloudevents import Event, encode
from vector_sync.core.events.config import RedisSinkConfig
from vector_sync.core.events.sinks.base import Sent


class RedisSink:
    def __init__(self, config: RedisSinkConfig) -> None:
        self.name = config.sink_name
        self.config = config
        self._client: Any = None

    def open(self, deadline: float) -> None:
        wait = max(deadline - time.monotonic(), 0.1)
        self._client = redis.Redis.from_url(
            self.config.url.get_secret_value(), socket_timeout=wait,
            socket_connect_timeout=wait)

    def send(self, events: Sequence[Event], deadline: float) -> Sent:
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(self.config.stream_key,
                      {"id": event.event_id, "type": event.type, "subject": event.subject,
                       "event": encode(event)},
                      maxlen=self.config.maxlen, approximate=True)
        pipe.execute()
        return Sent(taken=[e.seq for e in events])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
