"""MongoSource over the real wire protocol: a SecantusDB server started in-process."""

from __future__ import annotations

import json
import math
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from pymongo import MongoClient
from pymongo.collection import Collection
from secantus import SecantusDBServer

from vector_sync.config import ConfigError, VectorSyncConfig, parse_config
from vector_sync.core.documents import Document, ReadFailure, nested_subset
from vector_sync.core.ledger import LedgerRow
from vector_sync.core.pipeline.write_back import outcomes_from_ledger
from vector_sync.core.secrets import mask_url
from vector_sync.core.source import SourceUnavailable, SyncOutcome
from vector_sync.sources.mongodb import MongoConfig, MongoSource
from vector_sync.sources.mongodb.source import MISSING_UPDATED_PREFIX
from vector_sync.sources.mongodb.values import id_candidates, json_safe
from vector_sync_tests.support.mongo_server import running_server

FIELDS = ["name", "tagline", "imdb.rating"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecantusDBServer]:
    with running_server(tmp_path_factory.mktemp("mongo")) as running:
        yield running


@pytest.fixture
def collection(server: SecantusDBServer) -> Iterator[Collection[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(server.uri, uuidRepresentation="standard")
    yield client["test"][f"c{uuid.uuid4().hex[:8]}"]
    client.close()


def source(server: SecantusDBServer, collection: Collection[dict[str, Any]],
           fields: list[str] | None = FIELDS, **settings: Any) -> MongoSource:
    config = MongoConfig(kind="mongodb", uri=server.uri, database="test",
                               collection=collection.name, collections=["c"], **settings)
    return MongoSource("m", config, fields)


def hints(src: MongoSource) -> dict[str, str]:
    return {entry.doc_id: entry.version for entry in src.scan()}


def read_all(src: MongoSource, ids: list[str] | None = None) -> dict[str, Document | ReadFailure]:
    ids = list(hints(src)) if ids is None else ids
    return {result.doc_id: result for result in src.read(ids)}


# --- BSON to JSON-safe values ----------------------------------------------------------------


def test_bson_values_become_json_safe_values_that_hash_the_same_every_time():
    oid = ObjectId("65a1b2c3d4e5f60718293a4b")
    value = {
        "when": datetime(2024, 5, 6, 7, 8, 9, 123000), "aware": datetime(2024, 1, 1, tzinfo=UTC),
        "oid": oid, "price": Decimal128("19.990"), "big": Int64(2**40), "uuid": uuid.UUID(int=1),
        "raw": b"\x00\x01", "legacy": Binary(b"0123456789abcdef", 3),
        "floats": [1.5, math.nan, math.inf, -math.inf],
        "nested": {"a": [{"b": None}, [1, [2]]]}, "ts": Timestamp(1700000000, 3),
        "regex": Regex("^a", "i"), "ends": [MinKey(), MaxKey()], "flag": True,
        "ancient": DatetimeMS(-62_135_596_800_001),  # just before year 1
    }
    safe = json_safe(value)
    assert safe == {
        "when": "2024-05-06T07:08:09.123Z", "aware": "2024-01-01T00:00:00.000Z",
        "oid": "65a1b2c3d4e5f60718293a4b", "price": "19.990", "big": 2**40,
        "uuid": "00000000-0000-0000-0000-000000000001", "raw": "AAE=",
        "legacy": "MDEyMzQ1Njc4OWFiY2RlZg==", "floats": [1.5, "NaN", "Infinity", "-Infinity"],
        "nested": {"a": [{"b": None}, [1, [2]]]},
        "ts": {"$timestamp": {"t": 1700000000, "i": 3}},
        "regex": {"$regularExpression": {"pattern": "^a", "options": "i"}},
        "ends": [{"$minKey": 1}, {"$maxKey": 1}],
        "flag": True, "ancient": -62_135_596_800_001,
    }
    assert type(safe["big"]) is int
    json.dumps(safe, allow_nan=False)  # strictly JSON: Qdrant accepts it as a payload
    assert json_safe(value) == safe


def test_documents_read_over_the_wire_are_converted_with_their_nesting(server, collection):
    collection.insert_one({
        "_id": "doc", "name": "Mongo Tool", "imdb": {"rating": Decimal128("7.4"), "votes": 12},
        "tagline": ["fast", ["nested", 3]], "released": datetime(2020, 2, 2),
        "website": "not projected",
    })
    document = read_all(source(server, collection))["doc"]
    assert isinstance(document, Document)
    assert document.fields == {"_id": "doc", "name": "Mongo Tool",
                               "tagline": ["fast", ["nested", 3]],
                               "imdb": {"rating": "7.4", "votes": 12}}
    assert nested_subset(document.fields, ["imdb.rating"]) == {"imdb": {"rating": "7.4"}}


# --- ids -------------------------------------------------------------------------------------


def test_doc_id_is_str_of_id_and_every_id_type_reads_back(server, collection):
    ids: list[Any] = [ObjectId("65a1b2c3d4e5f60718293a4b"), "plain-string", 42, Int64(2**40),
                      uuid.UUID("12345678-1234-5678-1234-567812345678"), 4.5, -7]
    collection.insert_many([{"_id": i, "name": f"n{n}"} for n, i in enumerate(ids)])
    src = source(server, collection)
    expected = ["65a1b2c3d4e5f60718293a4b", "plain-string", "42", str(2**40),
                "12345678-1234-5678-1234-567812345678", "4.5", "-7"]
    assert sorted(hints(src)) == sorted(expected)
    assert sorted(hints(source(server, collection))) == sorted(expected)  # stable
    assert sorted(read_all(src)) == sorted(expected)
    # a fresh source (no scan) finds every id type whose doc_id can be parsed back
    assert sorted(read_all(source(server, collection), expected)) == sorted(
        d for d in expected if d != "4.5")


def test_id_candidates_cover_objectid_int_and_uuid_spellings():
    assert id_candidates("65a1b2c3d4e5f60718293a4b") == [
        "65a1b2c3d4e5f60718293a4b", ObjectId("65a1b2c3d4e5f60718293a4b")]
    assert id_candidates("42") == ["42", 42]
    assert id_candidates("042") == ["042"] and id_candidates("4.5") == ["4.5"]
    assert id_candidates("12345678-1234-5678-1234-567812345678")[1] == uuid.UUID(
        "12345678-1234-5678-1234-567812345678")
    assert id_candidates("65A1B2C3D4E5F60718293A4B") == ["65A1B2C3D4E5F60718293A4B"]


# --- hints -----------------------------------------------------------------------------------


def test_hash_hint_changes_only_when_a_synced_field_changes(server, collection):
    collection.insert_many([{"_id": n, "name": f"tool {n}", "imdb": {"rating": 7, "votes": 1},
                            "website": "https://a.example"} for n in range(3)])
    src = source(server, collection)
    before = hints(src)
    collection.update_one({"_id": 0}, {"$set": {"website": "https://b.example",
                                                "syncMetadata.c": {"status": "synced"}}})
    assert hints(src) == before  # neither field is synced
    collection.update_one({"_id": 1}, {"$set": {"name": "renamed"}})
    collection.update_one({"_id": 2}, {"$set": {"imdb.votes": 2}})  # same top-level field
    after = hints(src)
    assert after["0"] == before["0"]
    assert after["1"] != before["1"] and after["2"] != before["2"]
    assert {d: r.version for d, r in read_all(src).items()} == after  # read agrees with scan


def test_updated_field_hint_is_the_field_and_a_missing_one_is_always_read(server, collection):
    stamp = datetime(2025, 3, 4, 5, 6, 7, 891000)
    collection.insert_many([{"_id": 1, "name": "a", "updatedAt": stamp},
                            {"_id": 2, "name": "b"}])
    src = source(server, collection, updated_field="updatedAt")
    first = hints(src)
    assert first["1"] == 'u1:"2025-03-04T05:06:07.891Z"'
    assert first["2"].startswith(MISSING_UPDATED_PREFIX)
    collection.update_one({"_id": 1}, {"$set": {"name": "edited without a new stamp"}})
    later = hints(source(server, collection, updated_field="updatedAt"))
    assert later["1"] == first["1"]  # the hint trusts updated_field; `sync --full` does not
    assert later["2"] != first["2"]  # never matches the ledger: read and hashed every run
    read = read_all(src)
    assert read["1"].version == first["1"] and read["2"].version == first["2"]
    assert set(read["1"].fields) == {"_id", "name", "updatedAt"}


def test_projection_fetches_only_the_top_level_fields_the_collections_use(server, collection):
    collection.insert_one({"_id": "x", "name": "n", "imdb": {"rating": 1}, "secret": "s",
                           "syncMetadata": {"c": {}}})
    document = read_all(source(server, collection))["x"]
    assert set(document.fields) == {"_id", "name", "imdb"}
    everything = read_all(source(server, collection, fields=None, write_back=True))["x"]
    assert set(everything.fields) == {"_id", "name", "imdb", "secret"}  # never syncMetadata


def test_filter_selects_documents_and_accepts_extended_json(server, collection):
    collection.insert_many([
        {"_id": 1, "name": "old", "status": "active", "createdAt": datetime(2020, 1, 1)},
        {"_id": 2, "name": "new", "status": "active", "createdAt": datetime(2025, 1, 1)},
        {"_id": 3, "name": "gone", "status": "archived", "createdAt": datetime(2025, 1, 1)},
    ])
    src = source(server, collection, filter={
        "status": "active", "createdAt": {"$gte": {"$date": "2024-01-01T00:00:00Z"}}})
    assert set(hints(src)) == {"2"}
    assert set(read_all(src, ["1", "2", "3"])) == {"2"}  # read applies the filter too


def test_small_batches_stream_every_document_once(server, collection):
    collection.insert_many([{"_id": n, "name": f"t{n}"} for n in range(53)])
    src = source(server, collection, batch_size=5)
    ids = list(hints(src))
    assert sorted(ids, key=int) == [str(n) for n in range(53)]
    assert sorted(read_all(src, ids), key=int) == sorted(ids, key=int)


# --- per-document failures -------------------------------------------------------------------


def test_an_oversized_document_fails_alone_as_too_large(server, collection):
    collection.insert_many([{"_id": 1, "name": "x" * 5000}, {"_id": 2, "name": "small"},
                            {"_id": 3, "name": ["item"] * 2000, "tagline": None}])
    results = read_all(source(server, collection, max_document_bytes=4000))
    assert isinstance(results["2"], Document)
    for doc_id in ("1", "3"):
        failure = results[doc_id]
        assert isinstance(failure, ReadFailure) and failure.error_code == "too_large"
        assert "max_document_bytes" in failure.message and "4000" in failure.message


def test_a_document_that_cannot_be_decoded_is_a_bad_document(server, collection):
    raw = bson.encode({"_id": 9, "name": "XXXX"}).replace(b"XXXX", b"\xff\xfeok")
    result = source(server, collection)._result(raw)
    assert isinstance(result, ReadFailure) and result.doc_id == "9"
    assert result.error_code == "bad_document" and "utf-8" in result.message.lower()


def test_unusual_unicode_survives_unchanged(server, collection):
    # combining marks, a ZWJ emoji sequence, right-to-left text, NUL, a BOM, an astral letter
    text = ("Z\u0301o\u0308e \u200d\U0001f469\u200d\U0001f4bb \u05e9\u05dc\u05d5\u05dd "
            "\x00 \ufeff\U00010348")
    collection.insert_one({"_id": "u", "name": text})
    document = read_all(source(server, collection))["u"]
    assert isinstance(document, Document) and document.fields["name"] == text


# --- the server ------------------------------------------------------------------------------


@pytest.mark.parametrize(("uri", "masked"), [
    ("mongodb://app:s3cr%40t@db.example:27017/x?authSource=admin",
     "mongodb://app:***@db.example:27017/x?authSource=admin"),
    ("mongodb+srv://app:pw@cluster0.example/", "mongodb+srv://app:***@cluster0.example/"),
    ("mongodb://token@host/", "mongodb://token:***@host/"),
    ("mongodb://host/?tlsCertificateKeyFilePassword=pw&w=1",
     "mongodb://host/?tlsCertificateKeyFilePassword=***&w=1"),
    ("mongodb://127.0.0.1:27017/", "mongodb://127.0.0.1:27017/"),
])
def test_credentials_are_masked(uri, masked):
    assert mask_url(uri) == masked


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_server_fails_with_the_uri_masked():
    config = MongoConfig(
        kind="mongodb", uri=f"mongodb://app:hunter22@127.0.0.1:{_free_port()}/",
        database="d", collection="c", collections=["c"], server_selection_timeout_ms=300)
    with pytest.raises(SourceUnavailable) as raised:
        list(MongoSource("m", config, FIELDS).scan())
    message = str(raised.value)
    assert "unreachable" in message and "mongodb://app:***@127.0.0.1" in message
    assert "hunter22" not in message and "hunter22" not in repr(config)


def test_refused_credentials_are_a_clear_error(tmp_path):
    storage = tmp_path / "auth"
    with running_server(storage) as setup, MongoClient(setup.uri) as admin:
        admin.admin.command(
            "createUser", "reader", pwd="right-pass", roles=[{"role": "read", "db": "test"}])
    with running_server(storage, require_auth=True) as secured:
        host = secured.uri.removeprefix("mongodb://")
        config = MongoConfig(kind="mongodb", uri=f"mongodb://reader:wrong-pass@{host}",
                                   database="test", collection="c", collections=["c"])
        refused = MongoSource("m", config, FIELDS)
        with pytest.raises(SourceUnavailable) as raised:
            list(refused.scan())
        refused.close()
    message = str(raised.value)
    assert "refused the credentials" in message and "wrong-pass" not in message
    assert "reader:***@" in message


def test_a_malformed_uri_is_unavailable_with_its_password_masked():
    config = MongoConfig(kind="mongodb", uri="mongodb://app:hunter22@host:notaport/",
                               database="d", collection="c", collections=["c"])
    with pytest.raises(SourceUnavailable, match="the uri cannot be used") as raised:
        list(MongoSource("m", config, FIELDS).scan())
    assert "hunter22" not in str(raised.value) and "app:***@" in str(raised.value)


def test_a_query_the_server_rejects_is_unavailable_not_empty(server, collection):
    collection.insert_one({"_id": 1, "name": "a"})
    with pytest.raises(SourceUnavailable, match="the query failed"):
        list(source(server, collection, filter={"$nope": 1}).scan())


# --- write-back ------------------------------------------------------------------------------


@pytest.mark.parametrize("updated_field", [None, "updatedAt"])
def test_write_back_records_statuses_and_never_makes_a_document_look_changed(
        server, collection, updated_field):
    stamp = datetime(2025, 1, 1)
    collection.insert_many([{"_id": n, "name": f"t{n}", "updatedAt": stamp} for n in range(3)]
                           + [{"_id": ObjectId("65a1b2c3d4e5f60718293a4b"), "name": "oid",
                               "updatedAt": stamp, "syncMetadata": {"other": {"status": "x"}}}])
    src = source(server, collection, updated_field=updated_field, write_back=True)
    before = hints(src)
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    modified = src.write_back([
        SyncOutcome("0", "tools", "synced", "hash0", None),
        SyncOutcome("1", "tools", "failed", None, "Qdrant timed out"),
        SyncOutcome("65a1b2c3d4e5f60718293a4b", "tools", "synced", "hashX", None),
        SyncOutcome("65a1b2c3d4e5f60718293a4b", "functionality", "synced", "hashY", None),
    ], now=now)
    assert modified == 4
    docs = {str(d["_id"]): d for d in collection.find()}
    assert docs["0"]["syncMetadata"] == {"tools": {
        "status": "synced", "contentHash": "hash0", "lastError": None,
        "lastSyncedAt": datetime(2025, 6, 1, 12, 0)}}
    assert docs["1"]["syncMetadata"]["tools"] == {
        "status": "failed", "contentHash": None, "lastError": "Qdrant timed out"}
    assert set(docs["65a1b2c3d4e5f60718293a4b"]["syncMetadata"]) == {
        "other", "tools", "functionality"}
    assert all(d["updatedAt"] == stamp for d in docs.values())  # updated_field untouched
    assert hints(source(server, collection, updated_field=updated_field,
                        write_back=True)) == before

    src.write_back([SyncOutcome("0", "tools", "removed", None, None)])
    assert collection.find_one({"_id": 0})["syncMetadata"] == {}


def test_write_back_is_off_by_default_and_its_field_cannot_be_synced(server, collection):
    collection.insert_one({"_id": 1, "name": "a"})
    src = source(server, collection)
    assert src.write_back([SyncOutcome("1", "c", "synced", "h", None)]) == 0
    assert "syncMetadata" not in collection.find_one({"_id": 1})
    with pytest.raises(ConfigError, match="write_back writes syncMetadata"):
        source(server, collection, fields=["name", "syncMetadata.c.status"], write_back=True)


def test_outcomes_come_from_the_ledger_rows_after_a_sync():
    rows = {
        "a": LedgerRow("m", "c", "a", "synced", content_hash="h", chunk_count=2),
        "b": LedgerRow("m", "c", "b", "failed", last_error="boom", chunk_count=1),
        "c": LedgerRow("m", "c", "c", "synced", content_hash="h", chunk_count=0),
    }
    assert list(outcomes_from_ledger("c", ["a", "b", "c", "gone"], rows)) == [
        SyncOutcome("a", "c", "synced", "h", None), SyncOutcome("b", "c", "failed", None, "boom"),
        SyncOutcome("c", "c", "removed", None, None),
        SyncOutcome("gone", "c", "removed", None, None)]


# --- config ----------------------------------------------------------------------------------


def _config(**source_settings: Any) -> VectorSyncConfig:
    return parse_config({
        "sources": {"tools": {"kind": "mongodb", "database": "d", "collection": "tools",
                              "collections": ["tools", "functionality"], **source_settings},
                    "notes": {"kind": "markdown", "path": "vault", "collections": ["tools"]}},
        "collections": {"tools": {"embed": ["name", "description"], "payload": ["imdb.rating"]},
                        "functionality": {"embed": ["functionality", "name"]}},
    }, Path("/base"))


def test_config_accepts_a_mongodb_source_next_to_a_markdown_one(monkeypatch):
    monkeypatch.setenv("TEST_MONGO_URI", "mongodb://u:p4ss@h/")
    config = _config(uri="${TEST_MONGO_URI}", updated_field="updatedAt")
    mongo = config.sources["tools"]
    assert isinstance(mongo, MongoConfig) and mongo.batch_size == 1000
    assert mongo.write_back is False and mongo.server_selection_timeout_ms == 5000
    assert config.sources["notes"].path == Path("/base/vault")  # type: ignore[union-attr]
    assert "p4ss" not in repr(config)
    assert config.fields_of("tools") == ["name", "description", "imdb.rating", "functionality"]
    built = config.open_source("tools")
    assert isinstance(built, MongoSource)
    assert built._projection == {"_id": 1, "name": 1, "description": 1, "imdb": 1,
                                 "functionality": 1, "updatedAt": 1}


@pytest.mark.parametrize(("settings", "message"), [
    ({"uri": "postgres://u:topsecret@h/"}, "uri must start with mongodb://"),
    ({"uri": "mongodb://h/", "batch_size": 0}, "sources.tools.batch_size"),
    ({"uri": "mongodb://h/", "filterr": {}}, "unknown key"),
    ({"database": None, "uri": "mongodb://h/"}, "sources.tools.database"),
    ({"uri": "mongodb://h/", "filter": {"owner": {"$oid": "xyz"}}},
     "filter is not a MongoDB query in Extended JSON"),
])
def test_config_errors_name_the_key_and_never_echo_the_uri(settings, message):
    with pytest.raises(ConfigError) as raised:
        _config(**settings)
    assert message in str(raised.value) and "topsecret" not in str(raised.value)
