"""The distributed profile for real: a Dagster instance on a fresh PostgreSQL database
(deploy/dagster.yaml), two Celery workers on the local RabbitMQ (deploy/celery.yaml), a
PostgreSQL ledger, and runs of three sources (Markdown, Git, MongoDB over the wire), all at
once as a backfill over every source runs them, whose steps the workers execute. Qdrant
must then hold exactly what one process's syncs of the same sources hold, and `verify` must
find it consistent. A worker lost mid-shard is made up for by re-executing the run. And the
multiprocess executor, chosen the same way (`execution.executor`), runs each step in its own
process. `make test-slow`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pymongo import MongoClient

from vector_sync.cli.runner import reconstructable_sync
from vector_sync_tests.support import Project, long_note, service_missing
from vector_sync_tests.support.git_repo import GitRepo
from vector_sync_tests.support.mongo_server import running_server

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("notes", "docs", "tools")  # each feeds the collection of the same name
# one source's run in a process of its own (argv: config file, source); prints the run id
RUN_ONE = """
import sys
import dagster as dg
from vector_sync.cli.runner import reconstructable_sync
config_file, source = sys.argv[1:]
with dg.DagsterInstance.get() as instance, dg.execute_job(
        reconstructable_sync(config_file, source), instance=instance,
        tags={"dagster/partition": source, "vector_sync/source": source}) as result:
    print(result.run_id)
"""


@pytest.fixture
def broker() -> Iterator[str]:
    """The local RabbitMQ, in a virtual host of this test's own: workers of another test
    run on the same machine must not take this test's steps (they would run them against
    their own Dagster instance)."""
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as error:
        service_missing(f"RabbitMQ is not reachable at 127.0.0.1:5672 ({error})")
    vhost = f"vector_sync_test_{uuid.uuid4().hex[:10]}"
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*",
                                        ".*"]):
        subprocess.run([ctl, *args], check=True, capture_output=True, timeout=60)
    yield f"pyamqp://guest@127.0.0.1:5672/{vhost}"
    subprocess.run([ctl, "delete_vhost", vhost], capture_output=True, timeout=60)


def _three_sources(project: Project, repo: Path, mongo_uri: str, ledger_url: str | None,
                   executor: str, broker: str = "") -> None:
    for i in range(6):
        project.note(f"n{i}.md", long_note(f"Note {i}", sections=3))
    project.config["state"]["ledger_url"] = ledger_url
    # the vault's embedding in 4 shards: steps the two workers share
    project.config["execution"] = {"executor": executor, "broker": broker, "embed_shards": 4}
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


def _distributed_env(tmp_path: Path, project: Project, instance_db: str, broker: str,
                     monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """$DAGSTER_HOME with deploy/dagster.yaml on a fresh PostgreSQL database, for this
    process (monkeypatched) and for the workers (returned)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy/dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "DAGSTER_PG_URL": instance_db.replace("postgresql://", "postgresql+psycopg2://"),
           "VECTOR_SYNC_CELERY_BROKER": broker,
           # dagster-celery starts `celery` from the PATH
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
        monkeypatch.setenv(key, env[key])
    return env


def _start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A worker that is consuming when this returns: a run launched while a second worker
    is still importing Dagster would be taken whole by the first one."""
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-celery"), "worker", "start",
         "--app", "dagster_celery.app", "--config-yaml", str(REPO_ROOT / "deploy/celery.yaml"),
         "--name", name, "--", "--concurrency=1"],
        env=env, cwd=REPO_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)  # its own process group: the Celery children go with it
    deadline = time.monotonic() + 180  # a liveness guard, not a speed limit
    while " ready." not in log.read_text(errors="replace"):  # "<name>@<host> ready."
        if worker.poll() is not None or time.monotonic() > deadline:
            _stop([worker])
            pytest.fail(f"Celery worker {name} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return worker


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
        tmp_path: Path, new_postgres_database: Any, broker: str, monkeypatch: pytest.MonkeyPatch,
        capsys) -> None:
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
        _three_sources(project, repo.path, server.uri, new_postgres_database("ledger"), "celery",
                       broker)
        env = _distributed_env(tmp_path, project, new_postgres_database("dagster"), broker,
                           monkeypatch)
        workers = [_start_worker(f"w{i}-{uuid.uuid4().hex[:6]}", env, tmp_path / f"w{i}.log")
                   for i in (1, 2)]
        try:
            # the three runs at once, each its own process, as the daemon launches a
            # backfill over every source (one run per source)
            launched = [subprocess.Popen(
                [sys.executable, "-c", RUN_ONE, str(project.config_file), source], env=env,
                cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for source in SOURCES]
            outcomes = [process.communicate(timeout=600) for process in launched]
            run_ids = [out.split()[-1] for out, _ in outcomes]
            with dg.DagsterInstance.get() as instance:
                runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
                step_pids = {event.dagster_event.pid for run_id in run_ids
                             for event in instance.all_logs(
                                 run_id, of_type=dg.DagsterEventType.STEP_START)
                             if event.dagster_event is not None}
                shard_steps = {(run_id, event.step_key) for run_id in run_ids
                               for event in instance.all_logs(
                                   run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
                               if "_shard[" in (event.step_key or "")}
                spans = [(instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)[0]
                          .timestamp, instance.all_logs(
                              run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)[0].timestamp)
                         for run_id in run_ids]
        finally:
            _stop(workers)
        logs = "\n".join((tmp_path / f"w{i}.log").read_text(errors="replace") for i in (1, 2))
        assert all(run is not None and run.is_success for run in runs), (outcomes, logs[-5000:])
        assert max(start for start, _ in spans) < min(end for _, end in spans)  # all at once
        assert os.getpid() not in step_pids and len(step_pids) >= 2, step_pids  # both workers
        assert len(shard_steps) == 4 * 3  # each source's collection embedded in 4 shards
        assert {c: project.held(c) for c in SOURCES} == {c: alone.held(c) for c in SOURCES}
        for source in SOURCES:
            code, found = project.cli("verify", "--source", source, capsys=capsys)
            assert code == 0 and found["ok"], found


def _run(instance: dg.DagsterInstance, project: Project, source: str) -> dg.ExecuteJobResult:
    """A run of one source's sync through the instance, as the daemon would launch it."""
    with dg.execute_job(reconstructable_sync(str(project.config_file), source),
                        instance=instance,
                        tags={"dagster/partition": source, "vector_sync/source": source}
                        ) as result:
        return result


