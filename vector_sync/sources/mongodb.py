"""MongoDB source: the documents of one collection (optionally filtered), over the wire.

doc_id is `str(_id)`. Only the top-level fields the collections use are fetched (the
projection), so nothing else about a document can ever make it look changed. Version hint:

- with `updated_field`: the value of that field (`u1:<value>`). `scan()` fetches only `_id`
  and that field, in batches, so a run that finds nothing to do costs one pass over the ids,
  which is also what finds deletions. A document without the field gets a hint that never
  matches (`u-missing:<run>`), so it is read, hashed and compared on every run.
- without: a hash of the projected document's BSON bytes (`h1:<blake2b>`). `scan()` streams
  the projected documents and hashes them; `read()` fetches the few that differ again, by id.

A document that cannot be decoded or is too large is a ReadFailure, never the end of the
run. Server, network and authentication problems are
SourceUnavailable, with the URI's credentials masked. `write_back_status` records each
(document, collection) sync status under `syncMetadata.<collection>` in the source document;
it is outside the projection, so it never makes a document look changed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast
from urllib.parse import unquote

import bson
from bson import json_util
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.errors import BSONError
from bson.int64 import Int64
from bson.objectid import ObjectId
from pymongo import MongoClient, UpdateMany
from pymongo.collection import Collection
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    OperationFailure,
    PyMongoError,
)

from vector_sync.config import ConfigError, MongoSourceConfig
from vector_sync.core.batches import batched
from vector_sync.core.documents import MISSING, Document, ReadFailure, SourceEntry, get_path
from vector_sync.core.hashing import stable_json
from vector_sync.core.ledger import LedgerRow
from vector_sync.sources.base import SourceUnavailable

log = logging.getLogger(__name__)

WRITE_BACK_FIELD = "syncMetadata"
# Bump CONVERSION whenever json_safe() changes: every hint changes with it, so every document
# is read again and converted the new way (a hint alone would keep the old conversion).
CONVERSION = "1"
UPDATED_PREFIX = f"u{CONVERSION}:"
HASH_PREFIX = f"h{CONVERSION}:"
MISSING_UPDATED_PREFIX = "u-missing:"
ID_SCAN_BATCH_FACTOR = 10  # the updated_field scan fetches batch_size * 10 ids per batch

# naive UTC datetimes (faster, and formatted with "Z" below); datetimes outside Python's range
# decode as DatetimeMS instead of failing; UUIDs stored as subtype 4 come back as uuid.UUID
CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict, tz_aware=False, uuid_representation=UuidRepresentation.STANDARD,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)
_LENIENT = CODEC.with_options(unicode_decode_error_handler="replace")
_AUTH_FAILED = {18}  # AuthenticationFailed
_NOT_AUTHORIZED = {13}  # Unauthorized
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
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, int):
        return int(value)  # Int64 and friends become plain ints
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[str(value)]
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, ObjectId | Decimal128 | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):  # Binary is a bytes subclass
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, DatetimeMS):
        return int(value)
    return _extended_json(value)


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _iso(moment: datetime) -> str:
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


def _has_canonical_id(raw_id: Any) -> bool:
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


# --- masking and errors ----------------------------------------------------------------------

_USERINFO = re.compile(r"^(mongodb(?:\+srv)?://)([^@/]*)@")
_SECRET_PARAM = re.compile(r"((?:password|secret|token|key)[^=&]*=)[^&]*", re.IGNORECASE)


def mask_uri(uri: str) -> str:
    """The URI with its password (and secret-looking options) replaced by ***."""

    def userinfo(match: re.Match[str]) -> str:
        user = match.group(2).split(":", 1)[0]
        return f"{match.group(1)}{user}:***@" if user else f"{match.group(1)}***@"

    masked = _USERINFO.sub(userinfo, uri, count=1)
    return _SECRET_PARAM.sub(r"\1***", masked)


def _secrets_in(uri: str) -> list[str]:
    """The password (raw and percent-encoded forms) to scrub from any message."""
    match = _USERINFO.match(uri)
    if not match or ":" not in match.group(2):
        return []
    password = match.group(2).split(":", 1)[1]
    return [p for p in {password, unquote(password)} if len(p) >= 3]


def _short(error: BaseException) -> str:
    """pymongo's message without the topology dump that follows it."""
    text = str(error).split(", Timeout:", 1)[0].split(", full error:", 1)[0]
    return text if len(text) <= 300 else text[:300] + "..."


# --- raw batches -----------------------------------------------------------------------------


