"""The MongoDB watch sensor over a real MongoDB-wire server (SecantusDB, in-process): one sync
run per change, resumed from the change-stream token in the cursor, never while a sync of
the source is in flight, a skip when the server is down, and polling where the server has
no change streams."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import dagster as dg
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection
from secantus import SecantusDBServer

from vector_sync.config import VectorSyncConfig
from vector_sync.defs import sensors
from vector_sync.sources.mongodb import MongoConfig
from vector_sync.sources.mongodb import stream as mongo_stream
from vector_sync.sources.mongodb import watch as mongo_watch
from vector_sync.sources.mongodb.watch import poll_changes
from vector_sync_tests.support.mongo_server import running_server

SOURCE = "tools"
Result = dg.SensorResult | dg.SkipReason


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecantusDBServer]:
    with running_server(tmp_path_factory.mktemp("mongo")) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: SecantusDBServer) -> Iterator[MongoClient[dict[str, Any]]]:
    connected: MongoClient[dict[str, Any]]
    with MongoClient(server.uri) as connected:
        yield connected


@pytest.fixture
def tools(client: MongoClient[dict[str, Any]]) -> Collection[dict[str, Any]]:
    """A `tools` collection in a database of its own, with one document."""
    collection = client[f"db{uuid.uuid4().hex[:8]}"]["tools"]
    collection.insert_one({"_id": 1, "name": "Hammer", "updatedAt": datetime(2025, 1, 1)})
    return collection


@pytest.fixture(autouse=True)
def _short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    # every tick ends with one empty getMore that waits this long: shorter keeps the suite
    # fast, and what a tick sees is the same (the writes are acknowledged before it)
    monkeypatch.setattr(mongo_stream, "MAX_AWAIT_MS", 20)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def _config(uri: str, database: str, **options: Any) -> MongoConfig:
    return MongoConfig(kind="mongodb", uri=uri, database=database,
                       collection="tools", collections=["tools"], **options)


def _config_of(collection: Collection[dict[str, Any]], **options: Any) -> MongoConfig:
    host, port = collection.database.client.address  # type: ignore[misc]
    return _config(f"mongodb://{host}:{port}/", collection.database.name, **options)


def _watch_sensor(config: MongoConfig, interval_s: int = 15) -> dg.SensorDefinition:
    """The source's `watch_<source>` sensor as build_sensors makes it."""
    settings = VectorSyncConfig(sources={SOURCE: config}, sensors={"interval_s": interval_s},
                                collections={"tools": {"embed": ["name"]}})
    watchers = [s for s in sensors.build_sensors(settings) if s.name == f"watch_{SOURCE}"]
    return watchers[0]


def _state(cursor: str) -> dict[str, Any]:
    return json.loads(cursor)["state"]


def _sensor(config: MongoConfig) -> Callable[..., Result]:
    sensor = _watch_sensor(config)

    def tick(instance: dg.DagsterInstance, cursor: str | None = None) -> Result:
        """One evaluation in a fresh context, as the daemon makes them."""
        result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
        assert isinstance(result, dg.SensorResult | dg.SkipReason), result
        return result

    return tick


def _requests(result: Result) -> list[dg.RunRequest]:
    assert isinstance(result, dg.SensorResult), result
    return list(result.run_requests or [])


def _one_request(result: Result) -> str:
    """The cursor after a tick that must request exactly one sync of the source."""
    requests = _requests(result)
    assert [(r.partition_key, r.tags["vector_sync/trigger"]) for r in requests] == [
        (SOURCE, "watch")]
    assert requests[0].run_key and requests[0].run_key.startswith(f"{SOURCE}:")
    assert isinstance(result, dg.SensorResult) and result.cursor
    return result.cursor


def _quiet(result: Result) -> str:
    """The cursor after a tick that must skip because nothing changed."""
    assert isinstance(result, dg.SensorResult) and not result.run_requests, result
    assert result.skip_reason and "no change" in (result.skip_reason.skip_message or "")
    assert result.cursor
    return result.cursor


def _start_sync(instance: dg.DagsterInstance, source: str) -> None:
    instance.add_run(dg.DagsterRun(job_name=sensors.SYNC_JOB,
                                   status=dg.DagsterRunStatus.STARTED,
                                   tags={"dagster/partition": source}))


def _inject_no_change_streams(client: MongoClient[dict[str, Any]]) -> None:
    """The next aggregate fails as a standalone mongod answers $changeStream."""
    client.admin.command({
        "configureFailPoint": "failCommand", "mode": {"times": 1},
        "data": {"failCommands": ["aggregate"], "errorCode": 40573,
                 "errmsg": "The $changeStream stage is only supported on replica sets"}})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the definition --------------------------------------------------------------------------


def test_the_sensor_is_on_by_default_and_runs_the_sync_job(tools):
    sensor = _watch_sensor(_config_of(tools), interval_s=20)
    assert sensor.name == f"watch_{SOURCE}"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == sensors.SYNC_JOB
    assert sensor.minimum_interval_seconds == 20
    assert sensor.description and tools.database.name in sensor.description


