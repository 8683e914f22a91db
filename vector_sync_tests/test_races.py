"""Two syncs of one source at once: the second waits for the first (or, past
`state.lock_wait_s`, stops with a clear error) and never interleaves with it. And a note
edited or deleted while a sync runs (between listing and reading, or while it embeds): the
next sync has it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pytest

from vector_sync.definitions import build_definitions
from vector_sync.defs.jobs import SYNC_JOB
from vector_sync_tests.support import (
    Project,
    counts,
    long_note,
    start_sync,
    sync_stopped_at,
    wait_until_stopped,
)


@contextmanager
def _held_by_another_process(project: Project) -> Iterator[None]:
    """The source's lock, held by a process that is not this one (flock is per process)."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from vector_sync.config import StateConfig
        from vector_sync.core.locks import source_lock
        with source_lock(StateConfig(dir=Path({str(project.root / "state")!r})), "notes", 0):
            print("held", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.communicate("")


def test_two_cli_syncs_started_together_add_each_document_once(project: Project, capsys):
    for i in range(4):
        project.note(f"long{i}.md", long_note(f"Long {i}"))
    first, second = start_sync(project), start_sync(project)
    reports = []
    for process in (first, second):
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        reports.append(json.loads(out)["sources"]["notes"]["collections"]["notes"])
    assert sorted(r["added"] for r in reports) == [0, 4]  # one did it all, the other nothing
    assert sorted(r["unchanged"] for r in reports) == [0, 4]
    points = project.points()
    assert sum(r["chunks_embedded"] for r in reports) == sum(len(p) for p in points.values())
    code, report = project.cli("verify", capsys=capsys)
    assert code == 0 and report["ok"]


def test_a_sync_that_cannot_get_the_source_stops_with_a_clear_error_and_writes_nothing(
        project: Project, capsys):
    project.note("a.md", "# A\n\nApples.\n")
    project.config["state"]["lock_wait_s"] = 0.5
    project.save()
    with _held_by_another_process(project):
        code, report = project.cli("sync", capsys=capsys)
        assert code == 1
        assert "source 'notes' is being synced by process" in report["sources"]["notes"]["error"]
        result = build_definitions(str(project.config_file)).resolve_job_def(
            SYNC_JOB).execute_in_process(partition_key="notes", raise_on_error=False,
                                         instance=dg.DagsterInstance.ephemeral())
        assert not result.success  # a run from the UI or a sensor fails its step the same way
    assert project.points() == {}
    code, report = project.cli("sync", capsys=capsys)  # once it is free, the sync goes through
    assert code == 0 and counts(report)["added"] == 1


@pytest.mark.parametrize(("change", "point"), [
    ("edited", "snapshot.scanned"),  # listed with one version, read with another
    ("deleted", "snapshot.scanned"),  # listed, gone when read
    ("edited", "embed.batch"),  # read, then edited while its chunks are embedded
    ("deleted", "embed.batch"),
])
def test_a_note_changed_while_a_sync_runs_is_picked_up_by_the_next_sync(
        project: Project, capsys, change: str, point: str) -> None:
    for i in range(3):
        project.note(f"n{i}.md", f"# Note {i}\n\nThe first words of note {i}.\n")
    code, _ = project.cli("sync", capsys=capsys)
    assert code == 0
    for i in range(3):
        project.note(f"n{i}.md", f"# Note {i}\n\nThe second words of note {i}.\n")
    sync = sync_stopped_at(project, point)
    if change == "edited":
        project.note("n0.md", "# Note 0\n\nThe third words of note 0.\n")
    else:
        (project.vault / "n0.md").unlink()
    sync.send_signal(signal.SIGCONT)
    _, err = sync.communicate(timeout=300)
    assert "Traceback" not in err

    code, report = project.cli("sync", capsys=capsys)
    assert code == 0
    points = project.points()
    if change == "edited":
        assert "third words" in points["n0.md"][0]["text"]
    else:
        assert "n0.md" not in points
    assert all("second words" in points[f"n{i}.md"][0]["text"] for i in (1, 2))
    code, _ = project.cli("sync", capsys=capsys)  # and then it stays put
    assert code == 0
    code, found = project.cli("verify", capsys=capsys)
    assert code == 0 and found["ok"]


def _dagster_run_stopped_at(project: Project, point: str) -> subprocess.Popen[str]:
    """A run of the sync job as a sensor or the launchpad starts one (its own process, the
    in-process executor, no CLI around it), stopped by the fault hook at `point`."""
    from vector_sync.core.faults import STOP_ENV

    run = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import dagster as dg
        from vector_sync.definitions import build_definitions
        job = build_definitions({str(project.config_file)!r}).resolve_job_def({SYNC_JOB!r})
        result = job.execute_in_process(partition_key="notes",
                                        instance=dg.DagsterInstance.ephemeral())
        print("success" if result.success else "failure", flush=True)
        """)], env={**os.environ, STOP_ENV: point}, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    wait_until_stopped(run, point)
    return run


def test_a_cli_sync_waits_for_a_dagster_run_of_the_source_even_between_its_steps(
        project: Project, capsys):
    for i in range(3):
        project.note(f"n{i}.md", f"# Note {i}\n\nThe first words of note {i}.\n")
    project.config["state"]["lock_wait_s"] = 0.5
    project.save()
    # the run has listed and diffed the notes; its next step would embed them
    run = _dagster_run_stopped_at(project, "step.embeddings_notes")
    project.note("n0.md", "# Note 0\n\nThe second words of note 0.\n")
    code, report = project.cli("sync", capsys=capsys)
    # between the run's steps the source is still the run's: the CLI sync does not slip in
    assert code == 1
    assert "source 'notes' is being synced by process" in report["sources"]["notes"]["error"]
    assert project.points() == {}
    run.send_signal(signal.SIGCONT)
    out, err = run.communicate(timeout=300)
    assert out.strip() == "success", err[-3000:]
    assert "first words" in project.points()["n0.md"][0]["text"]  # the run's view of n0

    code, report = project.cli("sync", capsys=capsys)  # now it goes through, and has the edit
    assert code == 0 and counts(report)["updated"] == 1
    assert "second words" in project.points()["n0.md"][0]["text"]
    code, found = project.cli("verify", capsys=capsys)
    assert code == 0 and found["ok"]
