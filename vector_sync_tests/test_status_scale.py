"""`status` of an embedded SurrealDB store (surrealkv://) at any size: whether the source can
be read now is its folder being there and readable. Opening the store to ask would load an
index growing with the records, open it beside a running sync, and create an empty store at
a mistyped path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vector_sync_tests.test_surrealdb_sync import SurrealProject


@pytest.fixture
def project(tmp_path: Path) -> SurrealProject:
    return SurrealProject(tmp_path / "p")


def test_status_reports_a_missing_store_folder_and_creates_nothing(project, capsys):
    moved = project.root / "moved"
    project.config["sources"]["articles"]["url"] = f"surrealkv://{moved}"
    project.save()
    code, status = project.cli("status", capsys=capsys)
    error = status["sources"]["articles"]["error"]
    assert code == 1 and f"the store's folder {moved} does not exist" in error, error
    assert not moved.exists()  # opening the engine there would have made an empty store


def test_status_reports_a_store_path_that_is_a_file(project, capsys):
    a_file = project.root / "db.txt"
    a_file.write_text("not a store")
    project.config["sources"]["articles"]["url"] = f"surrealkv://{a_file}"
    project.save()
    code, status = project.cli("status", capsys=capsys)
    error = status["sources"]["articles"]["error"]
    assert code == 1 and f"the store's path {a_file} is not a folder" in error, error
    assert a_file.read_text() == "not a store"


def test_status_while_another_process_writes_the_store(project, capsys):
    """A sync holding the store open and writing: status says it can be read, and every
    record the writer committed is there afterwards."""
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from surrealdb import Surreal
        db = Surreal({project.url!r})
        db.use("shop", "cms")
        print("open", flush=True)
        for i in range(400):
            db.query("CREATE type::thing('article', $i) SET title = 'written'", {{"i": i}})
        db.close()
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "open\n"
        for _ in range(3):
            code, status = project.cli("status", capsys=capsys)
            assert code == 0 and status["sources"]["articles"]["error"] is None, status
    finally:
        assert writer.wait(timeout=60) == 0
    with project.db() as db:
        assert db.query("SELECT VALUE count() FROM article GROUP ALL") == [{"count": 400}]
