"""End to end through the CLI with MongoDB over the real wire protocol (SecantusDB started
in-process), the real model, embedded Qdrant and real Dagster runs: one collection of tools
fanned out to two Qdrant collections that embed different fields."""

from __future__ import annotations

import json
import random
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient
from pymongo.collection import Collection

from vector_sync.cli import main
from vector_sync.config import load_config
from vector_sync.core.ledger import open_ledger
from vector_sync_tests.support import Project, counts, listed
from vector_sync_tests.support.mongo_server import running_server

TOOLS = 200
COLLECTIONS = {
    "tools": {"embed": ["name", "tagline", "description"], "payload": ["website", "pricing.model"]},
    "functionality": {"embed": ["functionality", "categories"], "payload": ["website"]},
}
WORDS = ["fast", "secure", "open", "visual", "smart", "local", "shared", "simple", "team",
         "cloud", "data", "note", "chart", "code", "search", "mail", "video", "image", "voice",
         "plan", "task", "board", "sheet", "form", "graph"]
CATEGORIES = ["analytics", "automation", "chat", "coding", "design", "finance", "writing"]
NOTHING = {"added": 0, "updated": 0, "payload_updated": 0, "deleted": 0, "failed": 0,
           "chunks_embedded": 0}


@pytest.fixture(scope="module")
def mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoClient[dict[str, Any]]]:
    with running_server(tmp_path_factory.mktemp("mongo")) as server, \
            MongoClient(server.uri) as client:
        yield client


@pytest.fixture
def tools(mongo: MongoClient[dict[str, Any]],
          monkeypatch: pytest.MonkeyPatch) -> Collection[dict[str, Any]]:
    """An empty `tools` collection in a database of its own; $MONGODB_URI points at it."""
    host, port = mongo.address  # type: ignore[misc]
    monkeypatch.setenv("MONGODB_URI", f"mongodb://{host}:{port}/")
    return mongo[f"db{uuid.uuid4().hex[:8]}"]["tools"]


def mongo_project(root: Path, database: str, **source: Any) -> Project:
    root.mkdir()
    project = Project(root)
    project.config["sources"] = {"tools": {
        "kind": "mongodb", "uri": "${MONGODB_URI}", "database": database,
        "collection": "tools", "collections": list(COLLECTIONS), **source}}
    project.config["collections"] = COLLECTIONS
    project.save()
    return project


class Clock:
    """updatedAt values as the application would set them: a new one on every write."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1)

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def tool(rng: random.Random, index: int, clock: Clock) -> dict[str, Any]:
    """A tool shaped like seed 001's: some long descriptions, lists, nested pricing."""
    sentence = " ".join(rng.choices(WORDS, k=rng.randint(8, 50)))
    return {
        "name": f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {index}",
        "tagline": " ".join(rng.choices(WORDS, k=5)), "description": sentence,
        "functionality": [" ".join(rng.choices(WORDS, k=3)) for _ in range(rng.randint(1, 4))],
        "categories": rng.sample(CATEGORIES, 2), "website": f"https://t{index}.example",
        "pricing": {"model": rng.choice(["free", "paid"]), "plans": [{"usd": index % 50}]},
        "logoUrl": f"/logos/{index}.png", "updatedAt": clock.tick(),
    }


def qdrant_state(project: Project, collection: str) -> dict[str, Any]:
    """point id -> (payload without synced_at, vector), read from Qdrant."""
    with project.qdrant() as store:
        return {p.id: ({k: v for k, v in p.payload.items() if k != "synced_at"},
                       [round(x, 5) for x in p.vector or []])
                for p in store.scroll(collection, None, with_vectors=True)}


def _subset(report_counts: dict[str, int], expected: dict[str, int]) -> dict[str, int]:
    return {k: report_counts[k] for k in expected}


@dataclass
class Edits:
    """Which documents each kind of edit touched (doc_ids)."""

    website: list[str]  # payload of both collections
    pricing: list[str]  # payload of `tools` only
    tagline: list[str]  # embedded by `tools` only
    functionality: list[str]  # embedded by `functionality` only
    lost: list[str]  # lost every field `functionality` embeds
    logo: list[str]  # a field no collection uses
    deleted: list[str]
    inserted: list[str]  # the first one has no `functionality` fields


