"""A JSON Lines file: one CloudEvent per line, appended, flushed and synced to disk."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO

from vector_sync.core.events.cloudevents import Event, encode
from vector_sync.core.events.config import FileSinkConfig
from vector_sync.core.events.sinks.base import Sent


class FileSink:
    def __init__(self, config: FileSinkConfig) -> None:
        self.name = config.sink_name
        self.path = config.path
        self._file: IO[bytes] | None = None

    def open(self, deadline: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed by close()

    def send(self, events: Sequence[Event], deadline: float) -> Sent:
        assert self._file is not None
        self._file.write(b"".join(encode(e) + b"\n" for e in events))
        self._file.flush()
        os.fsync(self._file.fileno())
        return Sent(taken=[e.seq for e in events])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