def _split(batch: bytes) -> Iterator[bytes]:
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


def _leading_id(raw: bytes) -> Any:
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


def _decode_batch(batch: bytes) -> list[dict[str, Any]]:
    """The documents of a raw batch, decoded in one call, or one by one when that fails: a
    document that cannot be decoded is left with only its _id, so it gets a hint that never
    matches and read() reports why."""
    try:
        return bson.decode_all(batch, CODEC)
    except (BSONError, ValueError, OverflowError):
        return [_decoded_or_bare(raw) for raw in _split(batch)]


def _decoded_or_bare(raw: bytes) -> dict[str, Any]:
    try:
        return bson.decode(raw, CODEC)
    except (BSONError, ValueError, OverflowError):
        return {"_id": _decoded_id(raw)}


def projection_for(fields: Sequence[str] | None, updated_field: str | None,
                   write_back: bool) -> dict[str, int] | None:
    """The top-level fields the collections use, plus `updated_field`. None (fetch every
    field) when the fields are not known; the write-back field is left out even then."""
    if fields is None:
        return {WRITE_BACK_FIELD: 0} if write_back else None
    tops = [f.split(".", 1)[0] for f in fields]
    if updated_field:
        tops.append(updated_field.split(".", 1)[0])
    return {"_id": 1, **{top: 1 for top in dict.fromkeys(tops) if top != "_id"}}


# --- the source ------------------------------------------------------------------------------


