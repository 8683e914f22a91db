"""The component in a team's own `dg` project, as the Dagster UI shows it: vector_sync's
chain for the example vault and the team's asset downstream of `qdrant_notes`, in one
lineage (`make screenshots` keeps it as docs/images/component-graph.png for
docs/dagster-integration.md)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page, expect

from vector_sync_tests.ui.conftest import (
    REPO,
    Server,
    _free_port,
    _port_is_free,
    _sigint_default,
    _stop,
    _wait_until_loaded,
)

pytestmark = pytest.mark.ui
GROUP = "notes"  # the component's group_name, and the team's asset's
DIGEST = '''
import dagster as dg


@dg.asset(deps=[dg.AssetKey("qdrant_notes")], group_name="notes", kinds={"python"})
def notes_digest(context: dg.AssetExecutionContext) -> None:
    """The team's own: a digest of the notes collection, after each sync."""
'''


@pytest.fixture(scope="module")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`dagster dev` over a new dg project: the component (the example vault, inline
    config) and the team's asset beside it."""
    root = tmp_path_factory.mktemp("team")
    defs = root / "team" / "defs"
    (defs / "notes").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "team"\n')
    (root / "team" / "__init__.py").write_text("")
    (defs / "__init__.py").write_text("")
    (root / "team" / "definitions.py").write_text(textwrap.dedent('''
        from pathlib import Path

        import dagster as dg


        @dg.definitions
        def defs():
            return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    '''))
    shutil.copytree(REPO / "examples" / "vault", root / "vault")
    config = yaml.safe_load((REPO / "vector_sync.yaml").read_text())
    config.pop("qdrant", None)
    config["state"] = {"dir": str(root / "state")}
    config["sources"]["notes"]["path"] = str(root / "vault")
    (defs / "notes" / "defs.yaml").write_text(yaml.safe_dump({
        "type": "vector_sync.VectorSyncComponent",
        "attributes": {"group_name": GROUP, **config}}))
    (defs / "notes_digest.py").write_text(DIGEST)

    home = tmp_path_factory.mktemp("team_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log = home.parent / "team-dagster-dev.log"
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "dev", "-m", "team.definitions",
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=root, env={**os.environ, "DAGSTER_HOME": str(home)}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_sigint_default)
    server = Server(f"http://127.0.0.1:{port}", home, log, "", process)
    try:
        server.location = _wait_until_loaded(server)
        yield server
    finally:
        _stop(process)
        assert _port_is_free(port), f"port {port} still taken after the server stopped"


def test_the_team_asset_shows_downstream_of_the_collection(
        page: Page, team_server: Server, screenshot: Callable[[Page, str], Path]) -> None:
    page.goto(f"{team_server.url}/locations/{team_server.location}/asset-groups/{GROUP}"
              "/lineage")
    for label in ("source_snapshot", "changes_notes", "embeddings_notes", "qdrant_notes",
                  "notes_digest"):
        expect(page.get_by_text(label, exact=True).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Loading"))).to_have_count(0)
    screenshot(page, "component-graph")
    # the edge: the digest's page lists qdrant_notes upstream
    page.goto(f"{team_server.url}/assets/notes_digest?view=lineage&lineageScope=upstream")
    expect(page.get_by_text("qdrant_notes", exact=True).first).to_be_visible()
