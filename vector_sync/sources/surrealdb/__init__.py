"""The `surrealdb` source kind: the records of one table (optionally filtered), embedded or remote.

Connection through the official `surrealdb` SDK: `surrealkv://` and `mem://` run the real
engine in this process; `ws://`, `wss://`, `http://`, `https://` reach a server.

How changes are found (the `Checkpointed` capability, as Git's commits): when the table has a
CHANGEFEED, the checkpoint is the versionstamp of the last change applied and
`SHOW CHANGES FOR TABLE ... SINCE` names the records written and deleted since: a sync reads
only those and does not list the table, except at least every `full_listing_every_s` (a
safety net; that listing is of record ids only, deletions being the ids no longer listed).
Hints: the `updated_field` value when one is configured; else, in a table with a feed, one
constant (the feed decides; when it cannot, because no checkpoint is known yet or its
retention passed, every record is read and the content hashes decide); else, without a
feed, a hash of the record. The run metadata
says which path was taken. SurrealDB values become JSON values in values.py. The table is
read a page of `batch_size` records at a time (paging.py), and reads by id as many ids a
query: the SDK holds a query's whole answer.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, SecretStr, field_validator
from surrealdb import Surreal

from vector_sync.core.batches import batched
from vector_sync.core.documents import MISSING, Document, ReadFailure, SourceEntry, get_path
from vector_sync.core.hashing import stable_json
from vector_sync.core.secrets import mask_url, scrub
from vector_sync.core.source import (
    ChangeCheck,
    Source,
    SourceConfig,
    SourceUnavailable,
    SyncOutcome,
)
from vector_sync.sources.surrealdb.ids import record_literal, record_string
from vector_sync.sources.surrealdb.paging import pages
from vector_sync.sources.surrealdb.values import CONVERSION, json_safe, record_hash

log = logging.getLogger(__name__)

WRITE_BACK_FIELD = "syncMetadata"
# what the SDK's own engine opens (its 2.x wheel has no RocksDB)
EMBEDDED = ("surrealkv", "surrealkv+versioned", "file")
SCHEMES = (*EMBEDDED, "mem", "memory", "ws", "wss", "http", "https")
FEED_HINT = "feed"  # every record's hint while the change feed decides what is read
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FEED = re.compile(r"\bCHANGEFEED\s+(\S+)")


class SurrealConfig(SourceConfig):
    """The records of one SurrealDB table, optionally filtered."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["surrealdb"]
    url: str = Field(description="surrealkv://DIR or mem:// (the engine runs in-process), or "
                     "ws://, wss://, http://, https:// for a server")
    namespace: str = Field(min_length=1, description="the namespace")
    database: str = Field(min_length=1, description="the database")
    table: str = Field(description="the table (an identifier)")
    # `where` in the config; the attribute name would hide SourceConfig.where()
    condition: str | None = Field(None, alias="where", min_length=1, description="a SurrealQL "
                                  "condition: only matching records, e.g. \"published = true\"")
    updated_field: str | None = Field(None, description="a (dotted) field changed on every "
                                      "write: the per-record hint when the change feed cannot "
                                      "decide")
    username: str | None = Field(None, description="sign in as this user (a server)")
    password: SecretStr | None = Field(None, description="its password, from the environment")
    write_back: bool = Field(False, description=f"write each sync status into {WRITE_BACK_FIELD}")
    batch_size: int = Field(1000, gt=0, description="records per read and write-back query")
    full_listing_every_s: float = Field(
        3600.0, ge=0, description="with a change feed, a sync reads only what the feed names "
        "and lists every record id at least this often as a safety net (0: every sync)")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if url.split("://", 1)[0].lower() not in SCHEMES or "://" not in url:
            raise ValueError(f"url must start with one of {', '.join(s + '://' for s in SCHEMES)}")
        return url

    @field_validator("table")
    @classmethod
    def _identifier(cls, table: str) -> str:
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"table {table!r} must be an identifier (letters, digits, _)")
        return table

    @field_validator("updated_field")
    @classmethod
    def _field_path(cls, path: str | None) -> str | None:
        if path is not None and not all(_IDENTIFIER.fullmatch(p) for p in path.split(".")):
            raise ValueError(f"updated_field {path!r} must be a dotted field path")
        if path is not None and path.split(".", 1)[0] in (WRITE_BACK_FIELD, "id"):
            raise ValueError(f"updated_field cannot be {path!r}")
        return path

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        return SurrealSource(name, self)

    def look(self, name: str, state: dict[str, Any] | None) -> ChangeCheck:
        """With a change feed: any change after the versionstamp kept in `state`. Without
        one: the default fingerprint of scan() (per-record hints)."""
        source = SurrealSource(name, self)
        since = (state or {}).get("versionstamp")
        with source.connected() as db:
            has_feed = source.feed_retention(db) is not None
            if has_feed and since is None:  # only where the feed ends: no change is kept
                return ChangeCheck(True, f"{self.where()}: first look at the change feed",
                                   {"versionstamp": source.latest_version(db)})
            changes = source.changes(db, since + 1) if has_feed and since is not None else []
        if not has_feed:
            return super().look(name, state)
        latest = changes[-1]["version"] if changes else since
        summary = f"{len(changes)} change(s) in the change feed since versionstamp {since}" \
            if changes else "no change in the change feed"
        return ChangeCheck(bool(changes), f"{self.where()}: {summary}", {"versionstamp": latest})

    def probe(self, name: str) -> None:
        """A server: connected, and the table defined (the feed is not read). An embedded
        store: its folder is readable; opening it would load an index growing with the data,
        beside a running sync, and create an empty store at a mistyped path."""
        source = SurrealSource(name, self)
        scheme, _, rest = self.url.partition("://")
        if scheme.lower() in EMBEDDED:
            return source.check_folder(Path(rest))
        with source.connected() as db:
            source.feed_retention(db)

    def where(self) -> str:
        return f"records of {self.namespace}/{self.database}.{self.table} at {mask_url(self.url)}"

    def resolved(self, name: str, absolute: Callable[[Path], Path], state_dir: Path) -> Self:
        scheme, _, rest = self.url.partition("://")
        if scheme.lower() in EMBEDDED and rest and not rest.startswith("/"):
            return self.model_copy(update={"url": f"{scheme}://{absolute(Path(rest))}"})
        return self


