"""The operator jobs' launchpads, read through Dagster's GraphQL API with the queries the
UI's launchpad sends: what the editor holds when the launchpad opens and once a partition is
picked, and what a run launched with it does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from vector_sync.core.hashing import point_id
from vector_sync.definitions import build_definitions
from vector_sync.defs.jobs import REPAIR_JOB, RETRY_JOB, SYNC_JOB, TAG_DOCUMENTS
from vector_sync_tests.support import Project

# the launchpad's editor when it opens: the defaults of the job's run config schema
OPENED = """
query ($selector: PipelineSelector!) {
  runConfigSchemaOrError(selector: $selector) { ... on RunConfigSchema { rootDefaultYaml } }
}"""
# what picking a partition merges into the editor
PICKED = """
query ($repositorySelector: RepositorySelector!, $partitionSetName: String!,
       $partitionName: String!) {
  partitionSetOrError(repositorySelector: $repositorySelector,
                      partitionSetName: $partitionSetName) {
    ... on PartitionSet {
      partition(partitionName: $partitionName) {
        runConfigOrError { ... on PartitionRunConfig { yaml } }
      }
    }
  }
}"""


@pytest.fixture
def launchpad(project: Project, tmp_path: Path) -> Iterator[Any]:
    """A GraphQL context over the project's definitions, loaded by a code server as the
    webserver loads them."""
    code = tmp_path / "location.py"
    code.write_text("from vector_sync.definitions import build_definitions\n"
                    f"defs = build_definitions({str(project.config_file)!r})\n")
    with dg.instance_for_test() as instance, define_out_of_process_context(
            str(code), "defs", instance) as context:
        yield context


def _op_config(text: str, op: str = "source_snapshot") -> dict[str, Any]:
    return (yaml.safe_load(text) or {}).get("ops", {}).get(op, {}).get("config", {})


def _opened(context: Any, job: str) -> str:
    location = context.code_locations[0]
    [repository] = location.get_repositories()
    result = execute_dagster_graphql(context, OPENED, {"selector": {
        "repositoryLocationName": location.name, "repositoryName": repository,
        "pipelineName": job}})
    return result.data["runConfigSchemaOrError"]["rootDefaultYaml"]


def _picked(context: Any, job: str, partition: str) -> str:
    location = context.code_locations[0]
    [repository] = location.get_repositories()
    result = execute_dagster_graphql(context, PICKED, {
        "repositorySelector": {"repositoryLocationName": location.name,
                               "repositoryName": repository},
        "partitionSetName": f"{job}_partition_set", "partitionName": partition})
    return result.data["partitionSetOrError"]["partition"]["runConfigOrError"]["yaml"]


def test_an_operator_launchpad_never_shows_its_preset_off_and_its_run_does_what_it_says(
        project: Project, launchpad: Any):
    project.note("a.md", "# Apples\n\nApples grow on trees.\n")
    defs = build_definitions(str(project.config_file))
    instance = dg.DagsterInstance.ephemeral()
    assert defs.resolve_job_def(SYNC_JOB).execute_in_process(
        partition_key="notes", instance=instance).success
    with project.qdrant() as store:  # a point lost behind vector_sync's back
        store.delete("notes", [point_id("notes", "a.md", 0)])

    opened = _opened(launchpad, RETRY_JOB)
    # the editor, before a partition is picked, does not say the job will not do it
    assert _op_config(opened).get("retry_due", True) is True, opened
    # picking a partition shows the preset
    assert _op_config(_picked(launchpad, RETRY_JOB, "notes"))["retry_due"] is True
    # the repair's own step has its own config, whichever way the editor was filled; the
    # snapshot has no say in it
    for shown in (_opened(launchpad, REPAIR_JOB), _picked(launchpad, REPAIR_JOB, "notes")):
        assert _op_config(shown, "prepare_repair") == {"prune": False}, shown
        assert not {"repair", "prune"} & set(_op_config(shown)), shown

    # Launch Run with what the repair launchpad opened with: a repair, which puts the point
    # back (a plain sync would trust the ledger and leave it missing)
    repaired = defs.resolve_job_def(REPAIR_JOB).execute_in_process(
        partition_key="notes", instance=instance,
        run_config=yaml.safe_load(_opened(launchpad, REPAIR_JOB)))
    assert repaired.success and set(project.points()) == {"a.md"}
    # and the retry_due launchpad's config runs a targeted retry, not a whole-source sync
    retried = defs.resolve_job_def(RETRY_JOB).execute_in_process(
        partition_key="notes", instance=instance,
        run_config=yaml.safe_load(_opened(launchpad, RETRY_JOB)))
    assert retried.success
    tags = instance.get_run_by_id(retried.run_id).tags  # type: ignore[union-attr]
    assert tags[TAG_DOCUMENTS] == "none"  # nothing was due


def test_an_operator_job_run_without_any_run_config_does_what_its_name_says(project: Project):
    project.note("a.md", "# Apples\n\nApples grow on trees.\n")
    defs = build_definitions(str(project.config_file))
    instance = dg.DagsterInstance.ephemeral()
    assert defs.resolve_job_def(SYNC_JOB).execute_in_process(
        partition_key="notes", instance=instance).success
    with project.qdrant() as store:
        store.delete("notes", [point_id("notes", "a.md", 0)])
    repaired = defs.resolve_job_def(REPAIR_JOB).execute_in_process(
        partition_key="notes", instance=instance)
    assert repaired.success and set(project.points()) == {"a.md"}
