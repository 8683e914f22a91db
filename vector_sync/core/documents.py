"""What sources yield: cheap entries while scanning, then documents (or read failures)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
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
    """The values at `paths`, kept at their source nesting; absent and null paths are left
    out (Qdrant's set_payload removes a key set to null where an upsert keeps it: a null
    stored as absent reads back the same after either)."""
    result: dict[str, Any] = {}
    for dotted in paths:
        value = get_path(fields, dotted)
        if value is MISSING or value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return result


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def json_tree(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """`value` made JSON-safe, one form per value, for a source whose client decodes its own
    types: nesting kept (keys as strings, tuples as lists), ints plain (Int64 and friends),
    non-finite floats as "NaN", "Infinity", "-Infinity"; anything else is `leaf(value)`,
    the kind's own conversion (which may recurse through json_tree)."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, dict):
        return {str(key): json_tree(item, leaf) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_tree(item, leaf) for item in value]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[str(value)]
    return leaf(value)