def apply_edits(tools: Collection[dict[str, Any]], ids: list[ObjectId], clock: Clock,
                rng: random.Random) -> Edits:
    def edit(group: list[ObjectId], changes: dict[str, Any], unset: tuple[str, ...] = ()
             ) -> list[str]:
        for doc_id in group:
            update: dict[str, Any] = {"$set": {**changes, "updatedAt": clock.tick()}}
            if unset:
                update["$unset"] = dict.fromkeys(unset, "")
            tools.update_one({"_id": doc_id}, update)
        return [str(d) for d in group]

    tools.delete_many({"_id": {"$in": ids[14:19]}})
    inserted = tools.insert_many([tool(rng, TOOLS + i, clock) for i in range(4)]).inserted_ids
    edit(inserted[:1], {}, unset=("functionality", "categories"))
    return Edits(
        website=edit(ids[0:3], {"website": "https://moved.example"}),
        pricing=edit(ids[3:5], {"pricing.model": "enterprise"}),
        tagline=edit(ids[5:9], {"tagline": "quantum spreadsheet wizardry"}),
        functionality=edit(ids[9:12], {"functionality": ["transcribes podcasts"]}),
        lost=edit(ids[12:14], {}, unset=("functionality", "categories")),
        logo=edit(ids[19:20], {"logoUrl": "/logos/new.png"}),
        deleted=[str(d) for d in ids[14:19]], inserted=[str(d) for d in inserted],
    )


EXPECTED = {
    "tools": {"added": 4, "updated": 4, "payload_updated": 5, "deleted": 5, "failed": 0,
              "unchanged": 186},
    # the insert without functionality fields is "unchanged": it has no points there
    "functionality": {"added": 3, "updated": 3, "payload_updated": 3, "deleted": 7, "failed": 0,
                      "unchanged": 188},
}


def test_one_sync_after_a_mix_of_edits_does_exactly_the_work_each_needs(tools, capsys, tmp_path):
    rng, clock = random.Random(3), Clock()
    ids = tools.insert_many([tool(rng, i, clock) for i in range(TOOLS)]).inserted_ids
    database = tools.database.name
    by_stamp = mongo_project(tmp_path / "a", database, updated_field="updatedAt")
    by_hash = mongo_project(tmp_path / "b", database)
    before = {}
    for project in (by_stamp, by_hash):
        code, report = project.cli("sync", capsys=capsys)
        assert code == 0, report
        for collection in COLLECTIONS:
            assert counts(report, "tools", collection)["added"] == TOOLS
        before[project] = {c: project.points(c) for c in COLLECTIONS}

    edits = apply_edits(tools, ids, clock, rng)
    code, planned = by_stamp.cli("plan", capsys=capsys)
    assert code == 0
    for project in (by_stamp, by_hash):
        code, report = project.cli("sync", capsys=capsys)
        assert code == 0, report
        for collection, expected in EXPECTED.items():
            assert _subset(counts(report, "tools", collection), expected) == expected
        check_qdrant(project, before[project], edits, report, [str(i) for i in ids])
        if project is by_stamp:
            assert planned == report

    # the updated_field path and the hash path end in the same Qdrant state
    for collection in COLLECTIONS:
        assert qdrant_state(by_stamp, collection) == qdrant_state(by_hash, collection)
    for project in (by_stamp, by_hash):
        code, report = project.cli("sync", capsys=capsys)
        assert code == 0
        for collection in COLLECTIONS:
            assert _subset(counts(report, "tools", collection), NOTHING) == NOTHING
            assert counts(report, "tools", collection)["unchanged"] == 199
    code, verified = by_stamp.cli("verify", capsys=capsys)
    assert code == 0 and verified["ok"], verified