class SurrealSource:
    """Records of `settings.table` matching `settings.where`; doc_id is the record id in
    SurrealDB's own notation (`article:42`, `article:⟨my post⟩`, `article:[2026, 'x']`)."""

    scoped_reads = True  # read() applies the filter

    def __init__(self, name: str, settings: SurrealConfig) -> None:
        self.name = name
        self.settings = settings
        self.writes_back = settings.write_back
        self.checkpoint: str | None = None
        self.complete = False  # the feed named every change since the checkpoint
        self.full_listing_every_s = settings.full_listing_every_s
        self.detection: dict[str, Any] = {"detection": "scan",
                                          "detection_reason": "no change feed consulted"}
        self._has_feed: bool | None = None  # known once changed_since() or scan() ran
        self._secrets = [s for s in [settings.password.get_secret_value()
                                     if settings.password else ""] if len(s) >= 3]

    # --- connection ---------------------------------------------------------------------

    def unavailable(self, problem: str) -> SourceUnavailable:
        return SourceUnavailable(scrub(f"surrealdb source {self.name!r} "
                                       f"({self.settings.where()}): {problem}", self._secrets))

    @contextmanager
    def connected(self) -> Iterator[Any]:
        settings = self.settings
        try:
            db = Surreal(settings.url)
            if settings.username:
                db.signin({"username": settings.username, "password": (
                    settings.password.get_secret_value() if settings.password else "")})
            db.use(settings.namespace, settings.database)
        except Exception as error:  # noqa: BLE001 - the SDK raises many kinds
            raise self.unavailable(f"cannot connect: {type(error).__name__}: {error}") from None
        try:
            yield db
        finally:
            with suppress(Exception):
                db.close()

    def check_folder(self, folder: Path) -> None:
        """SourceUnavailable unless `folder` is a directory this process can list."""
        if not folder.exists():
            raise self.unavailable(f"the store's folder {folder} does not exist")
        if not folder.is_dir():
            raise self.unavailable(f"the store's path {folder} is not a folder")
        try:
            with os.scandir(folder) as entries:
                next(entries, None)
        except OSError as error:
            raise self.unavailable(f"the store's folder {folder} cannot be read: "
                                   f"{error.strerror or error}") from None

    def query(self, db: Any, sql: str, variables: dict[str, Any] | None = None) -> Any:
        try:
            return db.query(sql, {"tb": self.settings.table, **(variables or {})})
        except Exception as error:  # noqa: BLE001
            raise self.unavailable(f"query failed: {type(error).__name__}: {error}") from None

    def _where(self) -> str:
        return f" WHERE ({self.settings.condition})" if self.settings.condition else ""

    # --- the change feed ----------------------------------------------------------------

    def feed_retention(self, db: Any) -> str | None:
        """The table's CHANGEFEED retention (`1d`), or None without one. A table the
        database does not define is an error, not an empty source."""
        tables = (self.query(db, "INFO FOR DB") or {}).get("tables", {})
        if self.settings.table not in tables:
            raise self.unavailable(f"table {self.settings.table} is not defined in "
                                   f"{self.settings.namespace}/{self.settings.database}")
        found = _FEED.search(str(tables[self.settings.table]))
        return found.group(1) if found else None

    def latest_version(self, db: Any) -> int | None:
        """The feed's newest version, read page by page without keeping the pages (the
        first look of a sensor: its memory must not grow with the feed)."""
        latest, since = None, 0
        while True:
            page = self.query(db, f"SHOW CHANGES FOR TABLE {self.settings.table} SINCE "
                              f"{since} LIMIT {self.settings.batch_size}") or []
            if page:
                latest = int(page[-1]["versionstamp"]) >> 16
                since = latest + 1
            if len(page) < self.settings.batch_size:
                return latest

    def changes(self, db: Any, since: int) -> list[dict[str, Any]]:
        """The feed's entries from version `since` on (inclusive), each as {"version",
        "updated": doc ids, "deleted": doc ids}. SHOW CHANGES reports versionstamps whose
        low 16 bits order the changes within one commit; SINCE takes the part above."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.query(db, f"SHOW CHANGES FOR TABLE {self.settings.table} SINCE "
                              f"{since} LIMIT {self.settings.batch_size}") or []
            for entry in page:
                updated, deleted = [], []
                for change in entry.get("changes", []):
                    if "update" in change:
                        updated.append(record_string(change["update"]["id"]))
                    elif "delete" in change:
                        deleted.append(record_string(change["delete"]["id"]))
                found.append({"version": int(entry["versionstamp"]) >> 16, "updated": updated,
                              "deleted": deleted})
            if len(page) < self.settings.batch_size:
                return found
            since = found[-1]["version"] + 1

    def changed_since(self, checkpoint: str | None) -> set[str]:
        self.complete = False
        with self.connected() as db:
            retention = self.feed_retention(db)
            self._has_feed = retention is not None
            if retention is None:
                return self._scan_path("the table has no CHANGEFEED", set())
            start = int(checkpoint) if checkpoint and checkpoint.isdigit() else 0
            entries = self.changes(db, start)
            self.checkpoint = str(entries[-1]["version"]) if entries else None
            if not start or not entries or entries[0]["version"] != start:
                # every hint is FEED_HINT while the table has a feed: without one to follow,
                # every record is read and its content hashes decide (without updated_field)
                everything = set() if self.settings.updated_field else {
                    record_string(r["id"]) for rows in self.pages(db, "id") for r in rows}
                return self._scan_path(
                    f"the change feed no longer reaches back to versionstamp {start} (its "
                    f"retention of {retention} has passed)" if start else "no versionstamp "
                    "applied yet (first sync, a new collection, or collections last synced at "
                    "different versionstamps)", everything)
        changed = {doc_id for entry in entries[1:] for doc_id in entry["updated"]}
        deleted = {doc_id for entry in entries[1:] for doc_id in entry["deleted"]}
        self.complete = True
        reason = (f"change feed since versionstamp {start}: {len(entries) - 1} change(s), "
                  f"{len(changed)} record(s) written, {len(deleted)} deleted")
        self.detection = {"detection": "changefeed", "detection_reason": reason,
                          "versionstamp": self.checkpoint}
        log.info("surrealdb source %s: %s", self.name, reason)
        return changed | deleted

    def _scan_path(self, reason: str, read_all: set[str]) -> set[str]:
        how = f"per-record `{self.settings.updated_field}`" if self.settings.updated_field \
            else "every record read" if read_all else "per-record hash"
        self.detection = {"detection": "scan", "detection_reason": f"{how}: {reason}",
                          "versionstamp": self.checkpoint}
        log.info("surrealdb source %s: scan, %s: %s", self.name, how, reason)
        return read_all

    # --- scan and read ------------------------------------------------------------------

    def pages(self, db: Any, fields: str) -> Iterator[list[dict[str, Any]]]:
        """The table's records matching the filter, `batch_size` at a time (paging.py)."""
        return pages(lambda sql, variables: self.query(db, sql, variables), fields,
                     self._where(), self.settings.batch_size)

    def scan(self) -> Iterator[SourceEntry]:
        """Every record's id and hint (see hint()), listed page by page."""
        updated = self.settings.updated_field
        with self.connected() as db:
            if self._has_feed is None:  # scan() without changed_since(): a sensor's look
                self._has_feed = self.feed_retention(db) is not None
            if updated:
                for rows in self.pages(db, f"id, {updated} AS __hint"):
                    # parsed from their text: the SDK cannot send every id kind back
                    missing = [record_literal(record_string(r["id"])) for r in rows
                               if r.get("__hint") is None]
                    full = {record_string(r["id"]): r for r in self.query(
                        db, "SELECT * FROM array::map($ids, |$s| type::record($s))",
                        {"ids": missing})} if missing else {}
                    for row in rows:
                        doc_id = record_string(row["id"])
                        if row.get("__hint") is not None:
                            yield SourceEntry(doc_id, self.hint(row, row["__hint"]))
                        elif doc_id in full:  # deleted since the page was read: not listed
                            yield SourceEntry(doc_id, self.hint(full[doc_id]))
            else:  # with a feed only the ids are needed: the hint is the same for all
                for rows in self.pages(db, "id" if self._has_feed else "*"):
                    for row in rows:
                        yield SourceEntry(record_string(row["id"]), self.hint(row))

    def _fields(self, record: dict[str, Any]) -> dict[str, Any]:
        fields = {k: v for k, v in record.items() if k != WRITE_BACK_FIELD}
        fields["id"] = record_string(record["id"])
        return json_safe(fields)

    def hint(self, record: dict[str, Any], updated: Any = None) -> str:
        """A record's version hint: its `updated_field` value; else FEED_HINT in a table with
        a change feed (the feed names what changed); else a hash of the record."""
        if self.settings.updated_field and updated not in (None, MISSING):
            return f"u{CONVERSION}:" + stable_json(json_safe(updated))
        if self._has_feed and not self.settings.updated_field:
            return FEED_HINT
        try:
            return record_hash(self._fields(record))
        except ValueError as error:
            return f"unconvertible:{error}"  # read() reports it as the record's failure

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        """The records of `doc_ids` (those the filter keeps), `batch_size` ids a query.
        Each id is parsed back into its record by the engine, from record_literal()
        (test_every_record_id_kind_round_trips)."""
        with self.connected() as db:
            if self._has_feed is None:  # read without a scan: a targeted sync
                self._has_feed = self.feed_retention(db) is not None
            for batch in batched(doc_ids, self.settings.batch_size):
                for record in self.query(db, "SELECT * FROM array::map($ids, |$s| "
                                         f"type::record($s)){self._where()}",
                                         {"ids": [record_literal(d) for d in batch]}):
                    yield self._document(record)

    def _document(self, record: dict[str, Any]) -> Document | ReadFailure:
        """A record as a document, with the hint scan() gives it (a record written since
        its listing gives the hint of what was read)."""
        doc_id = record_string(record["id"])
        version = self.hint(record, get_path(record, self.settings.updated_field)
                            if self.settings.updated_field else None)
        try:
            fields = self._fields(record)
        except ValueError as error:
            return ReadFailure(doc_id, version, "unconvertible", str(error))
        return Document(doc_id, version, fields)

    # --- write-back ---------------------------------------------------------------------

    def write_back(self, outcomes: Iterable[SyncOutcome]) -> int:
        """Record each outcome under `syncMetadata.<collection>` of its record: status,
        lastSyncedAt (when synced), contentHash, lastError; "removed" clears it. Only that
        field is written (never `updated_field`), and it is left out of every hash."""
        if not self.writes_back:
            return 0
        moment = datetime.now(UTC)
        modified = 0
        with self.connected() as db:
            for batch in batched(outcomes, self.settings.batch_size):
                writes = [{"rid": record_literal(o.doc_id),
                           "data": {WRITE_BACK_FIELD: {o.collection: _status(o, moment)}}}
                          for o in batch]
                self.query(db, "FOR $w IN $writes { UPDATE type::record($w.rid) MERGE "
                           "$w.data RETURN NONE; };", {"writes": writes})
                modified += len(writes)
        return modified


def _status(outcome: SyncOutcome, moment: datetime) -> dict[str, Any] | None:
    if outcome.status == "removed":
        return None  # MERGE with NONE removes the collection's entry
    status: dict[str, Any] = {"status": outcome.status, "contentHash": outcome.content_hash,
                              "lastError": outcome.error}
    if outcome.status == "synced":
        status["lastSyncedAt"] = moment
    return status
