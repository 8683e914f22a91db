"""Fixtures shared by every test; the helpers they use are in vector_sync_tests.support."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError

from vector_sync_tests.support import PG_SERVER, Project, service_missing


@pytest.fixture(autouse=True)
def _ephemeral_dagster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # CLI runs use an ephemeral instance


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


# --- a real PostgreSQL server (running on every machine here, CI included) -----------------


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
