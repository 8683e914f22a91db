"""`plan` changes nothing on disk, whatever the source kind: after a first sync, and after an
edit in every source, each file of the state dir (the ledger, embedded Qdrant's storage, the
website's crawl cache, the Git clone) has the same bytes before and after it. One config
holds one small source of every built-in kind, each against the real thing: a vault, a Git
repository cloned from a URL, an MkDocs site served over HTTP, MongoDB over the wire
(SecantusDB) and SurrealDB embedded (surrealkv)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from sqlalchemy import create_engine, inspect, make_url
from surrealdb import RecordID, Surreal

from vector_sync.cli import main
from vector_sync.core.ledger import HEAD_REVISION
from vector_sync.core.ledger.db import with_installed_driver
from vector_sync_tests.support import Project, counts, long_note
from vector_sync_tests.support.doc_site import DocSite
from vector_sync_tests.support.git_repo import GitRepo
from vector_sync_tests.support.mongo_server import running_server
from vector_sync_tests.support.tcp_proxy import TcpProxy

KINDS = ("notes", "repo", "docs", "tools", "articles")  # source = collection, one per kind


def state_files(state: Path) -> dict[str, bytes]:
    """Every file under the state dir and its bytes. Lock files are left out: they hold only
    who last held them (any reader of embedded Qdrant takes its lock), never synced state."""
    return {str(path.relative_to(state)): path.read_bytes()
            for path in sorted(state.rglob("*")) if path.is_file() and path.suffix != ".lock"}


class EveryKind(Project):
    def __init__(self, root: Path, site: DocSite, mongo_uri: str) -> None:
        root.mkdir()
        super().__init__(root)
        self.origin = GitRepo(root / "origin.git", bare=True)
        self.work = GitRepo(root / "work")
        self.site = site
        self.mongo = MongoClient(mongo_uri)[f"db{uuid.uuid4().hex[:8]}"]["tools"]
        self.surreal_url = f"surrealkv://{root / 'surreal'}"
        with self.surreal() as db:
            db.query("DEFINE TABLE article CHANGEFEED 1d")
        embed = {"embed": ["title", "body"]}
        self.config["sources"] = {
            "notes": {"kind": "markdown", "path": "vault", "collections": ["notes"]},
            "repo": {"kind": "git", "repo": f"file://{self.origin.path}",
                     "collections": ["repo"]},
            "docs": {"kind": "website", "start_urls": [site.url], "rate_limit_per_s": 500,
                     "collections": ["docs"]},
            "tools": {"kind": "mongodb", "uri": mongo_uri, "database": self.mongo.database.name,
                      "collection": "tools", "collections": ["tools"]},
            "articles": {"kind": "surrealdb", "url": self.surreal_url, "namespace": "shop",
                         "database": "cms", "table": "article", "collections": ["articles"]},
        }
        self.config["collections"] = {kind: embed for kind in KINDS}
        self.save()

    def surreal(self) -> Any:
        db = Surreal(self.surreal_url)
        db.use("shop", "cms")
        return db

    def seed(self) -> None:
        self.note("long.md", long_note("Longform"))
        self.note("short.md", "# Short\n\nA short note.\n")
        self.work.commit("seed", {"a.md": "# Alpha\n\nApples.\n", "b.md": "# Bravo\n\nBread.\n"})
        self.work.git("push", "--quiet", self.origin.path, "main")
        self.site.create(notes=3)
        self.site.build()
        self.mongo.insert_many([{"_id": i, "title": f"Tool {i}", "body": f"Tool {i} helps."}
                                for i in range(3)])
        db = self.surreal()
        try:
            for i in range(3):
                db.query("CREATE $rid CONTENT $data", {"rid": RecordID("article", i), "data": {
                    "title": f"Article {i}", "body": f"Article {i} explains."}})
        finally:
            db.close()

    def edit(self) -> None:
        """An edit of every kind: a multi-chunk note edited (plan reads its chunks back from
        Qdrant), files, pages, documents and records changed, added and deleted."""
        self.note("long.md", long_note("Longform") + "\nOne more closing sentence.\n")
        (self.vault / "short.md").unlink()
        self.note("new.md", "A new note.\n")
        self.work.commit("edit", {"a.md": "# Alpha\n\nApples and pears.\n"}, remove=("b.md",))
        self.work.git("push", "--quiet", self.origin.path, "main")
        page = self.site.docs / (self.site.pages[-1].rstrip("/") + ".md")
        page.write_text(page.read_text() + "\nOne more paragraph.\n")
        self.site.write("new-page.md", "# New page\n\nFreshly written.\n")
        self.site.build()
        self.mongo.update_one({"_id": 0}, {"$set": {"body": "Tool 0 helps more."}})
        self.mongo.delete_one({"_id": 1})
        db = self.surreal()
        try:
            db.query("UPDATE article:0 SET body = 'Article 0 explains more.'")
            db.query("DELETE article:1")
        finally:
            db.close()


@pytest.fixture(scope="module")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(tmp_path_factory.mktemp("mongo")) as server:
        yield server.uri


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DocSite]:
    site = DocSite(tmp_path / "web")
    with site.serve():
        yield site


@pytest.fixture
def project(tmp_path: Path, site: DocSite, mongo_uri: str) -> EveryKind:
    return EveryKind(tmp_path / "project", site, mongo_uri)


def test_plan_writes_nothing_for_any_source_kind(project, capsys):
    project.seed()
    state = project.root / "state"
    code, planned = project.cli("plan", capsys=capsys)
    assert code == 0 and not state.exists()
    code, synced = project.cli("sync", capsys=capsys)
    assert code == 0 and planned == synced, synced
    assert (state / "website" / "docs.json").exists() and (state / "git" / "repo").is_dir()

    before = state_files(state)
    code, planned = project.cli("plan", capsys=capsys)
    assert code == 0 and all(counts(planned, kind, kind)["unchanged"] for kind in KINDS)
    assert state_files(state) == before

    project.edit()
    before = state_files(state)
    code, planned = project.cli("plan", capsys=capsys)
    assert code == 0
    for kind in KINDS:
        assert counts(planned, kind, kind)["updated"] == 1, kind
        assert counts(planned, kind, kind)["deleted"] + counts(planned, kind, kind)["added"], kind
    after = state_files(state)
    assert [name for name in before.keys() | after.keys()
            if before.get(name) != after.get(name)] == []
    code, _ = project.cli("status", capsys=capsys)
    assert code == 0 and state_files(state) == before
    code, synced = project.cli("sync", capsys=capsys)
    assert code == 0 and synced == planned


def _as_revision_0001(ledger: Path) -> None:
    """The ledger as the version before the `expected` table wrote it: Alembic's own
    downgrade, so every later table goes too."""
    from alembic import command
    from alembic.config import Config

    from vector_sync.core.ledger import MIGRATIONS_DIR

    engine = create_engine(f"sqlite:///{ledger}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    engine.dispose()
    assert "expected" not in _tables(f"sqlite:///{ledger}")


def test_plan_status_and_verify_refuse_an_old_ledger_schema_and_leave_it_as_it_is(
        tmp_path, capsys):
    project = Project(tmp_path)
    project.note("a.md", "# Alpha\n\nApples.\n")
    assert project.cli("sync", capsys=capsys)[0] == 0
    ledger = project.root / "state" / "ledger.sqlite"
    _as_revision_0001(ledger)
    before = state_files(project.root / "state")
    for command in ("plan", "status", "verify"):
        capsys.readouterr()
        code = main([command, "--config", str(project.config_file)])
        out = capsys.readouterr()
        message = out.out + out.err
        assert code != 0, command
        assert f"older than this version's ({HEAD_REVISION})" in message, message
        assert "vector-sync sync" in message, message
        assert state_files(project.root / "state") == before, command
    code, report = project.cli("sync", capsys=capsys)  # sync upgrades it, as before
    assert code == 0 and counts(report)["unchanged"] == 1


def _tables(url: str) -> list[str]:
    engine = create_engine(with_installed_driver(make_url(url)))
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_plan_and_status_on_postgresql_create_nothing_and_wait_out_an_outage(
        project_with_postgres, capsys):
    project, url, proxy = project_with_postgres
    project.note("a.md", "# Alpha\n\nApples.\n")
    code, planned = project.cli("plan", capsys=capsys)  # an empty database reads as empty
    assert code == 0 and counts(planned)["added"] == 1
    code, _ = project.cli("status", capsys=capsys)
    assert code == 0 and _tables(url) == []
    assert project.cli("sync", capsys=capsys)[0] == 0

    proxy.down()  # the server unreachable (a fault injected on purpose) for 2 s of the 60
    back = threading.Timer(2, proxy.up)
    back.start()
    try:
        code, planned = project.cli("plan", capsys=capsys)
    finally:
        back.join()
    assert code == 0 and counts(planned)["unchanged"] == 1, planned


@pytest.fixture
def project_with_postgres(tmp_path: Path, postgres_url: str
                          ) -> Iterator[tuple[Project, str, TcpProxy]]:
    url = make_url(postgres_url)
    proxy = TcpProxy(url.port or 5432)
    try:
        project = Project(tmp_path)
        project.config["state"]["ledger_url"] = url.set(port=proxy.port).render_as_string(False)
        project.config["state"]["ledger_outage_s"] = 60
        project.save()
        yield project, postgres_url, proxy
    finally:
        proxy.down()
