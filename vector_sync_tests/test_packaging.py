"""vector_sync as a package a team installs: the wheel built from this repository goes into
a fresh virtualenv (nothing but the package index), a new `dg` project declares the
component against a small vault, and `dg` validates, lists and materializes it, with an
asset of the team's own downstream of the collection. Slow: it installs Dagster."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vector_sync.__about__ import __version__
from vector_sync.config import QdrantConfig, StateConfig
from vector_sync.core.store import open_store

REPO = Path(__file__).resolve().parent.parent
ASSETS = ("source_snapshot", "changes_notes", "embeddings_notes", "qdrant_notes")
UNKNOWN_KEY = "sources.notes.pth: unknown key (check its spelling; see docs/configuration.md)"


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
         ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=1800)
    if ok:
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_a_new_dg_project_syncs_with_it(
        tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--outdir", dist, REPO, cwd=tmp_path)
    [wheel] = dist.glob("vector_sync-*.whl")
    assert [p.name for p in dist.glob("*.tar.gz")] == [f"vector_sync-{__version__}.tar.gz"]
    assert wheel.name.startswith(f"vector_sync-{__version__}-")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    bin_ = venv / "bin"
    _run(bin_ / "pip", "install", "--quiet", wheel, cwd=tmp_path)
    assert _run(bin_ / "vector-sync", "--version", cwd=tmp_path).stdout.strip() == \
        f"vector-sync {__version__}"

    # a new dg project of a team: its own module and defs folder, and a small vault
    project = tmp_path / "team"
    (project / "team" / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "team"\n')
    (project / "team" / "__init__.py").write_text("")
    (project / "team" / "defs" / "__init__.py").write_text("")
    (project / "team" / "definitions.py").write_text(textwrap.dedent('''
        from pathlib import Path

        import dagster as dg


        @dg.definitions
        def defs():
            return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    '''))
    vault = project / "vault"
    vault.mkdir()
    (vault / "apples.md").write_text("# Apples\n\nApples grow on trees in orchards.\n")
    (vault / "pears.md").write_text("---\ntags: [fruit]\n---\n# Pears\n\nPears ripen late.\n")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
           "VIRTUAL_ENV": str(venv), "PATH": f"{bin_}:{os.environ['PATH']}",
           "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "250",
           "NO_COLOR": "1"}

    def dg(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(bin_ / "dg", *args, cwd=project, env=env, ok=ok)

    assert "vector_sync.VectorSyncComponent" in dg("list", "components").stdout
    dg("scaffold", "defs", "vector_sync.VectorSyncComponent", "notes", "--path", str(vault))
    defs_yaml = project / "team" / "defs" / "notes" / "defs.yaml"
    assert "type: vector_sync.VectorSyncComponent" in defs_yaml.read_text()
    dg("check", "yaml")
    dg("check", "defs")
    listed = dg("list", "defs").stdout
    for asset in ASSETS:
        assert asset in listed, listed

    # the team's own asset, downstream of the collection
    (project / "team" / "defs" / "digest.py").write_text(textwrap.dedent('''
        import dagster as dg


        @dg.asset(deps=[dg.AssetKey("qdrant_notes")])
        def notes_digest(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            synced = context.instance.get_latest_materialization_event(
                dg.AssetKey("qdrant_notes"))
            return dg.MaterializeResult(metadata={"after_sync": synced is not None})
    '''))
    dg("check", "defs")
    dg("launch", "--assets", ",".join(ASSETS), "--partition", "notes")
    with open_store(QdrantConfig(), StateConfig(dir=project / ".vector_sync" / "notes")) as store:
        held = {p.payload["doc_id"] for p in store.scroll("notes", None)}
    assert held == {"apples.md", "pears.md"}
    launched = dg("launch", "--assets", "notes_digest")
    assert "RUN_SUCCESS" in launched.stdout + launched.stderr

    # a misspelt key: the CLI's message, with the key's path
    text = defs_yaml.read_text()
    defs_yaml.write_text(text.replace("      kind: markdown\n",
                                      "      kind: markdown\n      pth: somewhere\n"))
    failed = dg("check", "defs", ok=False)
    assert failed.returncode != 0
    assert UNKNOWN_KEY in failed.stdout + failed.stderr
    defs_yaml.write_text(text.replace("  sources:\n", "  sourcez:\n", 1))
    failed = dg("check", "yaml", ok=False)
    assert failed.returncode != 0 and "sourcez" in failed.stdout + failed.stderr
