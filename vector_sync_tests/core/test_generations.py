"""The pieces of blue-green generations on their own: the pointer of both store engines,
the fingerprint, the ledger rows trading names at a switch, adoption of a collection made
before generations existed, cleanup after `keep_old`, and ownership (a deployment's own
generations are never "not in the config")."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from vector_sync.config import load_config
from vector_sync.core.generations.registry import Registry
from vector_sync.core.generations.spec import GenerationSpec, configured_spec
from vector_sync.core.ledger import Expected, LedgerRow, open_ledger
from vector_sync.core.settings import MigrationConfig
from vector_sync.core.store import Point, QdrantStore
from vector_sync.core.store.embedded import EmbeddedStore
from vector_sync.core.store.server import ServerStore
from vector_sync_tests.support import Project, counts, long_note


@pytest.fixture(params=["embedded", "client"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QdrantStore]:
    opened: QdrantStore = (EmbeddedStore.open(tmp_path / "qdrant", 0)
                           if request.param == "embedded"
                           else ServerStore(QdrantClient(path=str(tmp_path / "local"))))
    try:
        yield opened
    finally:
        opened.close()


def _fill(store: QdrantStore, name: str, marker: str, n: int = 20) -> None:
    store.create(name, 4)
    store.upsert(name, [Point(f"00000000-0000-0000-0000-{i:012d}", [1.0, i, 0.0, 0.5],
                              {"doc_id": f"d{i}", "gen": marker}) for i in range(n)])


def test_the_name_follows_its_pointer_for_every_call(store: QdrantStore) -> None:
    _fill(store, "c__aaaaaa", "a")
    _fill(store, "c__bbbbbb", "b", n=7)
    assert not store.exists("c")
    store.switch_alias("c", "c__aaaaaa")
    assert store.exists("c") and store.count("c", None) == 20
    assert {h.payload["gen"] for h in store.search("c", [1, 1, 0, 0], 5)} == {"a"}
    store.switch_alias("c", "c__bbbbbb")
    assert store.resolve("c") == "c__bbbbbb" and store.aliases() == {"c": "c__bbbbbb"}
    assert store.count("c", None) == 7 and store.vectors("c") == (4, "Cosine")
    store.upsert("c", [Point("00000000-0000-0000-0001-000000000000", [0, 1, 0, 0],
                             {"doc_id": "new", "gen": "b"})])
    assert store.count("c__bbbbbb", None) == 8 and store.count("c__aaaaaa", None) == 20
    assert sorted(store.collections()) == ["c__aaaaaa", "c__bbbbbb"]  # physical only
    assert store.copy_collection("c__aaaaaa", "copy") == 20
    assert {p.payload["gen"] for p in store.scroll("copy", None)} == {"a"}
    store.remove_alias("c")
    assert not store.exists("c")


def test_embedded_pointer_survives_reopening_and_readers_never_see_neither(
        tmp_path: Path) -> None:
    store = EmbeddedStore.open(tmp_path / "qdrant", 0)
    _fill(store, "c__aaaaaa", "a")
    _fill(store, "c__bbbbbb", "b")
    store.switch_alias("c", "c__aaaaaa")
    seen: list[set[str]] = []
    stop = threading.Event()

    def search() -> None:  # another thread of the process holding the storage
        while not stop.is_set():
            seen.append({h.payload["gen"] for h in store.search("c", [1, 1, 0, 0], 10)})

    thread = threading.Thread(target=search)
    thread.start()
    for target in ["c__bbbbbb", "c__aaaaaa"] * 25:
        store.switch_alias("c", target)
    stop.set()
    thread.join()
    assert seen and all(answer in ({"a"}, {"b"}) for answer in seen)
    store.close()
    reopened = EmbeddedStore.open(tmp_path / "qdrant", 0)
    assert reopened.resolve("c") == "c__aaaaaa"
    reopened.close()


def test_the_fingerprint_covers_model_folder_chunker_and_fields_not_payload() -> None:
    base = GenerationSpec("m", None, 256, 32, ("title", "body"))
    variants = [GenerationSpec("m2", None, 256, 32, ("title", "body")),
                GenerationSpec("m", "/models/copy", 256, 32, ("title", "body")),
                GenerationSpec("m", None, 128, 32, ("title", "body")),
                GenerationSpec("m", None, 256, 16, ("title", "body")),
                GenerationSpec("m", None, 256, 32, ("body",))]
    assert len({base.fingerprint, *(v.fingerprint for v in variants)}) == 6
    assert GenerationSpec.from_json(base.to_json()) == base
    assert base.physical("notes") == f"notes__{base.fingerprint[:6]}"
    assert base.differences(variants[2]) == [
        "chunking: 256/32 -> 128/32 (max/overlap tokens)"]
    assert base.same_model(variants[2]) and not base.same_model(variants[1])


def test_keep_old_is_a_duration() -> None:
    assert MigrationConfig(keep_old="90s").keep_old_s == 90
    assert MigrationConfig().keep_old_s == 24 * 3600
    assert MigrationConfig(keep_old="2d").keep_old_s == 2 * 86400
    with pytest.raises(ValueError, match="keep_old"):
        MigrationConfig(keep_old="tomorrow")


def _row(collection: str, doc_id: str) -> LedgerRow:
    return LedgerRow("s", collection, doc_id, "synced", "v", f"hash-{collection}", "p", 1,
                     "vv", 0, None, None, None, None, None)


def test_a_switch_swaps_the_ledger_rows_in_one_transaction(project: Project) -> None:
    config = load_config(project.config_file)
    spec = configured_spec(config, "notes")
    new = GenerationSpec(spec.model, None, 128, 16, spec.embed)
    with open_ledger(config.state) as ledger:
        ledger.upsert([_row("notes", "a"), _row("notes__new", "a"), _row("notes__new", "b")])
        ledger.update_expected("s", "notes__new", {"b": Expected("h", "p", 1)}, [])
        ledger.set_state("s", "collection_fingerprint:notes", "old-fp")
        ledger.set_state("s", "collection_fingerprint:notes__new", "new-fp")
    with Registry.open(config.state) as registry:
        registry.add("notes", "notes__old", spec, "serving")
        registry.add("notes", "notes__new", new, "building")
        serving, building = registry.serving("notes"), registry.building("notes")
        assert serving is not None and building is not None
        registry.swap("notes", serving, building, timedelta(hours=1))
        assert registry.serving("notes") == building._replace(
            state="serving", switched_at=registry.serving("notes").switched_at)  # type: ignore[union-attr]
        assert [g.physical for g in registry.retired("notes")] == ["notes__old"]
    with open_ledger(config.state) as ledger:
        assert set(ledger.rows("s", "notes")) == {"a", "b"}
        assert ledger.rows("s", "notes")["a"].content_hash == "hash-notes__new"
        assert ledger.rows("s", "notes__old")["a"].content_hash == "hash-notes"
        assert set(ledger.expected("s", "notes")) == {"b"}
        assert ledger.get_state("s", "collection_fingerprint:notes") == "new-fp"
        assert ledger.get_state("s", "collection_fingerprint:notes__old") == "old-fp"


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
def test_processes_recording_a_first_generation_at_once_keep_the_first(
        project: Project, ledger: str, request: pytest.FixtureRequest) -> None:
    # runs of two sources feeding one collection, started together, both find no generation
    # and both record it: the second must not fail its run
    if ledger == "postgresql":
        project.config["state"]["ledger_url"] = request.getfixturevalue("postgres_url")
        project.save()
    config = load_config(project.config_file)
    spec = configured_spec(config, "notes")
    other = GenerationSpec(spec.model, None, 128, 16, spec.embed)
    with Registry.open(config.state) as first, Registry.open(config.state) as second:
        assert first.serving("notes") is None and second.serving("notes") is None
        first.add("notes", "notes", spec, "serving")
        second.add("notes", "notes", other, "serving")
        serving = second.serving("notes")
    assert serving is not None and serving.fingerprint == spec.fingerprint


def _notes(project: Project) -> None:
    for i in range(3):
        project.note(f"long{i}.md", long_note(f"Long {i}", sections=2))
    project.note("short.md", "# Short\n\nShort note.\n")


@pytest.mark.parametrize("changed_at_upgrade", [False, True])
def test_a_collection_made_before_generations_is_adopted_in_place_without_embedding(
        project: Project, capsys: pytest.CaptureFixture[str], changed_at_upgrade: bool) -> None:
    """Adopted with the model and chunker its ledger rows record, even when the config
    changed in the same step as the upgrade: never rebuilt in place."""
    _notes(project)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["added"] == 4
    held = project.held()
    with sqlite3.connect(project.root / "state" / "ledger.sqlite") as db:  # an older version
        db.execute("DELETE FROM generations")
    chunking = {"max_tokens": 128, "overlap_tokens": 16}
    if changed_at_upgrade:
        project.config["collections"]["notes"]["chunking"] = chunking
        project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["chunks_embedded"] == 0
    code, status = project.cli("migrate", "status", capsys=capsys)
    assert status["collections"]["notes"]["serving"] == "notes"  # adopted as it is
    project.config["collections"]["notes"]["chunking"] = chunking
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["chunks_embedded"] == 0
    assert "chunking: 256/32 -> 128/16" in report["migration_pending"]["notes"]
    assert project.held() == held  # never rebuilt in place


def test_own_generations_are_never_unmanaged_and_cleanup_waits_for_keep_old(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _notes(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    project.config["collections"]["notes"]["chunking"] = {"max_tokens": 128,
                                                          "overlap_tokens": 16}
    project.config["migration"] = {"keep_old": "1h"}
    project.save()
    code, started = project.cli("migrate", "start", capsys=capsys)
    assert code == 0
    code, verified = project.cli("verify", capsys=capsys)
    assert code == 0 and verified["unmanaged"] == [] and verified["not_managed_here"] == []
    code, repaired = project.cli("repair", "--prune", capsys=capsys)
    assert code == 0
    building = started["collections"]["notes"]["building"]
    with project.qdrant() as store:
        assert store.count(building, None) > 0
    code, switched = project.cli("migrate", "switch", capsys=capsys)
    assert code == 0
    old = switched["collections"]["notes"]["retired"]
    code, cleaned = project.cli("migrate", "cleanup", capsys=capsys)
    assert cleaned["collections"]["notes"]["dropped"] == []  # kept for rollback for 1 h
    from vector_sync.core.generations import engine

    config = load_config(project.config_file)
    assert engine.cleanup(config, "notes", datetime.now(UTC) + timedelta(hours=2)) == [old]
    with project.qdrant() as store:
        assert not store.exists(old) and store.resolve("notes") == building
    code, status = project.cli("migrate", "status", capsys=capsys)
    assert status["collections"]["notes"]["retired"] == []
    code, rolled = project.cli("migrate", "rollback", capsys=capsys)
    assert code == 1 and "no earlier generation" in rolled["collections"]["notes"]["error"]
    assert project.cli("verify", capsys=capsys)[0] == 0




def test_with_auto_a_sync_starts_the_migration_itself(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _notes(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    project.config["collections"]["notes"]["chunking"] = {"max_tokens": 128,
                                                          "overlap_tokens": 16}
    project.config["migration"] = {"auto": True}
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["chunks_embedded"] == 0  # the serving one: as it was
    building = report["migrations_started"]["notes"]
    code, status = project.cli("migrate", "status", capsys=capsys)
    assert status["collections"]["notes"]["building"] == building
    assert status["collections"]["notes"]["state"] == "ready"


def test_a_new_generation_that_fails_verify_is_not_switched_to(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _notes(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    project.config["collections"]["notes"]["chunking"] = {"max_tokens": 128,
                                                          "overlap_tokens": 16}
    project.save()
    code, started = project.cli("migrate", "start", capsys=capsys)
    building = started["collections"]["notes"]["building"]
    with project.qdrant() as store:  # a point of the new generation lost
        lost = next(iter(store.scroll(building, None)))
        store.delete(building, [lost.id])
        serving = store.resolve("notes")
    code, refused = project.cli("migrate", "switch", capsys=capsys)
    error = refused["collections"]["notes"]["error"]
    assert code == 1 and f"verify of {building} failed" in error and "missing 1" in error
    with project.qdrant() as store:
        assert store.resolve("notes") == serving


class _MovedRightAfterResolving(ServerStore):
    """Injected fault: the collection is moved behind an alias (dropped, then the alias
    made) right after this search resolved its name, or between the drop and the alias."""

    def __init__(self, client: QdrantClient, gap_only: bool) -> None:
        super().__init__(client)
        self.gap_only, self.moved = gap_only, False

    def resolve(self, name: str) -> str:
        found = super().resolve(name)
        if not self.moved:
            self.moved = True
            mover = ServerStore(self.client)
            mover.drop("c")
            if not self.gap_only:
                mover.switch_alias("c", "c__x")
        elif self.gap_only and not self.aliases():
            ServerStore(self.client).switch_alias("c", "c__x")  # the alias comes a bit later
        return found


@pytest.mark.parametrize("gap_only", [False, True])
def test_a_server_search_racing_a_move_behind_an_alias_injected_finds_the_moved_points(
        tmp_path: Path, gap_only: bool) -> None:
    client = QdrantClient(path=str(tmp_path / "local"))
    try:
        _fill(ServerStore(client), "c", "a")
        ServerStore(client).copy_collection("c", "c__x")
        store = _MovedRightAfterResolving(client, gap_only)
        hits = store.search("c", [1, 1, 0, 0], 5)
        assert store.moved and len(hits) == 5 and store.resolve("c") == "c__x"
    finally:
        client.close()
