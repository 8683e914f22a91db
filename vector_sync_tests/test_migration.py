"""Model and chunker changes without downtime, through the real CLI: the configured name
keeps serving the old generation (and syncs keep updating it) while `migrate start` builds
the new one beside it; `migrate switch` catches up, verifies, gates and moves the pointer in
one step; `migrate rollback` moves it back. A searcher thread queries the configured name
the whole time: every answer comes from exactly one generation, none is empty.

Both engines: embedded Qdrant (qdrant-edge, pointer file), and the server API through
qdrant-client's local mode (Qdrant aliases), which every step of the same process reaches
through `ServerStore.connect`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from vector_sync.config import EmbeddingConfig, QdrantConfig, StateConfig, load_config
from vector_sync.core.faults import ENV
from vector_sync.core.generations.spec import configured_spec
from vector_sync.core.ledger import open_ledger
from vector_sync.core.store import open_store
from vector_sync.core.store.server import ServerStore
from vector_sync.core.text.embedder import Embedder
from vector_sync.core.text.model_files import default_model_dir
from vector_sync_tests.support import Project, counts, long_note

SERVER_URL = "http://qdrant-local-mode.invalid:6333"


class _Serialized:
    """One qdrant-client local-mode client for the whole process (local mode admits one
    opener), its calls serialized as a server would serialize requests."""

    def __init__(self, client: QdrantClient) -> None:
        self._client, self._lock = client, threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


class _SharedLocalMode(ServerStore):
    """The server engine over the shared client: closing a step's store leaves it open."""

    def close(self) -> None:
        pass