@pytest.mark.timeout(600)
def test_the_multiprocess_executor_is_a_config_choice_and_runs_each_step_apart(
        tmp_path: Path, capsys) -> None:
    project = Project(tmp_path)
    for i in range(3):
        project.note(f"n{i}.md", f"# Note {i}\n\nThe words of note {i}.\n")
    # two shards at once, and no waiting for the source's lock: a step that took the lock
    # for its whole process (as the in-process run does) would stop the other shard
    project.config["execution"] = {"executor": "multiprocess", "max_concurrent": 2,
                                   "embed_shards": 2}
    project.config["state"]["lock_wait_s"] = 0
    project.save()
    with dg.instance_for_test() as instance:  # a temporary on-disk instance
        run = _run(instance, project, "notes")
        pids = {event.dagster_event.pid for event in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.STEP_START) if event.dagster_event}
    assert run.success
    assert len(pids) >= 4 and os.getpid() not in pids  # a process per step
    assert sorted(project.points()) == ["n0.md", "n1.md", "n2.md"]
    code, found = project.cli("verify", capsys=capsys)
    assert code == 0 and found["ok"]


@pytest.mark.timeout(900)
def test_a_worker_killed_mid_shard_is_made_up_for_by_the_runs_retry(
        tmp_path: Path, new_postgres_database: Any, broker: str, monkeypatch: pytest.MonkeyPatch,
        capsys) -> None:
    """Worker A's step process dies (SIGKILL, the fault hook) while it embeds its first
    shard; the run fails and stops scheduling. With A gone and worker B up, the run is
    re-executed from the failure (what `dagster/max_retries` or the UI's "re-execute from
    failure" does): the steps that had finished are not run again, the shards are, and
    Qdrant ends up exactly as one process's sync leaves it."""
    from vector_sync.core.faults import ENV as KILL_AT

    (tmp_path / "alone").mkdir()
    alone = Project(tmp_path / "alone")
    (tmp_path / "distributed").mkdir()
    project = Project(tmp_path / "distributed")
    for each in (alone, project):
        for i in range(6):
            each.note(f"n{i}.md", long_note(f"Note {i}", sections=3))
    code, _ = alone.cli("sync", capsys=capsys)
    assert code == 0
    project.config["state"]["ledger_url"] = new_postgres_database("ledger")
    project.config["execution"] = {"executor": "celery", "broker": broker, "embed_shards": 4}
    project.save()
    env = _distributed_env(tmp_path, project, new_postgres_database("dagster"), broker,
                           monkeypatch)

    doomed = _start_worker(f"a-{uuid.uuid4().hex[:6]}", {**env, KILL_AT: "embed.batch"},
                           tmp_path / "a.log")
    try:
        with dg.DagsterInstance.get() as instance:
            failed = _run(instance, project, "notes")
    finally:
        _stop([doomed])
    assert not failed.success
    assert project.points() == {}  # the Qdrant step never ran

    survivor = _start_worker(f"b-{uuid.uuid4().hex[:6]}", env, tmp_path / "b.log")
    try:
        with dg.DagsterInstance.get() as instance, dg.execute_job(
                reconstructable_sync(str(project.config_file), "notes"), instance=instance,
                tags=failed.dagster_run.tags,
                reexecution_options=dg.ReexecutionOptions.from_failure(
                    failed.run_id, instance)) as retried:
            rerun = {event.step_key for event in instance.all_logs(
                retried.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
            why = [str(getattr(e.dagster_event.event_specific_data, "error", None))
                   for e in instance.all_logs(retried.run_id) if e.dagster_event is not None
                   and e.dagster_event.is_failure]
    finally:
        _stop([survivor])
    assert retried.success, why
    # what had finished (listing, diff) is not run again; the shards and what follows are
    assert "source_snapshot" not in rerun and "changes_notes" not in rerun
    assert {f"embeddings_notes.embed_notes_shard[shard_{i}]" for i in range(4)} <= rerun
    assert "qdrant_notes" in rerun
    assert project.held() == alone.held()  # no duplicates, no gaps
    code, found = project.cli("verify", capsys=capsys)
    assert code == 0 and found["ok"], found
