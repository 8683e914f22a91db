"""The distributed profile for real: a Dagster instance on a fresh PostgreSQL database
(deploy/dagster.yaml), two Celery workers on the local RabbitMQ (deploy/celery.yaml), a
PostgreSQL ledger, and runs of three sources (Markdown, Git, MongoDB over the wire) whose
steps the workers execute. Qdrant must then hold exactly what one process's syncs of the
same sources hold, and `verify` must find it consistent. And the multiprocess executor,
chosen the same way (`execution.executor`), runs each step in its own process.
`make test-slow`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pymongo import MongoClient
from sqlalchemy import Engine

from vector_sync.defs.jobs import SYNC_JOB, sync_assets
from vector_sync_tests.conftest import Project, long_note
from vector_sync_tests.git_repo import GitRepo
from vector_sync_tests.mongo_server import running_server

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
BROKER = "pyamqp://guest@127.0.0.1:5672//"
SOURCES = ("notes", "docs", "tools")


def sync_job() -> dg.JobDefinition:
    """The project's sync job, by module path: what each worker rebuilds to run a step
    (the config comes from $VECTOR_SYNC_CONFIG, as for `dagster dev`)."""
    from vector_sync.definitions import build_definitions

    return build_definitions().resolve_job_def(SYNC_JOB)


@pytest.fixture
def database(postgres_admin: Engine) -> Iterator[Any]:
    """Fresh PostgreSQL databases by name, dropped afterwards."""
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


def _rabbitmq_or_skip() -> None:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as error:
        pytest.skip(f"RabbitMQ is not reachable at 127.0.0.1:5672 ({error})")


def _three_sources(project: Project, repo: Path, mongo_uri: str, ledger_url: str | None,
                   executor: str) -> None:
    for i in range(6):
        project.note(f"n{i}.md", long_note(f"Note {i}", sections=3))
    project.config["state"]["ledger_url"] = ledger_url
    project.config["execution"] = {"executor": executor, "broker": BROKER}
    project.config["sources"] = {
        "notes": {"kind": "markdown", "path": "vault", "collections": ["notes"]},
        "docs": {"kind": "git", "repo": str(repo), "branch": "main", "collections": ["docs"]},
        "tools": {"kind": "mongodb", "uri": mongo_uri, "database": "db",
                  "collection": "tools", "collections": ["tools"]},
    }
    project.config["collections"] = {
        "notes": {"embed": ["title", "body"], "payload": ["tags", "path"]},
        "docs": {"embed": ["title", "body"], "payload": ["path", "commit"]},
        "tools": {"embed": ["name", "description"], "payload": ["website"]},
    }
    project.save()


def _held(project: Project) -> dict[str, Any]:
    """Collection -> point id -> (payload without synced_at, vector rounded)."""
    with project.qdrant() as store:
        return {c: {p.id: ({k: v for k, v in p.payload.items() if k != "synced_at"},
                           [round(x, 4) for x in p.vector or []])
                    for p in store.scroll(c, None, with_vectors=True)}
                for c in ("notes", "docs", "tools")}


def _start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-celery"), "worker", "start",
         "--app", "dagster_celery.app", "--config-yaml", str(REPO_ROOT / "deploy/celery.yaml"),
         "--name", name, "--", "--concurrency=1"],
        env=env, cwd=REPO_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)  # its own process group: the Celery children go with it


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


@pytest.mark.timeout(900)
def test_three_sources_run_on_two_celery_workers_and_hold_what_one_process_holds(
        tmp_path: Path, database: Any, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _rabbitmq_or_skip()
    with running_server(tmp_path / "mongo") as server, MongoClient(server.uri) as client:
        client["db"]["tools"].insert_many([
            {"_id": i, "name": f"Tool {i}", "description": f"Tool {i} does task {i} well.",
             "website": f"https://tool{i}.example"} for i in range(5)])
        repo = GitRepo(tmp_path / "repo")
        repo.commit("docs", {f"d{i}.md": f"# Doc {i}\n\nDocument {i} of the repository.\n"
                             for i in range(4)})

        # what one process holds: the CLI's syncs, SQLite ledger, its own state dir
        (tmp_path / "alone").mkdir()
        alone = Project(tmp_path / "alone")
        _three_sources(alone, repo.path, server.uri, None, "in_process")
        for source in SOURCES:
            code, report = alone.cli("sync", "--source", source, capsys=capsys)
            assert code == 0, report

        # the same sources through the PostgreSQL instance and two Celery workers
        (tmp_path / "distributed").mkdir()
        project = Project(tmp_path / "distributed")
        _three_sources(project, repo.path, server.uri, database("ledger"), "celery")
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(REPO_ROOT / "deploy/dagster.yaml", home / "dagster.yaml")
        instance_db = database("dagster").replace("postgresql://", "postgresql+psycopg2://")
        env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": instance_db,
               "VECTOR_SYNC_CONFIG": str(project.config_file),
               "VECTOR_SYNC_CELERY_BROKER": BROKER,
               # dagster-celery starts `celery` from the PATH
               "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
               "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL", "VECTOR_SYNC_CONFIG"):
            monkeypatch.setenv(key, env[key])
        workers = [_start_worker(f"w{i}-{uuid.uuid4().hex[:6]}", env, tmp_path / f"w{i}.log")
                   for i in (1, 2)]
        try:
            with dg.DagsterInstance.get() as instance:
                runs = [_run(instance, project, source) for source in SOURCES]
                step_pids = {event.dagster_event.pid for run in runs
                             for event in instance.all_logs(
                                 run.run_id, of_type=dg.DagsterEventType.STEP_START)
                             if event.dagster_event is not None}
        finally:
            _stop(workers)
        logs = "\n".join((tmp_path / f"w{i}.log").read_text(errors="replace") for i in (1, 2))
        assert all(run.success for run in runs), logs[-5000:]
        assert os.getpid() not in step_pids and len(step_pids) >= 2, step_pids  # both workers
        assert _held(project) == _held(alone)
        for source in SOURCES:
            code, found = project.cli("verify", "--source", source, capsys=capsys)
            assert code == 0 and found["ok"], found


def _run(instance: dg.DagsterInstance, project: Project, source: str) -> dg.ExecuteJobResult:
    """A run of one source's sync through the instance, as the daemon would launch it."""
    from vector_sync.config import load_config

    config = load_config(project.config_file)
    with dg.execute_job(
            dg.reconstructable(sync_job), instance=instance,
            tags={"dagster/partition": source, "vector_sync/source": source},
            asset_selection=sync_assets(config, source)) as result:
        return result


@pytest.mark.timeout(600)
def test_the_multiprocess_executor_is_a_config_choice_and_runs_each_step_apart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    project = Project(tmp_path)
    for i in range(3):
        project.note(f"n{i}.md", f"# Note {i}\n\nThe words of note {i}.\n")
    project.config["execution"] = {"executor": "multiprocess", "max_concurrent": 2}
    project.save()
    monkeypatch.setenv("VECTOR_SYNC_CONFIG", str(project.config_file))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    with dg.instance_for_test() as instance:  # a temporary on-disk instance
        run = _run(instance, project, "notes")
        pids = {event.dagster_event.pid for event in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.STEP_START) if event.dagster_event}
    assert run.success
    assert len(pids) >= 4 and os.getpid() not in pids  # a process per step
    assert sorted(project.points()) == ["n0.md", "n1.md", "n2.md"]
    code, found = project.cli("verify", capsys=capsys)
    assert code == 0 and found["ok"]
