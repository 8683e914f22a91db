"""What every sink is: opened for one drain, sent batches, closed; `Sent` says what it took."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from vector_sync.core.events.cloudevents import Event


@dataclass
class Sent:
    taken: list[int] = field(default_factory=list)  # seqs taken, in order
    refused: list[tuple[int, str]] = field(default_factory=list)  # (seq, why): final
    stopped: str | None = None  # why the rest of the batch was not sent


class Sink(Protocol):
    name: str

    def open(self, deadline: float) -> None: ...

    def send(self, events: Sequence[Event], deadline: float) -> Sent: ...

    def close(self) -> None: ...
