"""The one small protocol every source kind implements."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from vector_sync.core.documents import Document, ReadFailure, SourceEntry


class SourceUnavailable(Exception):
    """The whole source cannot be read (missing folder, unreachable server): nothing may be
    concluded about its documents, so nothing is deleted."""


class Source(Protocol):
    name: str
    # True when read() returns only documents within the source's scope (its filter), so a
    # targeted sync can skip listing the source; else the engine intersects with scan()
    scoped_reads: bool

    def scan(self) -> Iterator[SourceEntry]:
        """Every document's id and version hint, cheaply (no document bodies read).

        Raises SourceUnavailable when the source as a whole cannot be listed."""
        ...

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        """The documents for `doc_ids`, one result per id that still exists, in any order.

        A problem with one document is a ReadFailure, never an exception."""
        ...


@runtime_checkable
class Checkpointed(Protocol):
    """Optional: a source with a change history of its own (Git's commits). After scan(),
    the engine passes back the checkpoint every collection of the source last applied;
    once a collection has applied this snapshot, it records the new `checkpoint`."""

    checkpoint: str | None  # where the last changed_since() left the source, or None
    detection: dict[str, Any]  # how changed_since() found the changes, for the metadata

    def changed_since(self, checkpoint: str | None) -> set[str]:
        """After scan(): the doc_ids changed since `checkpoint`. They are read whatever their
        hints say, so the reads are the union of this and the hint comparison. Empty when
        `checkpoint` is None or unusable (the hints alone then decide)."""
        ...


@dataclass(frozen=True)
class ChangeCheck:
    """What a cheap look at a source saw since the state kept from the last look (a sensor's
    cursor): whether to sync, a line for the log, and the state to keep for the next look."""

    changed: bool
    summary: str
    new_state: dict[str, Any]
