"""Shared fixtures: a real vault on disk, a config pointing at it, and readers of what
embedded Qdrant actually holds after a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError

from vector_sync.cli import main
from vector_sync.config import QdrantConfig, StateConfig
from vector_sync.core.store import QdrantStore, open_store


def service_missing(reason: str) -> None:
    """A local service (or capability) a test needs is not there: a skip on a developer's
    machine, a failure under CI=true, where every one of them must be running."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: every local service must be available)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _ephemeral_dagster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # CLI runs use an ephemeral instance


def write_note(vault: Path, rel: str, text: str) -> Path:
    path = vault / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def long_note(title: str, sections: int = 4, words: int = 180) -> str:
    """A note long enough for several 256-token chunks."""
    parts = [f"---\ntitle: {title}\ntags: [long]\n---\n# {title}\n"]
    for s in range(sections):
        sentence = f"Section {s} of {title} explains topic {s} in detail with example {s}. "
        parts.append(f"## Part {s}\n\n" + sentence * (words // 12) + "\n")
    return "\n".join(parts)


class Project:
    """A vault plus config in a temp folder, driven through the real CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.vault = root / "vault"
        self.vault.mkdir()
        self.config_file = root / "vector_sync.yaml"
        self.config: dict[str, Any] = {
            "state": {"dir": "state"},
            "sources": {"notes": {"kind": "markdown", "path": "vault",
                                  "collections": ["notes"]}},
            "collections": {"notes": {"embed": ["title", "body"],
                                      "payload": ["tags", "path"]}},
        }
        self.save()

    @classmethod
    def at(cls, root: Path) -> Project:
        """A project already on disk, e.g. a copy of another one taken after a sync."""
        project = cls.__new__(cls)
        project.root, project.vault = root, root / "vault"
        project.config_file = root / "vector_sync.yaml"
        project.config = yaml.safe_load(project.config_file.read_text())
        return project

    def save(self) -> None:
        self.config_file.write_text(yaml.safe_dump(self.config))

    def note(self, rel: str, text: str) -> Path:
        return write_note(self.vault, rel, text)

    def cli(self, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
        capsys.readouterr()
        code = main([*args, "--config", str(self.config_file), "--json"])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else None

    def points(self, collection: str = "notes") -> dict[str, list[dict[str, Any]]]:
        """doc_id -> payloads of its points, sorted by chunk_index, read from Qdrant."""
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with self.qdrant() as store:
            for point in store.scroll(collection, None):
                found[point.payload["doc_id"]].append(point.payload)
        return {d: sorted(p, key=lambda x: x["chunk_index"]) for d, p in found.items()}

    def held(self, collection: str = "notes") -> dict[str, Any]:
        """Point id -> (payload without synced_at, vector rounded): what Qdrant holds, to
        compare with another sync of the same data."""
        with self.qdrant() as store:
            return {p.id: ({k: v for k, v in p.payload.items() if k != "synced_at"},
                           [round(x, 4) for x in p.vector or []])
                    for p in store.scroll(collection, None, with_vectors=True)}

    def qdrant(self) -> AbstractContextManager[QdrantStore]:
        """The project's embedded Qdrant, opened the way a run opens it."""
        return open_store(QdrantConfig(), StateConfig(dir=self.root / self.config["state"]["dir"]))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def counts(report: dict[str, Any], source: str = "notes",
           collection: str = "notes") -> dict[str, int]:
    return report["sources"][source]["collections"][collection]


# --- a real PostgreSQL server (running on every machine here, CI included) -----------------

PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    engine = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except OperationalError as error:
        engine.dispose()
        service_missing(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({error.orig})")
    yield engine
    engine.dispose()


@pytest.fixture
def new_postgres_database(postgres_admin: Engine) -> Iterator[Callable[[str], str]]:
    """Fresh, empty databases on demand (the argument names their purpose), dropped
    afterwards."""
    made: list[str] = []

    def new(purpose: str) -> str:
        name = f"vector_sync_{purpose}_{uuid.uuid4().hex[:10]}"
        with postgres_admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    yield new
    with postgres_admin.connect() as conn:
        for name in made:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(new_postgres_database: Callable[[str], str]) -> str:
    """A fresh, empty database, dropped afterwards."""
    return new_postgres_database("test")


def is_stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP, e.g. by VECTOR_SYNC_FAULT_STOP_AT)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def start_sync(project: Project, **env: str) -> subprocess.Popen[str]:
    """`vector-sync sync --json` of the project as its own process (no Dagster instance),
    with extra environment variables such as the fault hook's."""
    base = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    return subprocess.Popen([sys.executable, "-m", "vector_sync.cli", "sync", "--config",
                             str(project.config_file), "--json"], env={**base, **env},
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sync_stopped_at(project: Project, point: str) -> subprocess.Popen[str]:
    """A sync process stopped by the fault hook at `point`; SIGCONT lets it go on."""
    from vector_sync.core.faults import STOP_ENV

    sync = start_sync(project, **{STOP_ENV: point})
    wait_until_stopped(sync, point)
    return sync


def wait_until_stopped(process: subprocess.Popen[str], point: str) -> None:
    deadline = time.monotonic() + 300
    while not is_stopped(process.pid):
        if process.poll() is not None or time.monotonic() > deadline:
            _, err = process.communicate()
            raise AssertionError(f"never reached {point}: {err[-3000:]}")
        time.sleep(0.1)
