"""Reading a MongoDB collection: `MongoSource` lists, reads and writes back over the wire.

doc_id is `str(_id)`. Only the top-level fields the collections use are fetched (the
projection), so nothing else about a document can ever make it look changed. Version hint:

- with `updated_field`: the value of that field (`u1:<value>`). `scan()` fetches only `_id`
  and that field, in batches, so a run that finds nothing to do costs one pass over the ids,
  which is also what finds deletions. A document without the field gets a hint that never
  matches (`u-missing:<run>`), so it is read, hashed and compared on every run.
- without: a hash of the projected document's BSON bytes (`h1:<blake2b>`). `scan()` streams
  the projected documents and hashes them; `read()` fetches the few that differ again, by id.

With change streams (a replica set), a sync from the last sync's token reads only the
documents the stream names and skips the listing (the `Checkpointed` capability,
stream.py), except at least every `full_listing_every_s`.

A document that cannot be decoded or is too large is a ReadFailure, never the end of the
run. Server, network and authentication problems are SourceUnavailable, with the URI's
credentials masked. With `write_back`, each (document, collection) sync status is recorded
under `syncMetadata.<collection>` in the source document (the WritesBack capability); it is
outside the projection, so it never makes a document look changed.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import bson
from bson.errors import BSONError
from pymongo import MongoClient, UpdateMany
from pymongo.collection import Collection
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    OperationFailure,
    PyMongoError,
)

from vector_sync.core import faults
from vector_sync.core.batches import batched
from vector_sync.core.documents import MISSING, Document, ReadFailure, SourceEntry, get_path
from vector_sync.core.hashing import stable_json
from vector_sync.core.secrets import mask_url, scrub, url_secrets
from vector_sync.core.settings import ConfigError
from vector_sync.core.source import SourceUnavailable, SyncOutcome
from vector_sync.sources.mongodb.settings import WRITE_BACK_FIELD, MongoSettings, filter_from
from vector_sync.sources.mongodb.stream import history_since
from vector_sync.sources.mongodb.values import (
    CODEC,
    UnconvertibleValue,
    decode_batch,
    doc_id_of,
    has_canonical_id,
    id_candidates,
    iso_ms,
    json_safe,
    leading_id,
    split_batch,
)

log = logging.getLogger(__name__)

# Bump CONVERSION whenever json_safe() changes: every hint changes with it, so every document
# is read again and converted the new way (a hint alone would keep the old conversion).
CONVERSION = "1"
UPDATED_PREFIX = f"u{CONVERSION}:"
HASH_PREFIX = f"h{CONVERSION}:"
MISSING_UPDATED_PREFIX = "u-missing:"
ID_SCAN_BATCH_FACTOR = 10  # the updated_field scan fetches batch_size * 10 ids per batch
_AUTH_FAILED = {18}  # AuthenticationFailed
_NOT_AUTHORIZED = {13}  # Unauthorized


def _short(error: BaseException) -> str:
    """pymongo's message without the topology dump that follows it."""
    text = str(error).split(", Timeout:", 1)[0].split(", full error:", 1)[0]
    return text if len(text) <= 300 else text[:300] + "..."


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

    def __init__(self, name: str, config: MongoSettings,
                 fields: Sequence[str] | None = None) -> None:
        self.name = name
        self.config = config
        _check_write_back(name, config, fields)
        self.masked_uri = mask_url(config.uri.get_secret_value())
        self._secrets = url_secrets(config.uri.get_secret_value())
        self.writes_back = config.write_back
        self._filter = filter_from(name, config.filter)
        self._projection = projection_for(fields, config.updated_field, config.write_back)
        self._run = uuid.uuid4().hex[:12]  # makes hints of documents without updated_field unique
        # ids that str() but cannot be rebuilt from their doc_id (e.g. a float _id), from scan()
        self._odd_ids: dict[str, Any] = {}
        self._client: MongoClient[dict[str, Any]] | None = None
        # the Checkpointed capability: the change stream since the last sync (stream.py)
        self.checkpoint: str | None = None
        self.complete = False
        self.full_listing_every_s = config.full_listing_every_s
        self.detection: dict[str, Any] = {"detection": "scan",
                                          "detection_reason": "no change stream consulted"}

    def changed_since(self, checkpoint: str | None) -> set[str]:
        """The documents the change stream names since `checkpoint`; `complete` says
        whether that is every change (else the listing and the hints decide)."""
        try:
            found = history_since(self._collection(), self.config, checkpoint, self._doc_id)
        except PyMongoError as error:
            raise self.unavailable(error) from None
        self.checkpoint, self.complete = found.checkpoint, found.complete
        self.detection = {"detection": "changestream" if found.complete else "scan",
                          "detection_reason": found.reason}
        log.info("mongodb source %s: %s", self.name, found.reason)
        return found.changed

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
            for document in decode_batch(batch):
                raw_id = document.get("_id", MISSING)
                if raw_id is not MISSING:
                    yield SourceEntry(self._doc_id(raw_id), self._updated_hint(document))
                else:
                    self._warn_undecodable_id()

    def _scan_hashed(self) -> Iterator[SourceEntry]:
        for batch in self._raw_batches(self._filter, self._projection):
            for raw in split_batch(batch):
                raw_id = leading_id(raw)
                if raw_id is not MISSING:
                    yield SourceEntry(self._doc_id(raw_id), self._hash_hint(raw))
                else:
                    self._warn_undecodable_id()

    def _warn_undecodable_id(self) -> None:
        log.warning("source %s: a document whose _id cannot be decoded was left out",
                    self.name)

    def _doc_id(self, raw_id: Any) -> str:
        doc_id = doc_id_of(raw_id)
        if not has_canonical_id(raw_id):
            self._odd_ids[doc_id] = raw_id
        return doc_id

    @staticmethod
    def _hash_hint(raw: bytes) -> str:
        return HASH_PREFIX + hashlib.blake2b(raw, digest_size=16).hexdigest()

    def _updated_hint(self, document: Mapping[str, Any]) -> str:
        assert self.config.updated_field is not None
        value = get_path(document, self.config.updated_field)
        if isinstance(value, datetime):  # the usual case, 2x faster than the general one
            return f'{UPDATED_PREFIX}"{iso_ms(value)}"'
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
        raw_id = leading_id(raw)  # a document too large is never decoded
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

    # --- write-back (the WritesBack capability) ---

    def write_back(self, outcomes: Iterable[SyncOutcome], now: datetime | None = None) -> int:
        """Record each outcome under `syncMetadata.<collection>` in its source document:
        status, lastSyncedAt (when synced), contentHash, lastError; "removed" unsets it.

        Only syncMetadata is written, never `updated_field`, and syncMetadata is outside the
        projection, so this never makes a document look changed. Does nothing unless
        `write_back` is on. Returns the number of documents modified. Raises
        SourceUnavailable when MongoDB cannot be reached; a document that refuses the update
        (e.g. its syncMetadata is not a sub-document) is logged and skipped."""
        if not self.writes_back:
            return 0
        moment = now or datetime.now(UTC)
        modified = 0
        collection = self._collection()
        for batch in batched(outcomes, self.config.batch_size):
            modified += self._bulk_update(collection, [_status_update(o, moment) for o in batch])
            faults.reached("writeback.batch")
        return modified

    def _bulk_update(self, collection: Collection[dict[str, Any]],
                     requests: list[UpdateMany]) -> int:
        try:
            return collection.bulk_write(requests, ordered=False).modified_count
        except BulkWriteError as error:
            details = error.details
            for failure in details.get("writeErrors", [])[:5]:
                log.warning("source %s: sync status not written: %s", self.name,
                            failure.get("errmsg"))
            return int(details.get("nModified", 0))
        except PyMongoError as error:
            raise self.unavailable(error) from None

    # --- the connection ---

    def _raw_documents(self, query: Mapping[str, Any],
                       projection: Mapping[str, Any] | None) -> Iterator[bytes]:
        for batch in self._raw_batches(query, projection):
            yield from split_batch(batch)

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

    def probe(self) -> None:
        """Raises SourceUnavailable unless the collection can be read now (one _id)."""
        try:
            self._collection().find_one({}, {"_id": 1})
        except PyMongoError as error:
            raise self.unavailable(error) from None
        finally:
            self.close()

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
        return SourceUnavailable(scrub(text, self._secrets))


def _check_write_back(name: str, config: MongoSettings, fields: Sequence[str] | None) -> None:
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


# --- write-back ------------------------------------------------------------------------------


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