# --- change streams --------------------------------------------------------------------------


def test_the_first_look_requests_one_sync_and_keeps_the_token(tools, instance):
    tick = _sensor(_config_of(tools))
    cursor = _one_request(tick(instance))
    state = _state(cursor)
    assert state["mode"] == "stream" and state["token"]["_data"]
    _quiet(tick(instance, cursor))


CHANGES: dict[str, Callable[[Collection[dict[str, Any]]], Any]] = {
    "insert": lambda c: c.insert_one({"_id": 2, "name": "Saw"}),
    "update": lambda c: c.update_one({"_id": 1}, {"$set": {"name": "Mallet"}}),
    "replace": lambda c: c.replace_one({"_id": 1}, {"name": "Mallet"}),
    "delete": lambda c: c.delete_one({"_id": 1}),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_each_kind_of_change_requests_exactly_one_sync(tools, instance, change):
    tick = _sensor(_config_of(tools))
    cursor = _one_request(tick(instance))
    CHANGES[change](tools)
    after = _one_request(tick(instance, cursor))
    assert after != cursor
    _quiet(tick(instance, after))  # seen once, not again


def test_the_summary_counts_the_changes_by_kind(tools):
    config = _config_of(tools)
    state = poll_changes(SOURCE, config, None).new_state
    for change in CHANGES.values():
        change(tools)
    check = poll_changes(SOURCE, config, state)
    assert check.changed
    assert check.summary.endswith("4 changes in " + tools.database.name
                                  + ".tools: 1 delete, 1 insert, 1 replace, 1 update")


def test_nothing_changed_is_a_skip_that_moves_the_token_on(tools, instance):
    tick = _sensor(_config_of(tools))
    cursor = _one_request(tick(instance))
    tools.database["other"].insert_one({"x": 1})  # moves the oplog, not this collection
    fresh = _quiet(tick(instance, cursor))
    assert _state(fresh)["token"] != _state(cursor)["token"]  # the post-batch token


def test_the_cursor_survives_a_new_context_and_resumes_from_its_token(tools, instance):
    tick = _sensor(_config_of(tools))
    cursor = _one_request(tick(instance))
    _quiet(tick(instance, cursor))
    tools.insert_one({"_id": 2, "name": "Saw"})  # between two ticks
    keys = {_requests(tick(instance, cursor))[0].run_key for _ in range(2)}
    assert len(keys) == 1  # the same change from the same cursor: the same run key


def test_a_change_during_a_sync_is_requested_after_it(tools, instance):
    tick = _sensor(_config_of(tools))
    cursor = _one_request(tick(instance))
    tools.insert_one({"_id": 2, "name": "Saw"})
    _start_sync(instance, "other")  # another source's sync does not hold this one back
    _start_sync(instance, SOURCE)
    busy = tick(instance, cursor)
    # a plain skip: the daemon keeps the cursor from before the insert
    assert isinstance(busy, dg.SkipReason), busy
    assert "1 insert" in (busy.skip_message or "") and "queued or running" in (
        busy.skip_message or "")

    for record in instance.get_run_records(dg.RunsFilter(job_name=sensors.SYNC_JOB)):
        instance.report_run_canceled(record.dagster_run)
    _one_request(tick(instance, cursor))


def test_updates_of_only_the_write_back_field_request_nothing(tools, instance):
    tick = _sensor(_config_of(tools, write_back=True))
    cursor = _one_request(tick(instance))
    tools.update_one({"_id": 1}, {"$set": {"syncMetadata.tools.status": "synced"}})
    tools.update_one({"_id": 1}, {"$unset": {"syncMetadata.tools": ""}})
    cursor = _quiet(tick(instance, cursor))
    tools.update_one({"_id": 1}, {"$set": {"name": "Mallet", "syncMetadata.tools.x": 1}})
    _one_request(tick(instance, cursor))


def test_a_dropped_collection_is_a_change_and_the_watch_goes_on_past_it(tools, instance):
    tick = _sensor(_config_of(tools))
    cursor = _one_request(tick(instance))
    tools.drop()
    cursor = _one_request(tick(instance, cursor))
    assert _state(cursor)["invalidated"] is True
    tools.insert_one({"_id": 5, "name": "Drill"})  # the collection again
    # read on past the invalidate (start_after), not started over
    after = poll_changes(SOURCE, _config_of(tools), _state(cursor))
    assert after.summary.endswith(": 1 insert"), after.summary
    cursor = _one_request(tick(instance, cursor))
    _quiet(tick(instance, cursor))


def test_lost_history_requests_a_full_sync_and_watches_anew(tmp_path, instance):
    with running_server(tmp_path, oplog_max_entries=3) as small, \
            MongoClient(small.uri) as client:
        tools = client["db"]["tools"]
        config = _config(small.uri, "db")
        cursor = _one_request(_sensor(config)(instance))
        tools.insert_many([{"n": n} for n in range(20)])
        client.admin.command("secantusAdmin.pruneOplog")  # the token's history is gone

        check = poll_changes(SOURCE, config, _state(cursor))
        assert check.changed and "ChangeStreamHistoryLost 286" in check.summary
        cursor = _one_request(_sensor(config)(instance, cursor))
        _quiet(_sensor(config)(instance, cursor))  # the new token resumes
        tools.insert_one({"n": 99})
        _one_request(_sensor(config)(instance, cursor))


def test_a_cursor_kept_for_other_settings_or_unreadable_requests_a_sync(tools, instance):
    cursor = _one_request(_sensor(_config_of(tools))(instance, "not json"))
    refiltered = _sensor(_config_of(tools, filter={"name": "Hammer"}))
    cursor = _one_request(refiltered(instance, cursor))
    _quiet(refiltered(instance, cursor))


def test_an_unreachable_server_is_a_skip_with_the_masked_uri(instance):
    uri = f"mongodb://reader:s3cr3t-pw@127.0.0.1:{_free_port()}/"
    # nothing listens there: a short search for the server says so sooner, and no longer
    # one would find it
    result = _sensor(_config(uri, "db", server_selection_timeout_ms=500))(instance)
    assert isinstance(result, dg.SkipReason), result
    message = result.skip_message or ""
    assert "reader:***@127.0.0.1" in message and "unreachable" in message
    assert "s3cr3t" not in message


def test_a_tick_reads_many_changes_in_one_request(tools, instance):
    tick = _sensor(_config_of(tools))
    cursor = _one_request(tick(instance))
    tools.insert_many([{"name": f"tool {n}"} for n in range(2000)])
    _one_request(tick(instance, cursor))


class _CountingClock:
    """A clock that moves on one second each time it is read, in place of the wall clock of
    the watch's time budget: a look then runs out of time after the same number of events,
    however fast or busy the machine is."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now


def test_a_tick_out_of_time_on_an_injected_clock_keeps_its_place_and_the_next_reads_on(
        tools, monkeypatch):
    monkeypatch.setattr(mongo_watch, "time", _CountingClock())
    monkeypatch.setattr(mongo_watch, "DRAIN_BUDGET_S", 1000.0)  # 999 events per look
    config = _config_of(tools)
    state = poll_changes(SOURCE, config, None).new_state
    tools.insert_many([{"name": f"tool {n}"} for n in range(3000)])
    seen, looks = 0, 0
    while True:
        check = poll_changes(SOURCE, config, state)
        looks += 1
        if not check.changed:
            break
        read = re.search(r"(\d+) insert", check.summary)
        assert read, check.summary
        seen += int(read.group(1))
        state = check.new_state
    assert looks > 2 and "more pending" not in check.summary
    assert seen == 3000  # every event read exactly once, across the looks


# --- no change streams: polling --------------------------------------------------------------


def test_injected_no_change_streams_error_falls_back_to_polling_updated_field(
        tools, client, instance):
    tick = _sensor(_config_of(tools, updated_field="updatedAt"))

    def injected_tick(cursor: str | None) -> Result:
        _inject_no_change_streams(client)
        return tick(instance, cursor)

    cursor = _one_request(injected_tick(None))
    assert _state(cursor)["mode"] == "poll"
    cursor = _quiet(injected_tick(cursor))
    # an edit that keeps the count is seen through updated_field
    tools.update_one({"_id": 1}, {"$set": {"name": "Mallet", "updatedAt": datetime(2025, 2, 1)}})
    cursor = _one_request(injected_tick(cursor))
    tools.delete_one({"_id": 1})
    cursor = _one_request(injected_tick(cursor))
    _quiet(injected_tick(cursor))


def test_a_standalone_server_is_polled_and_without_updated_field_misses_edits_in_place(
        tmp_path, instance):
    with running_server(tmp_path, replica_set_name=None) as standalone, \
            MongoClient(standalone.uri) as client:
        tools = client["db"]["tools"]
        tools.insert_one({"_id": 1, "name": "Hammer"})
        config = _config(standalone.uri, "db")
        first = poll_changes(SOURCE, config, None)
        assert first.changed and "IllegalOperation 40573" in first.summary
        tick = _sensor(config)
        cursor = _one_request(tick(instance))
        tools.insert_one({"_id": 2, "name": "Saw"})
        cursor = _one_request(tick(instance, cursor))
        # the documented limit: count and largest _id stay, so the edit waits for the next sync
        tools.update_one({"_id": 1}, {"$set": {"name": "Mallet"}})
        cursor = _quiet(tick(instance, cursor))
        tools.delete_one({"_id": 1})
        _one_request(tick(instance, cursor))


def test_polling_with_a_filter_counts_only_matching_documents(tools, client, instance):
    tick = _sensor(_config_of(tools, filter={"kind": "tool"}))

    def injected_tick(cursor: str | None) -> Result:
        _inject_no_change_streams(client)
        return tick(instance, cursor)

    cursor = _one_request(injected_tick(None))
    tools.insert_one({"_id": 2, "kind": "other"})  # outside the filter
    cursor = _quiet(injected_tick(cursor))
    tools.insert_one({"_id": 3, "kind": "tool"})
    assert _state(_one_request(injected_tick(cursor)))["count"] == 1

