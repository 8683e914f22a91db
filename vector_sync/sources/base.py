"""The one small protocol every source kind implements."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from vector_sync.core.documents import Document, ReadFailure, SourceEntry


class SourceUnavailable(Exception):
    """The whole source cannot be read (missing folder, unreachable server): nothing may be
    concluded about its documents, so nothing is deleted."""


class Source(Protocol):
    name: str

    def scan(self) -> Iterator[SourceEntry]:
        """Every document's id and version hint, cheaply (no document bodies read).

        Raises SourceUnavailable when the source as a whole cannot be listed."""
        ...

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        """The documents for `doc_ids`, one result per id that still exists, in any order.

        A problem with one document is a ReadFailure, never an exception."""
        ...
