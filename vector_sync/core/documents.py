"""What sources yield: cheap entries while scanning, then documents (or read failures)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """A document as seen by a cheap scan: its id and a version hint (never trusted alone)."""

    doc_id: str
    version: str


@dataclass(frozen=True, slots=True)
class Document:
    """A document read from its source: `fields` may nest; `version` is the scan's hint."""

    doc_id: str
    version: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReadFailure:
    """A document that exists but could not be turned into fields, with a reason a user reads."""

    doc_id: str
    version: str
    error_code: str  # short machine-readable code, e.g. "invalid_utf8", "too_large"
    message: str


MISSING = object()


def get_path(fields: Mapping[str, Any], dotted: str) -> Any:
    """`get_path({"imdb": {"rating": 7}}, "imdb.rating") == 7`; MISSING when absent."""
    value: Any = fields
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def nested_subset(fields: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """The values at `paths`, kept at their source nesting; absent paths are left out."""
    result: dict[str, Any] = {}
    for dotted in paths:
        value = get_path(fields, dotted)
        if value is MISSING:
            continue
        *parents, leaf = dotted.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return result