def check_qdrant(project: Project, before: dict[str, Any], edits: Edits,
                 report: dict[str, Any], original: list[str]) -> None:
    """What Qdrant holds after the edits, document by document."""
    now = {c: project.points(c) for c in COLLECTIONS}
    tools_now, functionality_now = now["tools"], now["functionality"]
    assert set(tools_now) == set(original) - set(edits.deleted) | set(edits.inserted)
    assert set(functionality_now) == (
        set(original) - set(edits.deleted) - set(edits.lost) | set(edits.inserted[1:]))
    for doc_id in edits.website:
        assert tools_now[doc_id][0]["website"] == "https://moved.example"
        assert functionality_now[doc_id][0]["website"] == "https://moved.example"
        assert tools_now[doc_id][0]["content_hash"] == before["tools"][doc_id][0]["content_hash"]
    for doc_id in edits.pricing:
        assert tools_now[doc_id][0]["pricing"] == {"model": "enterprise"}
    for doc_id in edits.tagline:
        assert "quantum spreadsheet wizardry" in tools_now[doc_id][0]["text"]
    for doc_id in edits.functionality:
        assert "transcribes podcasts" in functionality_now[doc_id][0]["text"]

    def untouched(collection: str, doc_ids: list[str]) -> None:
        for doc_id in doc_ids:  # same payload, same synced_at: not written at all
            assert now[collection][doc_id] == before[collection][doc_id], doc_id

    untouched("functionality", edits.tagline + edits.pricing + edits.logo)
    untouched("tools", edits.functionality + edits.lost + edits.logo)
    for collection, changed in (("tools", edits.tagline + edits.inserted),
                                ("functionality", edits.functionality + edits.inserted[1:])):
        embedded = counts(report, "tools", collection)["chunks_embedded"]
        assert embedded == sum(now[collection][d][0]["chunk_count"] for d in changed)


UNUSUAL = "Z\u0301o\u0308e \U0001f469\u200d\U0001f4bb \u05e9\u05dc\u05d5\u05dd \x00 \U00010348"


