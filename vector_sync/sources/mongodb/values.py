"""BSON to what vector_sync works with: JSON-safe field values, doc_ids and back, and raw
cursor batches decoded lazily (only the _id of documents whose hint is all we need)."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import bson
from bson import json_util
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.errors import BSONError
from bson.int64 import Int64
from bson.objectid import ObjectId

from vector_sync.core.documents import MISSING, json_tree

# decode as DatetimeMS instead of failing; UUIDs stored as subtype 4 come back as uuid.UUID
CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict, tz_aware=False, uuid_representation=UuidRepresentation.STANDARD,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)
_LENIENT = CODEC.with_options(unicode_decode_error_handler="replace")
_INTEGER = re.compile(r"-?[1-9][0-9]{0,18}|0")

class UnconvertibleValue(ValueError):
    """A BSON value with no JSON-safe form."""


# --- BSON to JSON-safe values ----------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """A decoded BSON value as a JSON-safe one, always the same for the same value.

    datetime: ISO 8601 with milliseconds and "Z"; ObjectId, Decimal128 (exact, so not a
    float), UUID: their string; Int64: int; non-finite floats: "NaN", "Infinity",
    "-Infinity"; binary: base64; a datetime outside years 1-9999: milliseconds since the
    epoch; other BSON types: their MongoDB Extended JSON (relaxed) form. Nesting is kept."""
    return json_tree(value, _bson_value)


def _bson_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_ms(value)
    if isinstance(value, ObjectId | Decimal128 | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):  # Binary is a bytes subclass
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, DatetimeMS):
        return int(value)
    return _extended_json(value)


def iso_ms(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def _extended_json(value: Any) -> Any:
    try:
        return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))
    except (TypeError, ValueError) as error:
        raise UnconvertibleValue(f"a {type(value).__name__} value: {error}") from None


# --- ids -------------------------------------------------------------------------------------


def doc_id_of(raw_id: Any) -> str:
    """`str(_id)`: the hex of an ObjectId, the string itself, the decimal integer, the
    canonical UUID. Other _id types print with str() too (see `MongoSource` for reading them
    back)."""
    return raw_id if isinstance(raw_id, str) else str(raw_id)


def has_canonical_id(raw_id: Any) -> bool:
    """Whether `id_candidates(doc_id_of(raw_id))` finds this _id again."""
    return type(raw_id) in (ObjectId, str, int, Int64, uuid.UUID)


def id_candidates(doc_id: str) -> list[Any]:
    """Every _id value of a supported type whose doc_id is `doc_id`."""
    found: list[Any] = [doc_id]
    if len(doc_id) == 24 and ObjectId.is_valid(doc_id) and str(ObjectId(doc_id)) == doc_id:
        found.append(ObjectId(doc_id))
    if _INTEGER.fullmatch(doc_id) and -(2**63) <= int(doc_id) < 2**63:
        found.append(int(doc_id))
    if len(doc_id) == 36:
        try:
            if str(uuid.UUID(doc_id)) == doc_id:
                found.append(uuid.UUID(doc_id))
        except ValueError:
            pass
    return found


# --- raw batches -----------------------------------------------------------------------------


def split_batch(batch: bytes) -> Iterator[bytes]:
    """The documents of a raw batch (concatenated BSON documents), undecoded."""
    position, end = 0, len(batch)
    while position < end:
        size = int.from_bytes(batch[position:position + 4], "little")
        yield batch[position:position + size]
        position += size


def _decoded_id(raw: bytes) -> Any:
    """The document's _id, even when something else in it cannot be decoded; MISSING if not."""
    for options in (CODEC, _LENIENT):
        try:
            return bson.decode(raw, options).get("_id", MISSING)
        except (BSONError, ValueError, OverflowError):
            continue
    return MISSING


_OBJECT_ID, _STRING = 0x07, 0x02


def leading_id(raw: bytes) -> Any:
    """The _id without decoding the rest: MongoDB stores it first, and it is most often an
    ObjectId or a string (5x faster than decoding the whole document)."""
    if raw[5:9] == b"_id\x00":
        if raw[4] == _OBJECT_ID:
            return ObjectId(raw[9:21])
        if raw[4] == _STRING:
            size = int.from_bytes(raw[9:13], "little")
            with suppress(UnicodeDecodeError):
                return raw[13:12 + size].decode("utf-8")
    return _decoded_id(raw)


def decode_batch(batch: bytes) -> list[dict[str, Any]]:
    """The documents of a raw batch, decoded in one call, or one by one when that fails: a
    document that cannot be decoded is left with only its _id, so it gets a hint that never
    matches and read() reports why."""
    try:
        return bson.decode_all(batch, CODEC)
    except (BSONError, ValueError, OverflowError):
        return [_decoded_or_bare(raw) for raw in split_batch(batch)]


def _decoded_or_bare(raw: bytes) -> dict[str, Any]:
    try:
        return bson.decode(raw, CODEC)
    except (BSONError, ValueError, OverflowError):
        return {"_id": _decoded_id(raw)}
