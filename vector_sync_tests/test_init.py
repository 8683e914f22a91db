"""`vector-sync init` and `--version`: a commented config for every source kind that the
real loader accepts, what to run next, no overwrite without --force, exit 2 for an unknown
kind; the version without importing Dagster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vector_sync.__about__ import __version__
from vector_sync.cli import main
from vector_sync.config import load_config
from vector_sync.sources import REGISTRY


@pytest.mark.parametrize("kind", REGISTRY.names())
def test_init_writes_a_config_the_loader_accepts_for_every_kind(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--kind", kind]) == 0
    out = capsys.readouterr().out
    assert "vector-sync plan --config vector_sync.yaml" in out
    written = (tmp_path / "vector_sync.yaml").read_text()
    config = load_config(tmp_path / "vector_sync.yaml")
    [source] = config.sources.values()
    assert source.kind == kind
    assert written.count("\n#") + written.count("  #") > 5  # commented, key by key
    settings = REGISTRY.config_model(kind).model_fields
    for name, field in settings.items():  # every key of the kind is shown, set or commented
        if name not in ("kind", "collections"):
            assert f" {field.alias or name}: " in written, name


def test_init_refuses_to_overwrite_and_an_unknown_kind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vector_sync.yaml").write_text("# mine\n")
    assert main(["init"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "vector_sync.yaml").read_text() == "# mine\n"
    assert main(["init", "--force"]) == 0
    assert load_config(tmp_path / "vector_sync.yaml").sources["notes"].kind == "markdown"
    assert main(["init", "--kind", "gopher", "--config", "other.yaml"]) == 2
    assert "unknown source kind 'gopher' (known: markdown" in capsys.readouterr().err
    assert not (tmp_path / "other.yaml").exists()


def test_version_is_printed_without_importing_dagster() -> None:
    code = ("import sys\nfrom vector_sync.cli import main\ntry:\n    main(['--version'])\n"
            "except SystemExit as e:\n    assert e.code == 0\n"
            "print('dagster' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines() == [f"vector-sync {__version__}", "False"]