class MongoSource:
    """Documents of `config.collection` matching `config.filter`; `fields` are the (dotted)
    fields the collections embed or copy to the payload."""

    scoped_reads = True  # read() applies the filter

    def __init__(self, name: str, config: MongoSourceConfig,
                 fields: Sequence[str] | None = None) -> None:
        self.name = name
        self.config = config
        _check_write_back(name, config, fields)
        self.masked_uri = mask_uri(config.uri.get_secret_value())
        self._secrets = _secrets_in(config.uri.get_secret_value())
        self._filter = filter_from(name, config.filter)
        self._projection = projection_for(fields, config.updated_field, config.write_back)
        self._run = uuid.uuid4().hex[:12]  # makes hints of documents without updated_field unique
        # ids that str() but cannot be rebuilt from their doc_id (e.g. a float _id), from scan()
        self._odd_ids: dict[str, Any] = {}
        self._client: MongoClient[dict[str, Any]] | None = None

    # --- scan ---

    def scan(self) -> Iterator[SourceEntry]:
        if self.config.updated_field:
            yield from self._scan_updated(self.config.updated_field)
        else:
            yield from self._scan_hashed()

    def _scan_updated(self, updated_field: str) -> Iterator[SourceEntry]:
        projection = {"_id": 1, updated_field: 1}
        # these documents are tiny: fewer, larger batches save round trips
        batch_size = self.config.batch_size * ID_SCAN_BATCH_FACTOR
        for batch in self._raw_batches(self._filter, projection, batch_size):
            for document in _decode_batch(batch):
                raw_id = document.get("_id", MISSING)
                if raw_id is not MISSING:
                    yield SourceEntry(self._doc_id(raw_id), self._updated_hint(document))
                else:
                    self._warn_undecodable_id()

    def _scan_hashed(self) -> Iterator[SourceEntry]:
        for batch in self._raw_batches(self._filter, self._projection):
            for raw in _split(batch):
                raw_id = _leading_id(raw)
                if raw_id is not MISSING:
                    yield SourceEntry(self._doc_id(raw_id), self._hash_hint(raw))
                else:
                    self._warn_undecodable_id()

    def _warn_undecodable_id(self) -> None:
        log.warning("source %s: a document whose _id cannot be decoded was left out",
                    self.name)

    def _doc_id(self, raw_id: Any) -> str:
        doc_id = doc_id_of(raw_id)
        if not _has_canonical_id(raw_id):
            self._odd_ids[doc_id] = raw_id
        return doc_id

    @staticmethod
    def _hash_hint(raw: bytes) -> str:
        return HASH_PREFIX + hashlib.blake2b(raw, digest_size=16).hexdigest()

    def _updated_hint(self, document: Mapping[str, Any]) -> str:
        assert self.config.updated_field is not None
        value = get_path(document, self.config.updated_field)
        if isinstance(value, datetime):  # the usual case, 2x faster than the general one
            return f'{UPDATED_PREFIX}"{_iso(value)}"'
        if value is MISSING or value is None:
            return f"{MISSING_UPDATED_PREFIX}{self._run}"
        try:
            return UPDATED_PREFIX + stable_json(json_safe(value))
        except UnconvertibleValue:
            return f"{MISSING_UPDATED_PREFIX}{self._run}"

    # --- read ---

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        for batch in batched(dict.fromkeys(doc_ids), self.config.batch_size):
            wanted = set(batch)
            candidates = [c for doc_id in batch for c in self._candidates(doc_id)]
            query = self._filtered({"_id": {"$in": candidates}})
            for raw in self._raw_documents(query, self._projection):
                result = self._result(raw)
                if result is None or result.doc_id not in wanted:
                    self._warn_if_ambiguous(result, batch)
                    continue  # e.g. _id 42.0 found when looking for 42
                wanted.discard(result.doc_id)
                yield result

    def _filtered(self, query: dict[str, Any]) -> dict[str, Any]:
        return {"$and": [self._filter, query]} if self._filter else query

    def _warn_if_ambiguous(self, result: Document | ReadFailure | None,
                           batch: list[str]) -> None:
        if result is not None and result.doc_id in batch:
            log.warning("source %s: several documents have an _id that prints as %r (e.g. an "
                        "ObjectId and a string): only the first is synced", self.name,
                        result.doc_id)

    def _candidates(self, doc_id: str) -> list[Any]:
        odd = self._odd_ids.get(doc_id, MISSING)
        return id_candidates(doc_id) if odd is MISSING else [odd]

    def _result(self, raw: bytes) -> Document | ReadFailure | None:
        raw_id = _leading_id(raw)  # a document too large is never decoded
        if raw_id is MISSING:
            return None
        doc_id = doc_id_of(raw_id)
        limit = self.config.max_document_bytes
        if len(raw) > limit:
            return ReadFailure(doc_id, self._hash_hint(raw), "too_large",
                               f"the document's synced fields are {len(raw)} bytes as BSON, "
                               f"over the limit of {limit} bytes (max_document_bytes)")
        try:
            document = bson.decode(raw, CODEC)
        except (BSONError, ValueError, OverflowError) as error:
            return ReadFailure(doc_id, self._hash_hint(raw), "bad_document",
                               f"the document cannot be decoded: {error}")
        version = self._updated_hint(document) if self.config.updated_field \
            else self._hash_hint(raw)
        try:
            return Document(doc_id, version, json_safe(document))
        except UnconvertibleValue as error:
            return ReadFailure(doc_id, version, "bad_document", f"cannot convert {error}")

    # --- the connection ---

    def _raw_documents(self, query: Mapping[str, Any],
                       projection: Mapping[str, Any] | None) -> Iterator[bytes]:
        for batch in self._raw_batches(query, projection):
            yield from _split(batch)

    def _raw_batches(self, query: Mapping[str, Any], projection: Mapping[str, Any] | None,
                     batch_size: int | None = None) -> Iterator[bytes]:
        """The matching documents as raw BSON batches (`batch_size` documents), streamed."""
        try:
            cursor = self._collection().find_raw_batches(
                query, projection, batch_size=batch_size or self.config.batch_size)
            for batch in cursor:
                yield cast(bytes, batch)
        except PyMongoError as error:
            raise self.unavailable(error) from None

    def _collection(self) -> Collection[dict[str, Any]]:
        if self._client is None:
            self._client = self.connect()
            weakref.finalize(self, self._client.close)  # its monitor threads end with it
        return self._client[self.config.database][self.config.collection]

    def connect(self) -> MongoClient[dict[str, Any]]:
        timeout = self.config.server_selection_timeout_ms
        try:
            return MongoClient(
                self.config.uri.get_secret_value(), serverSelectionTimeoutMS=timeout,
                connectTimeoutMS=timeout, socketTimeoutMS=max(10 * timeout, 60_000),
                appname="vector_sync",
                uuidRepresentation="standard",  # so uuid.UUID ids can be queried
            )
        except (PyMongoError, ValueError) as error:  # a malformed URI, an unresolvable SRV
            raise self.unavailable(error) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def unavailable(self, error: Exception) -> SourceUnavailable:
        where = f"MongoDB {self.masked_uri} ({self.config.database}.{self.config.collection})"
        code = error.code if isinstance(error, OperationFailure) else None
        if code in _AUTH_FAILED:
            text = f"{where} refused the credentials: {_short(error)}"
        elif code in _NOT_AUTHORIZED:
            text = f"{where} does not allow this user to read it: {_short(error)}"
        elif isinstance(error, OperationFailure):
            text = f"{where}: the query failed: {_short(error)}"
        elif isinstance(error, ConfigurationError | ValueError):
            text = f"{where}: the uri cannot be used: {_short(error)}"
        else:
            text = f"{where} is unreachable: {_short(error)}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return SourceUnavailable(text)


