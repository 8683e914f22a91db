"""Secrets stay secret: a MongoDB password, a Qdrant API key, a Git token and a PostgreSQL
password, each given through the environment, are looked for in everything the product
writes or prints while syncs succeed and fail: the CLI's stdout and stderr of every command,
every file under the project (the state dir's Parquet files and clones, the Dagster
instance's run and event storage), and every row of the PostgreSQL ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import yaml
from pymongo import MongoClient
from sqlalchemy import create_engine, inspect, make_url, text

from vector_sync.core.ledger.db import with_installed_driver
from vector_sync_tests.support import Project
from vector_sync_tests.test_mongodb_sync import mongo  # noqa: F401 - the fixture

SECRETS = {"MONGO_PW": "m0ngo-S3cret-pw", "QDRANT_API_KEY": "qdr4nt-S3cret-key",
           "GIT_TOKEN": "g1t-S3cret-token", "PG_PW": "pg-S3cret-pw"}
CLOSED_PORT = 9  # nothing listens there: connections are refused at once


def _config(project: Project, mongo_uri: str, ledger_url: str, qdrant: dict[str, Any]) -> None:
    host_port = mongo_uri.removeprefix("mongodb://").rstrip("/")
    project.config.update({
        "state": {"dir": "state", "ledger_url": ledger_url.replace(
            "postgresql://postgres@", "postgresql://postgres:${PG_PW}@")},
        "qdrant": qdrant,
        "retry": {"step_retries": 0},  # a Qdrant that is down fails at once
        "sources": {
            "notes": {"kind": "markdown", "path": "vault", "collections": ["notes"]},
            "tools": {"kind": "mongodb", "uri": f"mongodb://reader:${{MONGO_PW}}@{host_port}/",
                      "database": "secrets", "collection": "tools", "collections": ["tools"]},
            "repo": {"kind": "git", "repo": f"https://bot:${{GIT_TOKEN}}@127.0.0.1:{CLOSED_PORT}"
                     "/team/docs.git", "collections": ["notes"]},
        },
        "collections": {"notes": {"embed": ["title", "body"]},
                        "tools": {"embed": ["name", "description"]}},
    })
    project.config_file.write_text(yaml.safe_dump(project.config))


def _cli(project: Project, *args: str) -> str:
    env = {**os.environ, **SECRETS, "DAGSTER_HOME": str(project.root / "dagster_home")}
    done = subprocess.run([sys.executable, "-m", "vector_sync.cli", *args, "--config",
                           str(project.config_file)], env=env, capture_output=True, text=True,
                          timeout=600)
    return f"$ {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


def test_no_secret_appears_in_any_output_file_or_ledger_row(
        project: Project, mongo: MongoClient[dict[str, Any]],  # noqa: F811
        postgres_url: str) -> None:
    host, port = mongo.address  # type: ignore[misc]
    mongo["secrets"]["tools"].insert_many(
        [{"name": f"Tool {i}", "description": f"Tool {i} does things."} for i in range(3)])
    (project.root / "dagster_home").mkdir()
    project.note("a.md", "# Apples\n\nApples are red.\n")
    _config(project, f"mongodb://{host}:{port}/", postgres_url, {})
    outputs = [_cli(project, command) for command in ("sync", "plan", "status", "verify")]
    outputs.append(_cli(project, "repair"))
    outputs.append(_cli(project, "search", "notes", "apples"))
    _config(project, f"mongodb://{host}:{port}/", postgres_url,
            {"url": f"http://127.0.0.1:{CLOSED_PORT}", "api_key": "${QDRANT_API_KEY}",
             "timeout_s": 2})
    project.note("b.md", "# Bananas\n\nBananas are yellow.\n")
    outputs += [_cli(project, command) for command in ("sync", "verify", "status")]
    outputs.append(_cli(project, "search", "notes", "bananas"))

    printed = "\n".join(outputs)
    assert "-> 0" in outputs[0] or "notes" in outputs[0]  # the commands really ran
    assert "reader:***@" in printed and "bot:***@" in printed  # named, masked
    assert "Connection refused" in printed or "could not" in printed.lower()
    leaks = [name for name, secret in SECRETS.items() if secret in printed]
    assert not leaks, f"printed: {leaks}\n{printed[-4000:]}"

    files = [p for p in project.root.rglob("*") if p.is_file() and p != project.config_file]
    assert any(p.suffix == ".parquet" for p in files)
    assert any("dagster_home" in p.parts for p in files)  # the instance stored the runs
    leaked_files = [str(p) for p in files for secret in SECRETS.values()
                    if secret.encode() in p.read_bytes()]
    assert not leaked_files, leaked_files

    engine = create_engine(with_installed_driver(make_url(postgres_url)))
    try:
        with engine.connect() as conn:
            rows = [str(row) for table in inspect(conn).get_table_names()
                    for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
    finally:
        engine.dispose()
    assert any("notes" in row for row in rows)
    assert not [row for row in rows for secret in SECRETS.values() if secret in row]
