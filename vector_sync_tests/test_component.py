"""vector_sync as a component of a Dagster project: two configurations (two vaults) in one
code location sync into their own collections without clashing, a team's own asset runs
downstream of `qdrant_<collection>`, a deployment's override is read from the environment
when a step runs, a bad key fails with the CLI's message, and this repository's own `dg`
project takes a scaffolded asset beside its component."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
import yaml

from vector_sync.cli import main
from vector_sync.defs.jobs import Names, sync_job_for
from vector_sync.defs.resources import VectorSyncResource
from vector_sync_tests.support import Project

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

USER_ASSETS = '''
import dagster as dg


@dg.asset(deps=[dg.AssetKey(["team_a", "qdrant_notes"])])
def notes_digest(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """A team's own asset, downstream of the collection vector_sync keeps in sync."""
    upstream = context.instance.get_latest_materialization_event(
        dg.AssetKey(["team_a", "qdrant_notes"]))
    return dg.MaterializeResult(metadata={
        "upstream_added": upstream.asset_materialization.metadata["added"].value})


digest_job = dg.define_asset_job("digest", selection=[notes_digest])
'''


def _dg_project(root: Path, module: str) -> Path:
    """A minimal dg project: pyproject with [tool.dg], a module with its defs/ folder (a
    name of its own per test: Python keeps a module once imported)."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "{module}"\n')
    defs = root / module / "defs"
    defs.mkdir(parents=True)
    (root / module / "__init__.py").write_text("")
    (defs / "__init__.py").write_text("")
    (root / module / "definitions.py").write_text(
        "from pathlib import Path\n\nimport dagster as dg\n\n\n@dg.definitions\n"
        "def defs():\n    return dg.load_from_defs_folder(path_within_project=Path(__file__)"
        ".parent)\n")
    return defs


def _declare(defs: Path, name: str, attributes: dict[str, object]) -> None:
    (defs / name).mkdir()
    (defs / name / "defs.yaml").write_text(yaml.safe_dump(
        {"type": "vector_sync.VectorSyncComponent", "attributes": attributes}))


def _load(root: Path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    monkeypatch.syspath_prepend(str(root))
    return dg.load_from_defs_folder(path_within_project=root)


def _sync(defs: dg.Definitions, names: Names, instance: dg.DagsterInstance,
          resource: VectorSyncResource, source: str = "notes") -> None:
    job = sync_job_for(defs, resource.load(overrides=False), source, names)
    result = job.execute_in_process(partition_key=source, instance=instance)
    assert result.success


def test_two_instances_sync_two_vaults_into_their_own_collections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    team_a, team_b = Project(tmp_path / "a"), Project(tmp_path / "b")
    team_a.note("apples.md", "# Apples\n\nApples grow on trees in orchards.\n")
    team_a.note("pears.md", "# Pears\n\nPears ripen after they are picked.\n")
    team_b.note("boats.md", "# Boats\n\nA sailing boat tacks against the wind.\n")
    root = tmp_path / "project"
    defs_folder = _dg_project(root, "two_teams")
    # team a: its vector_sync.yaml; team b: the same source name, inline, its own collection
    _declare(defs_folder, "team_a", {"key_prefix": "team_a",
                                     "config_file": str(team_a.config_file)})
    _declare(defs_folder, "team_b", {
        "key_prefix": "team_b", "group_name": "boats",
        "state": {"dir": str(team_b.root / "state")},
        "sources": {"notes": {"kind": "markdown", "path": str(team_b.vault),
                              "collections": ["boats"]}},
        "collections": {"boats": {"embed": ["title", "body"], "payload": ["path"]}}})
    (defs_folder / "digest.py").write_text(USER_ASSETS)

    defs = _load(root, monkeypatch)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {*(f"team_a/{stage}" for stage in (
        "prepare_repair", "source_snapshot", "changes_notes", "embeddings_notes",
        "qdrant_notes")), *(f"team_b/{stage}" for stage in (
            "prepare_repair", "source_snapshot", "changes_boats", "embeddings_boats",
            "qdrant_boats")), "notes_digest"}
    assert {s.name for s in defs.sensors} == {"team_a_watch_notes", "team_a_retry_failed",
                                              "team_b_watch_notes", "team_b_retry_failed"}
    assert graph.get(dg.AssetKey(["team_b", "qdrant_boats"])).group_name == "boats"

    instance = dg.DagsterInstance.ephemeral()
    a, b = Names("team_a"), Names("team_b", "boats")
    _sync(defs, a, instance, defs.resources[a.resource_key])
    assert sorted(team_a.points("notes")) == ["apples.md", "pears.md"]
    with team_b.qdrant() as store:  # team b's sync has not run: its collection is not there
        assert store.collections() == []
    _sync(defs, b, instance, defs.resources[b.resource_key])
    assert sorted(team_b.points("boats")) == ["boats.md"]
    assert sorted(team_a.points("notes")) == ["apples.md", "pears.md"]  # untouched

    digest = defs.resolve_job_def("digest").execute_in_process(instance=instance)
    assert digest.success
    [event] = digest.get_asset_materialization_events()
    assert event.materialization.metadata["upstream_added"].value == 2  # type: ignore[union-attr]

    # a team's jobs select its own assets, never the other team's nor the digest
    for job in ("team_a_sync", "team_a_repair"):
        selected = defs.resolve_job_def(job).asset_layer.executable_asset_keys
        assert {key.path[0] for key in selected} == {"team_a"}, job


def test_a_sensor_counts_only_its_own_configuration_s_runs_in_flight(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both teams have a source named notes: team b's run in flight does not hold back team
    a's watch; team a's own does."""
    projects = []
    for team in ("a", "b"):
        (tmp_path / team).mkdir()
        projects.append(Project(tmp_path / team))
        projects[-1].note("x.md", f"# Team {team}\n\nA note.\n")
    root = tmp_path / "project"
    folder = _dg_project(root, "in_flight")
    for team, project in zip("ab", projects, strict=True):
        _declare(folder, team, {"key_prefix": f"team_{team}",
                                "config_file": str(project.config_file)})
    defs = _load(root, monkeypatch)
    instance = dg.DagsterInstance.ephemeral()

    def tick() -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        return defs.resolve_sensor_def("team_a_watch_notes")(context)

    instance.add_run(dg.DagsterRun(job_name="team_b_sync", status=dg.DagsterRunStatus.STARTED,
                                   tags={"dagster/partition": "notes"}))
    first = tick()
    assert isinstance(first, dg.SensorResult) and first.run_requests
    [request] = first.run_requests
    assert dg.AssetKey(["team_a", "qdrant_notes"]) in (request.asset_selection or [])
    instance.add_run(dg.DagsterRun(job_name="team_a_sync", status=dg.DagsterRunStatus.STARTED,
                                   tags={"dagster/partition": "notes"}))
    held = tick()
    assert isinstance(held, dg.SkipReason)
    assert "a run of notes is queued or running" in (held.skip_message or "")


def test_a_deployment_override_is_read_from_the_environment_when_a_step_runs(
        project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project.note("a.md", "# A\n\nAlpha.\n")
    root = tmp_path / "project"
    _declare(_dg_project(root, "overridden"), "vault", {"config_file": str(project.config_file),
                                          "resource": {"ledger_url": {"env": "TEAM_LEDGER"}}})
    defs = _load(root, monkeypatch)
    elsewhere = tmp_path / "shared-ledger.sqlite"
    monkeypatch.setenv("TEAM_LEDGER", f"sqlite:///{elsewhere}")
    _sync(defs, Names(), dg.DagsterInstance.ephemeral(),
          VectorSyncResource(config_path=str(project.config_file)))
    assert elsewhere.exists()  # the override's ledger, not the one under state.dir
    assert not (project.root / "state" / "ledger.sqlite").exists()
    assert sorted(project.points()) == ["a.md"]


def test_a_bad_key_in_defs_yaml_fails_with_the_cli_message(
        project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    project.config["sources"]["notes"]["pth"] = "vault"
    project.save()
    assert main(["plan", "--config", str(project.config_file)]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if "pth" in line]
    root = tmp_path / "project"
    _declare(_dg_project(root, "misspelt"), "vault", dict(project.config))
    with pytest.raises(Exception) as raised:
        _load(root, monkeypatch)
    message = str(raised.value) + "".join(str(c) for c in (raised.value.__cause__,))
    assert line.strip() in message  # sources.notes.pth: unknown key (...)
    assert "defs.yaml" in message


def _dg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRTUAL_ENV": str(BIN.parent), "DAGSTER_HOME": str(root / ".home"),
           "DAGSTER_DISABLE_TELEMETRY": "1", "NO_COLOR": "1", "COLUMNS": "300"}
    (root / ".home").mkdir(exist_ok=True)
    (root / ".home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return subprocess.run([str(BIN / "dg"), *args], cwd=root, env=env, text=True,
                          capture_output=True, timeout=300)


def test_this_repository_is_a_dg_project_that_takes_a_scaffolded_asset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's dg project, as it is (its [tool.dg], its defs/ folder), copied with
    the quick-start config and the example vault; a user scaffolds an asset of their own
    downstream of qdrant_notes beside the component, and the code location loads both."""
    root = tmp_path / "repo"
    root.mkdir()
    pyproject = (REPO / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(pyproject[pyproject.index("[tool.dg]"):])
    shutil.copytree(REPO / "dagster_project", root / "dagster_project",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "vector_sync.yaml", root)
    shutil.copytree(REPO / "examples" / "vault", root / "examples" / "vault")

    scaffolded = _dg(root, "scaffold", "defs", "dagster.asset", "notes_digest.py")
    assert scaffolded.returncode == 0, scaffolded.stderr
    made = root / "dagster_project" / "defs" / "notes_digest.py"
    assert made.exists()
    made.write_text(textwrap.dedent('''
        import dagster as dg


        @dg.asset(deps=[dg.AssetKey("qdrant_notes")])
        def notes_digest() -> None:
            """Ours: runs after the notes collection is synced."""
    '''))
    checked = _dg(root, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    defs = _load(root, monkeypatch)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("notes_digest")).parent_keys == {dg.AssetKey("qdrant_notes")}
    assert {"source_snapshot", "qdrant_notes"} <= {
        key.to_user_string() for key in graph.get_all_asset_keys()}
