"""SurrealDB values (as the `surrealdb` SDK decodes them) to JSON-safe ones, and record hashes.

Every value has one form, so a record's hash changes exactly when its data does:
datetime: ISO 8601 UTC with "Z"; Duration: SurrealQL's own notation (`1h30m`); decimal: its
exact string (not a float); UUID: its string; bytes: base64; a record link: its doc_id form
(ids.py: `person:tobie`, `t:[1, 'x']`); geometries: GeoJSON;
non-finite floats: "NaN", "Infinity", "-Infinity"; arrays (and sets): lists. Nesting is kept.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from surrealdb import Duration, RecordID, Table

from vector_sync.core.documents import json_tree
from vector_sync.core.hashing import stable_json
from vector_sync.sources.surrealdb.ids import record_string

# Bump whenever json_safe() changes: every hash hint changes with it, so every record is read
# again and converted the new way
CONVERSION = "1"
_DURATION_UNITS = (("y", 365 * 86400 * 10**9), ("w", 7 * 86400 * 10**9), ("d", 86400 * 10**9),
                   ("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6),
                   ("µs", 10**3), ("ns", 1))


def json_safe(value: Any) -> Any:
    return json_tree(value, _surreal_value)


def _surreal_value(value: Any) -> Any:
    if isinstance(value, set | frozenset):  # no order of its own: sorted, so hashes are stable
        return sorted((json_safe(item) for item in value), key=stable_json)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal | uuid.UUID):  # a decimal exactly, not as a float
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, RecordID):
        return record_string(value)
    if isinstance(value, Table):
        return str(value.table_name)
    if isinstance(value, Duration):
        return duration_string(value.elapsed)
    if hasattr(value, "get_coordinates"):  # GeometryPoint, GeometryPolygon, ...
        kind = type(value).__name__.removeprefix("Geometry")
        if kind == "Collection":
            return {"type": "GeometryCollection",
                    "geometries": [json_safe(g) for g in value.geometries]}
        return {"type": kind, "coordinates": json.loads(json.dumps(value.get_coordinates()))}
    raise ValueError(f"a {type(value).__name__} value has no JSON form")


def duration_string(nanoseconds: int) -> str:
    """SurrealQL duration notation: 5_400 s is `1h30m`; zero is `0ns`."""
    parts = []
    for unit, size in _DURATION_UNITS:
        count, nanoseconds = divmod(nanoseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0ns"


def record_hash(fields: dict[str, Any]) -> str:
    """A record's data (already JSON-safe, without the write-back field) as a hint."""
    digest = hashlib.blake2b(stable_json(fields).encode("utf-8"), digest_size=16).hexdigest()
    return f"h{CONVERSION}:{digest}"