def _check_write_back(name: str, config: MongoSourceConfig, fields: Sequence[str] | None) -> None:
    """With write-back on, syncMetadata must stay outside what is synced, or every status
    written would make the document look changed."""
    if not config.write_back:
        return
    used = [*(fields or ()), *([config.updated_field] if config.updated_field else [])]
    clashing = [f for f in used if f.split(".", 1)[0] == WRITE_BACK_FIELD]
    if clashing:
        raise ConfigError(
            f"sources.{name}.write_back writes {WRITE_BACK_FIELD}, so it cannot also be synced "
            f"(used as {', '.join(clashing)})")


def filter_from(name: str, query: Mapping[str, Any]) -> dict[str, Any]:
    """The configured filter, with Extended JSON such as {"$date": ...} or {"$oid": ...}
    turned into BSON values."""
    try:
        converted = json_util.loads(json.dumps(query))
    except (TypeError, ValueError, BSONError) as error:
        raise ConfigError(f"sources.{name}.filter: {error}") from None
    return dict(converted)


# --- write-back ------------------------------------------------------------------------------


class SyncOutcome(NamedTuple):
    """The result of syncing one document into one collection. `status`: synced, failed,
    pending, stale, or removed (the document has no points in that collection any more)."""

    doc_id: str
    collection: str
    status: str
    content_hash: str | None
    error: str | None


def outcomes_from_ledger(collection: str, doc_ids: Iterable[str],
                         rows: Mapping[str, LedgerRow]) -> Iterator[SyncOutcome]:
    """What the ledger says about `doc_ids` in `collection` after a sync: no row, or a synced
    row without chunks, means the document is not (or no longer) in that collection."""
    for doc_id in doc_ids:
        row = rows.get(doc_id)
        if row is None or (row.status == "synced" and row.chunk_count == 0):
            yield SyncOutcome(doc_id, collection, "removed", None, None)
        else:
            yield SyncOutcome(doc_id, collection, row.status, row.content_hash, row.last_error)


def write_back_status(name: str, config: MongoSourceConfig,
                      outcomes: Iterable[SyncOutcome | tuple[str, str, str, str | None,
                                                             str | None]],
                      now: datetime | None = None) -> int:
    """Record each outcome under `syncMetadata.<collection>` in its source document:
    status, lastSyncedAt (when synced), contentHash, lastError; "removed" unsets it.

    Only syncMetadata is written, never `updated_field`, and syncMetadata is outside the
    projection, so this never makes a document look changed. Does nothing unless
    `write_back` is on. Returns the number of documents modified. Raises SourceUnavailable
    when MongoDB cannot be reached; a document that refuses the update (e.g. its
    syncMetadata is not a sub-document) is logged and skipped."""
    if not config.write_back:
        return 0
    source = MongoSource(name, config)
    moment = now or datetime.now(UTC)
    modified = 0
    try:
        collection = source._collection()
        for batch in batched(outcomes, config.batch_size):
            requests = [_status_update(SyncOutcome(*outcome), moment) for outcome in batch]
            modified += _bulk_update(source, collection, requests)
    finally:
        source.close()
    return modified


def _status_update(outcome: SyncOutcome, moment: datetime) -> UpdateMany:
    key = f"{WRITE_BACK_FIELD}.{outcome.collection}"
    match = {"_id": {"$in": id_candidates(outcome.doc_id)}}
    if outcome.status == "removed":
        return UpdateMany(match, {"$unset": {key: ""}})
    values: dict[str, Any] = {f"{key}.status": outcome.status,
                              f"{key}.contentHash": outcome.content_hash,
                              f"{key}.lastError": outcome.error}
    if outcome.status == "synced":
        values[f"{key}.lastSyncedAt"] = moment
    return UpdateMany(match, {"$set": values})


def _bulk_update(source: MongoSource, collection: Collection[dict[str, Any]],
                 requests: list[UpdateMany]) -> int:
    try:
        return collection.bulk_write(requests, ordered=False).modified_count
    except BulkWriteError as error:
        details = error.details
        for failure in details.get("writeErrors", [])[:5]:
            log.warning("source %s: sync status not written: %s", source.name,
                        failure.get("errmsg"))
        return int(details.get("nModified", 0))
    except PyMongoError as error:
        raise source.unavailable(error) from None
