"""The source contract, owned by the core: what a source kind implements and how it is found.

A source kind is a `SourceConfig` subclass (its settings, validated by pydantic, with
`kind: Literal["<name>"]`) whose `open()` returns a `Source`. Sources may also offer the
optional capabilities below; the core asks with `isinstance`, never by kind. Kinds are
listed in a `Registry` (the one in `vector_sync.sources`); the core never imports them.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

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


# --- optional capabilities -------------------------------------------------------------------


@runtime_checkable
class Checkpointed(Protocol):
    """A source with a change history of its own (Git's commits, SurrealDB's change feed).
    Before scan(), the engine passes back the checkpoint every collection of the source last
    applied (so the source may pick how it scans); once a collection has applied this
    snapshot, it records the new `checkpoint`."""

    checkpoint: str | None  # where the last changed_since() left the source, or None
    detection: dict[str, Any]  # how changed_since() found the changes, for the metadata
    # set by changed_since(): its answer names every document written or deleted since the
    # checkpoint (the history reaches back to it unbroken), so the engine may skip scan()
    # and keep every other document as the ledger has it
    complete: bool
    # a sync lists every document at least this often all the same (0: every sync), as a
    # safety net against a history that missed something
    full_listing_every_s: float

    def changed_since(self, checkpoint: str | None) -> set[str]:
        """Before scan(): the doc_ids written or deleted since `checkpoint`. They are read
        whatever their hints say, so the reads are the union of this and the hint
        comparison. Empty when `checkpoint` is None or unusable (the hints alone then
        decide)."""
        ...


class SyncOutcome(NamedTuple):
    """The result of syncing one document into one collection. `status`: synced, failed,
    pending, stale, or removed (the document has no points in that collection any more)."""

    doc_id: str
    collection: str
    status: str
    content_hash: str | None
    error: str | None


@runtime_checkable
class WritesBack(Protocol):
    """A source that records each document's sync status in the document itself (MongoDB's
    `write_back`). It must write outside the fields it syncs, so it never causes a re-sync."""

    writes_back: bool  # switched on in the source's settings

    def write_back(self, outcomes: Iterable[SyncOutcome]) -> int:
        """Record the outcomes; returns how many documents were modified. Raises
        SourceUnavailable when the source cannot be reached (Qdrant and the ledger are
        right already: the status is written again after the next sync)."""
        ...


@dataclass(frozen=True)
class ChangeCheck:
    """What a cheap look at a source saw since the state kept from the last look (a sensor's
    cursor): whether to sync, a line for the log, and the state to keep for the next look."""

    changed: bool
    summary: str
    new_state: dict[str, Any]


def fingerprint(entries: Iterable[SourceEntry]) -> str:
    """blake2b over the sorted (doc_id, version) pairs: changes when any document is added,
    removed, renamed or its version hint changes."""
    hasher = hashlib.blake2b(digest_size=32)
    for doc_id, version in sorted((e.doc_id, e.version) for e in entries):
        hasher.update(f"{doc_id}\0{version}\n".encode("utf-8", "surrogateescape"))
    return hasher.hexdigest()


# --- settings: what every kind's config shares -----------------------------------------------


class SourceConfig(BaseModel):
    """Settings every source has, whatever its kind.

    A kind subclasses this with `kind: Literal["<name>"]`, its own keys (each with a
    description: the configuration reference is generated from them) and `open()`; it may
    override `look()`, `where()` and `resolved()`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="the source kind, one of the sections below")
    collections: list[str] = Field(
        min_length=1, description="the collections this source feeds (names under `collections`)")
    max_delete_fraction: float = Field(
        0.5, ge=0, le=1, description="a sync that would delete more than this fraction of the "
        "source's documents stops before deleting anything (the mass-delete guard)")

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        """The source named `name`. `fields`: the (dotted) fields its collections embed or
        copy to the payload, for sources that can fetch less; None means every field.
        Must be cheap: connect on first use, not here."""
        raise NotImplementedError(f"source kind {self.kind!r} does not implement open()")

    def open_read_only(self, name: str, fields: Sequence[str] | None) -> Source:
        """The source for a dry run (`plan`, the consistency checks), which must leave every
        file as it was: a kind that keeps state of its own while scanning (a crawl cache, a
        clone) overrides this to scan without writing it. By default, open()."""
        return self.open(name, fields)

    def look(self, name: str, state: dict[str, Any] | None) -> ChangeCheck:
        """A sensor's cheap look: has anything changed since `state` (None: never looked)?
        By default a fingerprint of scan(), which reads no document; kinds with a cheaper
        signal (a change stream, a branch head) override it. Raises SourceUnavailable."""
        current = fingerprint(self.open(name, None).scan())
        changed = (state or {}).get("fingerprint") != current
        return ChangeCheck(changed, f"{self.where()}: " + (
            "documents were added, removed or modified" if changed else "unchanged"),
            {"fingerprint": current})

    def probe(self, name: str) -> None:
        """Raises SourceUnavailable when the source cannot be read now (what `status`
        shows). By default the sensor's first look; kinds whose first look reads every
        document id (a vault walked, a change feed read from its start) override it with a
        check that costs the same at any size."""
        self.look(name, None)

    def where(self) -> str:
        """What the source reads, for people (secrets masked): "notes under ./vault"."""
        return f"{self.kind} source"

    def resolved(self, name: str, absolute: Callable[[Path], Path], state_dir: Path) -> Self:
        """These settings with relative paths made absolute (`absolute` resolves against the
        config file's folder; by default every Path-valued key) and defaults that depend on
        the state dir filled in."""
        return self.model_copy(update={key: absolute(value) for key, value in self
                                       if isinstance(value, Path)})


# --- the registry ----------------------------------------------------------------------------


class Registry:
    """Source kinds by name. An entry is a SourceConfig subclass, or "module:Class" imported
    on first use, so a config that does not use a kind never imports its client library."""

    def __init__(self, kinds: Mapping[str, str | type[SourceConfig]] | None = None) -> None:
        self._kinds: dict[str, str | type[SourceConfig]] = dict(kinds or {})

    def register(self, kind: str, config: str | type[SourceConfig]) -> None:
        self._kinds[kind] = config

    def unregister(self, kind: str) -> None:
        del self._kinds[kind]

    def names(self) -> list[str]:
        return list(self._kinds)

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds

    def config_model(self, kind: str) -> type[SourceConfig]:
        entry = self._kinds[kind]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module), attribute)
            self._kinds[kind] = entry
        if not (isinstance(entry, type) and issubclass(entry, SourceConfig)):
            raise TypeError(f"source kind {kind!r} is registered as {entry!r}, which is not "
                            "a SourceConfig subclass")
        return entry
