"""The SurrealDB source's parts against the real engine (the SDK's embedded `mem://`):
values converted to JSON, record ids in SurrealDB's own notation, settings, and the cheap
look of the watch sensor."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError
from surrealdb import Surreal

from vector_sync.core.source import SourceUnavailable
from vector_sync.sources.surrealdb import SurrealConfig
from vector_sync.sources.surrealdb.ids import record_literal
from vector_sync.sources.surrealdb.values import duration_string, json_safe, record_string


@pytest.fixture
def db() -> Any:
    connection = Surreal("mem://")
    connection.use("ns", "db")
    yield connection
    connection.close()


def test_every_value_kind_has_one_json_form(db):
    db.query("CREATE t:1 SET at = d'2026-01-02T03:04:05.5Z', took = 1h30m, price = 19.99dec, "
             "key = u'018f8a4e-6b1e-7c3a-9d2e-123456789abc', raw = <bytes>'hi', link = author:7, "
             "at_point = (1.5, 2.5), shape = {type: 'Polygon', coordinates: "
             "[[[0, 0], [1, 0], [1, 1], [0, 0]]]}, tags = <set>['b', 'a'], big = math::inf, "
             "nested = {deep: [1, {x: NULL}]}")
    [record] = db.query("SELECT * FROM t:1")
    converted = json_safe(record)
    assert converted["at"] == "2026-01-02T03:04:05.500000Z"
    assert converted["took"] == "1h30m"
    assert converted["price"] == "19.99"
    assert converted["key"] == "018f8a4e-6b1e-7c3a-9d2e-123456789abc"
    assert converted["raw"] == "aGk="
    assert converted["link"] == "author:7" and converted["id"] == "t:1"
    assert converted["at_point"] == {"type": "Point", "coordinates": [1.5, 2.5]}
    assert converted["shape"]["type"] == "Polygon"
    assert sorted(converted["tags"]) == ["a", "b"]
    assert converted["big"] == "Infinity"
    assert converted["nested"] == {"deep": [1, {"x": None}]}


@pytest.mark.parametrize("record", [
    "t:1", "t:-5", "t:slug_text", "t:⟨with space⟩", "t:123abc", "t:⟨123⟩", "t:[2026, 'x']",
    "t:{ lang: 'en', n: 1 }", "t:u'018f8a4e-6b1e-7c3a-9d2e-123456789abc'", "t:[1, [2, 'y']]",
    "t:⟨it's⟩", "t:[1.5dec]", "t:{ n: 10000000000dec }", "t:[other:⟨a\\⟩b⟩]"])
def test_record_ids_print_as_surrealdb_prints_them(db, record):
    db.query(f"CREATE {record}")
    [found] = db.query("SELECT id, <string> id AS text FROM t")
    assert record_string(found["id"]) == found["text"] == record


@pytest.mark.parametrize("record", [
    "t:[1.5dec]", "t:[1.5f]", "t:[1]", "t:[10000000000dec]", "t:[d'2024-01-01T00:00:00Z']",
    "t:[d'2024-01-01T00:00:00.25Z', 1s]", "t:[[1h30m, 1.0dec]]", "t:⟨a\\\\b⟩", "t:⟨a\\⟩b⟩",
    "t:{ at: d'2024-05-06T07:08:09Z', d: 'x 2024-01-01 00:00:00+00:00', took: 2s }",
    "t:{ ⟨c\\⟩d⟩: 1 }", "t:['Duration(elapsed=5)']"])
def test_every_id_text_parses_back_into_its_record(db, record):
    db.query(f"CREATE {record}")
    [found] = db.query("SELECT VALUE id FROM t")
    # read back through its text: the record itself, not another one or none
    assert db.query("SELECT VALUE <string> id FROM type::record($s)",
                    {"s": record_literal(record_string(found))}) == \
        db.query("SELECT VALUE <string> id FROM t")


def test_durations_in_surrealql_notation():
    assert duration_string(0) == "0ns"
    assert duration_string(90 * 10**9) == "1m30s"
    assert duration_string(8 * 86400 * 10**9 + 1500) == "1w1d1µs500ns"


@pytest.mark.parametrize("settings", [
    {"url": "postgres://x"}, {"table": "bad-name"}, {"table": "a b"},
    {"updated_field": "a..b"}, {"updated_field": "syncMetadata.x"}])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValidationError):
        SurrealConfig.model_validate({"kind": "surrealdb", "url": "mem://", "namespace": "n",
                                      "database": "d", "table": "t", "collections": ["c"],
                                      **settings})


def config(url: str, **settings: Any) -> SurrealConfig:
    return SurrealConfig.model_validate({"kind": "surrealdb", "url": url, "namespace": "ns",
                                         "database": "db", "table": "t",
                                         "collections": ["c"], **settings})


@pytest.mark.parametrize("batch_size", [1000, 2])  # 2: the first look pages through the feed
def test_look_follows_the_change_feed(tmp_path, batch_size):
    url = f"surrealkv://{tmp_path / 'db'}"
    writer = Surreal(url)
    writer.use("ns", "db")
    writer.query("DEFINE TABLE t CHANGEFEED 1h; CREATE t:1 SET a = 1;")
    for i in range(2, 7):  # one commit each: five more versions in the feed
        writer.query(f"CREATE t:{i} SET a = {i}")
    settings = config(url, batch_size=batch_size)
    first = settings.look("s", None)
    assert first.changed
    quiet = settings.look("s", first.new_state)
    assert not quiet.changed and quiet.new_state == first.new_state
    writer.query("UPDATE t:1 SET a = 2")
    moved = settings.look("s", quiet.new_state)
    assert moved.changed and "1 change" in moved.summary
    writer.close()


def test_undefined_table_is_unavailable_not_empty():
    source = config("mem://").open("s", None)
    with pytest.raises(SourceUnavailable, match="table t is not defined"):
        source.changed_since(None)


def test_password_is_masked_when_sign_in_fails(tmp_path):
    secret = f"pw-{uuid.uuid4().hex[:8]}"
    source = config("ws://127.0.0.1:9/rpc", username="root", password=secret).open("s", None)
    with pytest.raises(SourceUnavailable) as failure:
        list(source.scan())
    assert "cannot connect" in str(failure.value) and secret not in str(failure.value)
