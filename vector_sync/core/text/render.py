"""How a collection's embedded fields become the text that is chunked and embedded.

Short values become `field: value` lines (the *preamble*, repeated at the top of every
chunk so each chunk carries its context, e.g. the title); long text values (multi-line, or
longer than LONG_TEXT_CHARS) are the Markdown *body* that gets chunked. Fields keep the
configured order; missing and empty fields are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vector_sync.core.documents import MISSING, get_path

LONG_TEXT_CHARS = 200


def flatten(value: Any) -> str:
    """A readable one-line rendering of nested values: lists joined, mappings as k: v."""
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {flatten(v)}" for k, v in value.items() if not _empty(v))
    if isinstance(value, list | tuple):
        return ", ".join(flatten(v) for v in value if not _empty(v))
    return str(value).strip()


def _empty(value: Any) -> bool:
    if value is None or value is MISSING:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping | list | tuple):
        return all(_empty(v) for v in (value.values() if isinstance(value, Mapping) else value))
    return False


def render(fields: Mapping[str, Any], embed: Sequence[str]) -> tuple[str, str]:
    """(preamble, body) for a document; both empty when it has none of the embed fields."""
    lines: list[str] = []
    bodies: list[str] = []
    for name in embed:
        value = get_path(fields, name)
        if _empty(value):
            continue
        if isinstance(value, str) and ("\n" in value.strip() or len(value) > LONG_TEXT_CHARS):
            bodies.append(value.strip())
        else:
            lines.append(f"{name}: {flatten(value)}")
    return "\n".join(lines), "\n\n".join(bodies)
