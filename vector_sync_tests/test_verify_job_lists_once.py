"""The Dagster verify job lists each source once, however many collections it feeds (as
`vector-sync verify` does), and still reports each collection's checks on its own. The
source is the real Markdown source, subclassed to count its listings (an injected probe)."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from vector_sync.core.hashing import point_id
from vector_sync.definitions import build_definitions
from vector_sync.defs.jobs import VERIFY_JOB
from vector_sync.sources import REGISTRY
from vector_sync_tests.support import Project
from vector_sync_tests.test_verify_sample import ASKED, ProbedConfig


@pytest.fixture
def fanned_out(project: Project, capsys: pytest.CaptureFixture[str]) -> Iterator[Project]:
    REGISTRY.register("probed_markdown", ProbedConfig)
    project.config["sources"]["notes"].update(kind="probed_markdown",
                                              collections=["notes", "titles"])
    project.config["collections"]["titles"] = {"embed": ["title"]}
    project.save()
    for i in range(6):
        project.note(f"n{i}.md", f"# Note {i}\n\nNote {i} is short.\n")
    assert project.cli("sync", capsys=capsys)[0] == 0
    ASKED["scan"].clear()
    yield project
    REGISTRY.unregister("probed_markdown")


def test_the_verify_job_lists_a_source_once_for_all_its_collections(fanned_out):
    with fanned_out.qdrant() as store:
        store.delete("titles", [point_id("notes", "n2.md", 0)])
    result = build_definitions(str(fanned_out.config_file)).resolve_job_def(
        VERIFY_JOB).execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                       raise_on_error=False)
    assert ASKED["scan"] == ["notes"]  # one listing for both collections
    consistent = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()
                  if e.check_name == "consistent_with_source"}
    assert consistent["qdrant_notes"].passed
    assert not consistent["qdrant_titles"].passed
    assert consistent["qdrant_titles"].metadata["missing"].value == 1
    assert consistent["qdrant_notes"].metadata["checked"].value == 6
    # nothing is left behind for a later run
    assert not list((fanned_out.root / "state" / "verify_runs").glob("*/*.pickle"))