def test_bad_documents_fail_alone_and_an_unreachable_server_deletes_nothing(
        tools, capsys, tmp_path, monkeypatch):
    rng, clock = random.Random(5), Clock()
    tools.insert_many([tool(rng, i, clock) for i in range(3)])
    tools.insert_many([
        {"_id": "numbers", "name": 12345, "tagline": 3.5, "description": True,
         "functionality": [[1, ["two", None]], {"k": "v"}], "categories": None},
        {"_id": "nulls", "name": None, "tagline": "", "functionality": [None, []]},
        {"_id": "unicode", "name": UNUSUAL, "functionality": [UNUSUAL]},
        {"_id": "huge-array", "name": "many", "functionality": [f"f{i}" for i in range(300_000)]},
        {"_id": "16mb", "name": "big", "description": "x" * 16_000_000},
    ])
    project = mongo_project(tmp_path / "p", tools.database.name)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 1  # some documents failed
    assert _subset(counts(report, "tools", "tools"), {"added": 5, "failed": 2}) == \
        {"added": 5, "failed": 2}
    assert _subset(counts(report, "tools", "functionality"), {"added": 5, "failed": 2}) == \
        {"added": 5, "failed": 2}
    tools_points, functionality_points = project.points("tools"), project.points("functionality")
    assert tools_points["numbers"][0]["text"] == "name: 12345\ntagline: 3.5\ndescription: True"
    assert functionality_points["numbers"][0]["text"] == "functionality: 1, two, k: v"
    assert UNUSUAL in tools_points["unicode"][0]["text"]
    assert "nulls" not in tools_points and "nulls" not in functionality_points

    code, status = project.cli("status", capsys=capsys)
    assert status["sources"]["tools"]["error"] is None  # reachable: status probed it
    failed = {(row["doc_id"], row["collection"]): row for row in status["failed"]}
    assert set(failed) == {(d, c) for d in ("huge-array", "16mb") for c in COLLECTIONS}
    assert {row["error_code"] for row in failed.values()} == {"too_large"}
    assert all("max_document_bytes" in row["error"] for row in failed.values())

    port = _free_port()
    monkeypatch.setenv("MONGODB_URI", f"mongodb://app:hunter22@127.0.0.1:{port}/")
    project.config["sources"]["tools"]["server_selection_timeout_ms"] = 500
    project.save()
    capsys.readouterr()
    code = main(["sync", "--config", str(project.config_file), "--json"])
    printed = capsys.readouterr()
    assert code == 1
    error = json.loads(printed.out)["sources"]["tools"]["error"]
    assert "unreachable" in error and "mongodb://app:***@127.0.0.1" in error
    assert "hunter22" not in printed.out + printed.err
    assert project.points("tools") == tools_points
    assert project.points("functionality") == functionality_points
    code, status = project.cli("status", capsys=capsys)
    assert code == 1 and "mongodb://app:***@127.0.0.1" in status["sources"]["tools"]["error"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("updated_field", ["updatedAt", None])
def test_write_back_records_status_per_collection_and_never_triggers_a_resync(
        tmp_path, tools, capsys, updated_field):
    rng, clock = random.Random(7), Clock()
    tools.insert_many([tool(rng, i, clock) for i in range(5)])
    tools.insert_one({"_id": "no-function", "name": "Bare", "tagline": "only a name",
                      "website": "https://bare.example", "updatedAt": clock.tick()})
    source = {"write_back": True, **({"updated_field": updated_field} if updated_field else {})}
    project = mongo_project(tmp_path / "p", tools.database.name, **source)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0
    held = {p["doc_id"]: p["content_hash"]
            for p, _ in qdrant_state(project, "tools").values()}
    for document in tools.find():
        meta = document["syncMetadata"]
        assert meta["tools"]["status"] == "synced" and meta["tools"]["lastSyncedAt"]
        assert meta["tools"]["contentHash"] == held[str(document["_id"])]
        # a document with no embedded field of "functionality" is not in it
        assert ("functionality" in meta) == (document["_id"] != "no-function")
    code, report = project.cli("sync", capsys=capsys)
    for collection in COLLECTIONS:
        assert _subset(counts(report, "tools", collection), NOTHING) == NOTHING


def test_a_change_stream_spares_the_listing_until_its_safety_period(
        tools, capsys, tmp_path, caplog):
    """After the first sync, each sync resumes the change stream from the last one's token:
    it reads only the documents the stream names (an edit, an insert, a delete, an update
    that leaves the filter) and keeps the rest as the ledger has them, without listing; it
    lists all the same once `full_listing_every_s` has passed."""
    caplog.set_level("INFO", logger="vector_sync")
    rng, clock = random.Random(11), Clock()
    ids = tools.insert_many([tool(rng, i, clock) for i in range(30)]).inserted_ids
    project = mongo_project(tmp_path / "p", tools.database.name,
                            filter={"retired": {"$ne": True}})
    assert project.cli("sync", capsys=capsys)[0] == 0 and listed(caplog)

    tools.update_one({"_id": ids[0]}, {"$set": {"tagline": "now it paints houses"}})
    tools.update_one({"_id": ids[1]}, {"$set": {"retired": True}})  # leaves the filter
    tools.delete_one({"_id": ids[2]})
    new = tools.insert_one(tool(rng, 99, clock)).inserted_id
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and not listed(caplog), report
    assert _subset(counts(report, "tools", "tools"),
                   {"added": 1, "updated": 1, "deleted": 2, "unchanged": 27}) == \
        {"added": 1, "updated": 1, "deleted": 2, "unchanged": 27}
    held = project.points("tools")
    assert set(held) == {str(i) for i in ids[3:]} | {str(ids[0]), str(new)}
    assert "paints houses" in held[str(ids[0])][0]["text"]

    config = load_config(project.config_file)
    with open_ledger(config.state) as ledger:  # the safety period has passed
        ledger.set_state("tools", "listed_at", "0")
    tools.delete_one({"_id": ids[3]})
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and listed(caplog) and counts(report, "tools", "tools")["deleted"] == 1
    assert project.cli("sync", capsys=capsys)[0] == 0 and not listed(caplog)
    code, verified = project.cli("verify", capsys=capsys)
    assert code == 0 and verified["ok"], verified


def test_without_a_listing_a_document_its_id_cannot_name_is_kept(tools, capsys, tmp_path):
    """A document to read again (here: found stale) whose _id does not print back (a float)
    cannot be found by its doc id when the change stream spares the listing: it is kept,
    failed until the next listing, never deleted for that."""
    rng, clock = random.Random(13), Clock()
    tools.insert_many([tool(rng, i, clock) for i in range(5)])
    tools.insert_one({**tool(rng, 7, clock), "_id": 2.5})
    project = mongo_project(tmp_path / "p", tools.database.name)
    assert project.cli("sync", capsys=capsys)[0] == 0 and "2.5" in project.points("tools")

    config = load_config(project.config_file)
    with open_ledger(config.state) as ledger:  # as `verify` marks a document it found wrong
        ledger.upsert([replace(row, status="stale")
                       for row in ledger.rows_of("tools", "tools", ["2.5"])])
    code, report = project.cli("sync", capsys=capsys)
    assert counts(report, "tools", "tools")["deleted"] == 0, report
    assert "2.5" in project.points("tools")