# the server API's variant runs in make test-slow (the store tests cover its pointer in
# make test); embedded storage's runs in both
@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.slow)])
def engine(request: pytest.FixtureRequest, project: Project,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "server":
        client = QdrantClient(path=str(project.root / "local-mode"))
        shared: Any = _Serialized(client)
        monkeypatch.setattr(ServerStore, "connect",
                            classmethod(lambda cls, qdrant: _SharedLocalMode(shared)))
        project.config["qdrant"] = {"url": SERVER_URL}
        project.save()
        yield "server"
        client.close()
    else:
        yield "embedded"


def _store(project: Project) -> Any:
    qdrant = QdrantConfig(url=project.config.get("qdrant", {}).get("url"))
    return open_store(qdrant, StateConfig(dir=project.root / "state"))


TOPICS = ("rivers", "mountains", "harbours", "forests", "deserts", "glaciers")


def _vault(project: Project) -> None:
    for i, topic in enumerate(TOPICS):
        project.note(f"long{i}.md", long_note(f"Long {i} about {topic}", sections=2 + i % 3))
    for i in range(3):
        project.note(f"short{i}.md", f"# Short {i}\n\nA short note number {i} on tea.\n")


def _hashes(project: Project, physical: str) -> set[str]:
    with _store(project) as store:
        return {p.payload["content_hash"] for p in store.scroll(physical, None)}


def _payloads(project: Project) -> list[dict[str, Any]]:
    with _store(project) as store:
        return [p.payload for p in store.scroll("notes", None)]


class Searcher(threading.Thread):
    """Queries the configured name in a loop; keeps each answer's content hashes."""

    def __init__(self, project: Project, vector: list[float]) -> None:
        super().__init__(daemon=True)
        self.project, self.vector = project, vector
        self.stop = threading.Event()
        self.answers: list[frozenset[str]] = []
        self.errors: list[BaseException] = []
        self.answered = threading.Condition()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with _store(self.project) as store:
                    hits = store.search("notes", self.vector, 8)
            except BaseException as error:  # noqa: BLE001 - reported by the test
                self.errors.append(error)
                return
            with self.answered:
                self.answers.append(frozenset(h.payload["content_hash"] for h in hits))
                self.answered.notify_all()
            self.stop.wait(0.05)  # pacing, so a step waiting for embedded storage gets it

    def answers_after(self, more: int) -> int:
        """Wait until `more` answers came after now; returns the count before them."""
        with self.answered:
            seen = len(self.answers)
            assert self.answered.wait_for(
                lambda: len(self.answers) >= seen + more or bool(self.errors), timeout=120)
            return seen


def _status(project: Project, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out = project.cli("migrate", "status", capsys=capsys)
    assert code == 0
    return dict(out["collections"]["notes"])


@pytest.mark.parametrize("change", ["chunking", pytest.param("model", marks=pytest.mark.slow)])
def test_a_change_is_built_beside_switched_atomically_and_rolled_back(
        project: Project, engine: str, change: str, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """`chunking`: 256 to 96 tokens (the short notes' one chunk is the same text: its vector
    is reused); `model`: a second configuration of the offline model (nothing reused)."""
    _vault(project)
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["added"] == 9
    before = _hashes(project, "notes")
    first_counts = {p["doc_id"]: p["chunk_count"] for p in _payloads(project)
                    if p["doc_id"] != "long0.md"}

    # the config changes: a sync keeps the old generation, and says so
    if change == "chunking":
        project.config["collections"]["notes"]["chunking"] = {"max_tokens": 96,
                                                              "overlap_tokens": 16}
    else:
        copy = tmp_path / "minilm-copy"
        shutil.copytree(default_model_dir(), copy)
        project.config["collections"]["notes"]["embedding"] = {
            "model": "local/minilm-copy", "model_path": str(copy)}
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["chunks_embedded"] == 0
    assert "migrate start" in report["migration_pending"]["notes"]
    assert _hashes(project, "notes") == before
    assert _status(project, capsys)["state"] == "pending"

    code, plan = project.cli("migrate", "plan", capsys=capsys)
    planned = plan["collections"]["notes"]
    reusable = 3 if change == "chunking" else 0  # the short notes: one identical chunk each
    assert code == 0 and planned["rebuild"] and change in planned["changes"][0]
    assert planned["chunks_to_reuse"] == reusable

    vector = Embedder(EmbeddingConfig()).embed(["rivers and mountains"])[0].tolist()
    searcher = Searcher(project, vector)
    searcher.start()
    try:
        code, started = project.cli("migrate", "start", capsys=capsys)
        assert code == 0, started
        built = started["collections"]["notes"]
        assert built["chunks_reused"] == reusable
        assert built["chunks_embedded"] == planned["chunks_to_embed"]
        status = _status(project, capsys)
        old, new = status["serving"], status["building"]
        assert status["state"] == "ready" and old.startswith("notes__") and new != old
        assert {k: status[k] for k in ("documents_done", "documents_total")} == {
            "documents_done": 9, "documents_total": 9}
        assert status["chunks_per_s"] > 0 and status["eta_s"] == 0
        generations = {"old": _hashes(project, old) | before, "new": _hashes(project, new)}
        searcher.answers_after(3)  # searched while the new generation was built beside

        # an edit during the migration: the sync updates the serving generation
        project.note("long0.md", long_note("Long 0 about rivers", sections=2)
                     + "\nThe zebra crossing of the estuary happens every Tuesday.\n")
        code, report = project.cli("sync", capsys=capsys)
        assert code == 0 and counts(report)["updated"] == 1
        generations["old"] |= _hashes(project, old)

        code, switched = project.cli("migrate", "switch", capsys=capsys)
        assert code == 0, switched
        gate = switched["collections"]["notes"]["gate"]
        assert gate["passed"] and gate["overlap"] >= 0.5 and gate["recall"] >= 0.8
        generations["new"] |= _hashes(project, new)
        assert _status(project, capsys)["serving"] == new
        code, verified = project.cli("verify", capsys=capsys)
        assert code == 0 and verified["ok"] and not verified["unmanaged"]
        code, hits = project.cli("search", "notes", "zebra crossing estuary Tuesday",
                                 capsys=capsys)
        assert hits[0]["doc_id"] == "long0.md" and "zebra" in hits[0]["text"]
        switched_at = searcher.answers_after(3)

        code, rolled = project.cli("migrate", "rollback", capsys=capsys)
        assert code == 0 and rolled["collections"]["notes"]["serving"] == old
        rolled_at = searcher.answers_after(3)
    finally:
        searcher.stop.set()
        searcher.join()
    assert not searcher.errors
    assert not generations["old"] & generations["new"]

    def which(answer: frozenset[str]) -> str:
        assert answer, "an empty answer"
        names = {name for name, hashes in generations.items() if answer <= hashes}
        assert len(names) == 1, f"an answer from a mix of generations: {answer}"
        return names.pop()

    sequence = [which(answer) for answer in searcher.answers]
    assert sequence[0] == "old" and sequence[-1] == "old"
    changes = [i for i in range(1, len(sequence)) if sequence[i] != sequence[i - 1]]
    assert len(changes) == 2  # old -> new at the switch, new -> old at the rollback
    assert changes[0] <= switched_at < changes[1] <= rolled_at

    # the rollback restored the old generation, with the edit made since
    code, verified = project.cli("verify", capsys=capsys)
    assert code == 0 and verified["ok"]
    assert _status(project, capsys)["state"] == "pending"
    with _store(project) as store:
        assert store.resolve("notes") == old
    held = _payloads(project)
    assert {p["doc_id"]: p["chunk_count"] for p in held
            if p["doc_id"] != "long0.md"} == first_counts  # 256-token chunks again
    assert "zebra" in " ".join(p["text"] for p in held if p["doc_id"] == "long0.md")


def test_model_change_embeds_everything_again_with_the_new_model(
        project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A second configuration of the offline model (the same files under another name and
    folder) is another model: nothing is reused, every chunk is embedded by it."""
    _vault(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    copy = tmp_path / "minilm-copy"
    shutil.copytree(default_model_dir(), copy)
    project.config["collections"]["notes"]["embedding"] = {"model": "local/minilm-copy",
                                                           "model_path": str(copy)}
    project.save()
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and counts(report)["chunks_embedded"] == 0
    assert "embedding.model" in report["migration_pending"]["notes"]
    code, started = project.cli("migrate", "start", capsys=capsys)
    built = started["collections"]["notes"]
    assert code == 0 and built["chunks_reused"] == 0
    with _store(project) as store:
        chunks = store.count("notes", None)
    assert built["chunks_embedded"] == chunks
    code, hits = project.cli("search", "notes", "glaciers", "--generation", "building",
                             capsys=capsys)
    assert code == 0 and hits[0]["doc_id"] == "long5.md"
    code, switched = project.cli("migrate", "switch", capsys=capsys)
    assert code == 0 and switched["collections"]["notes"]["gate"]["passed"]
    code, report = project.cli("sync", capsys=capsys)
    assert code == 0 and "migration_pending" not in report
    assert counts(report)["chunks_embedded"] == 0


def test_a_failing_gate_refuses_the_switch(project: Project,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The new generation embeds only `tags`: the short notes (no tags) are not in it, so a
    canary about one of them finds another document there; the gate says so, and the
    configured name keeps serving the old generation."""
    _vault(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    project.config["collections"]["notes"]["embed"] = ["tags"]
    project.config["migration"] = {"top_k": 1, "canaries": ["A short note number 1 on tea"]}
    project.save()
    assert project.cli("migrate", "start", capsys=capsys)[0] == 0
    status = _status(project, capsys)
    code, refused = project.cli("migrate", "switch", capsys=capsys)
    error = refused["collections"]["notes"]["error"]
    assert code == 1 and "quality gate failed: top-1 overlap 0.0 < min_overlap 0.5" in error
    assert _status(project, capsys)["serving"] == status["serving"]
    code, hits = project.cli("search", "notes", "tea", capsys=capsys)
    assert hits[0]["doc_id"].startswith("short")


# --- killed anywhere, resumed ------------------------------------------------------------------

KILLS = ["embed.batch@2", "qdrant.upsert.flushed@3", "ledger.group_synced@2",
         "migration.batch_done@2", "apply.checkpoint_recorded@3"]


def _cli_process(project: Project, *args: str,
                 kill_at: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV, "DAGSTER_HOME")}
    env[ENV] = kill_at
    return subprocess.run([sys.executable, "-m", "vector_sync.cli", *args, "--config",
                           str(project.config_file), "--json"],
                          env=env, capture_output=True, text=True, timeout=600)


def _model_change(project: Project, tmp_path: Path) -> str:
    """A model change (a second configuration of the offline model); returns the physical
    name of the generation it builds."""
    copy = tmp_path / "minilm-copy"
    shutil.copytree(default_model_dir(), copy)
    project.config["collections"]["notes"]["embedding"] = {"model": "local/minilm-copy",
                                                           "model_path": str(copy)}
    project.config["migration"] = {"batch_documents": 3}
    project.config["qdrant"] = {"batch_size": 4}
    project.save()
    return configured_spec(load_config(project.config_file), "notes").physical("notes")


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", KILLS)
def test_a_killed_migration_resumes_without_duplicates_or_embedding_twice(
        project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        kill_at: str) -> None:
    _vault(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    physical = _model_change(project, tmp_path)
    killed = _cli_process(project, "migrate", "start", kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with open_ledger(load_config(project.config_file).state) as ledger:
        recorded_chunks = sum(row.chunk_count for row in ledger.rows("notes", physical).values()
                              if row.status == "synced")
    with _store(project) as store:  # what Qdrant acknowledged, recorded in the ledger or not
        acknowledged = store.count(physical, None) if store.exists(physical) else 0
    assert acknowledged >= recorded_chunks
    recorded = _status(project, capsys)["chunks_embedded"]  # by the killed run's batches
    code, resumed = project.cli("migrate", "start", capsys=capsys)
    assert code == 0, resumed
    embedded = resumed["collections"]["notes"]["chunks_embedded"] - recorded
    with _store(project) as store:
        total = store.count(physical, None)
        chunk_counts = {p.payload["doc_id"]: p.payload["chunk_count"]
                        for p in store.scroll(physical, None)}
    assert total == sum(chunk_counts.values()) and len(chunk_counts) == 9  # no duplicate
    # nothing acknowledged before the kill was embedded again by the resumed run
    assert embedded <= total - acknowledged
    code, switched = project.cli("migrate", "switch", capsys=capsys)
    assert code == 0, switched
    code, verified = project.cli("verify", capsys=capsys)
    assert code == 0 and verified["ok"]


@pytest.mark.slow
def test_a_switch_killed_after_the_pointer_moved_is_finished_by_the_next_switch(
        project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _vault(project)
    assert project.cli("sync", capsys=capsys)[0] == 0
    physical = _model_change(project, tmp_path)
    assert project.cli("migrate", "start", capsys=capsys)[0] == 0
    killed = _cli_process(project, "migrate", "switch", kill_at="migration.pointer_switched")
    assert killed.returncode == -signal.SIGKILL
    assert _status(project, capsys)["state"] == "switching"
    code, refused = project.cli("sync", capsys=capsys)  # nothing writes it meanwhile
    assert code == 2 and "migrate switch --collection notes" in refused["error"]
    code, switched = project.cli("migrate", "switch", capsys=capsys)
    assert code == 0 and switched["collections"]["notes"]["serving"] == physical
    code, verified = project.cli("verify", capsys=capsys)
    assert code == 0 and verified["ok"]
