"""The Dagster UI of a small temporary project, served by `dagster dev` and driven in headless
Chromium (`make test-ui`). One server for the session: its start and the first sync its
sensors request take most of the suite's time."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import pytest
import yaml

from vector_sync.definitions import build_definitions
from vector_sync_tests.support import Project

try:
    import playwright.sync_api  # noqa: F401
except ImportError:  # `make test` has no browser: these are `make test-ui`'s, which installs it
    collect_ignore_glob = ["test_*.py"]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# playwright gives Chromium a temporary profile; without these flags it keeps calling home
# (updates, sync, field trials), which floods a closed network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
PAGE_TIMEOUT_MS = 60_000  # runs embed with a real model, on slow CI cores
STARTUP_S = 300  # a deadline against hangs, not a measurement
RUN_S = 600
# `dagster dev` on localhost opens a "Join the Dagster community" dialog over every page
# until it is dismissed; the browser remembers that in its storage
DISMISS_NUX = "window.localStorage.setItem('communityNux', '\"1\"')"


@dataclass
class Server:
    url: str
    home: Path  # DAGSTER_HOME of the server
    log: Path
    location: str  # the code location's name, as the UI's URLs spell it
    process: subprocess.Popen[bytes]

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def graphql(self, query: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql", data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["data"]


def asset_url(server: Server, key: dg.AssetKey, view: str = "") -> str:
    return f"{server.url}/assets/{'/'.join(key.path)}" + (f"?view={view}" if view else "")


def metadata_value(page: Page, label: str) -> Locator:
    """The value cell of a metadata row (materialization or check) labelled `label`."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=label, exact=True))
    return row.first.get_by_role("cell").nth(1)


def wait_until_quiet(server: Server, sensors: list[str]) -> None:
    """No run queued or running, and each of `sensors` has evaluated since the last run
    ended without requesting one: until something changes, nothing starts a run (which a
    test that opens embedded Qdrant, or reads the latest check result, relies on)."""
    deadline = time.monotonic() + RUN_S
    query = ("{ sensorOrError(sensorSelector: {repositoryLocationName: \"%s\", "
             "repositoryName: \"__repository__\", sensorName: \"%s\"}) { ... on Sensor { "
             "sensorState { ticks(limit: 1) { status timestamp } } } } }")
    with server.instance() as instance:
        while time.monotonic() < deadline:
            records = instance.get_run_records(limit=20)
            if all(record.dagster_run.is_finished for record in records):
                ended = max((record.end_time or 0 for record in records), default=0)
                ticks = [server.graphql(query % (server.location, sensor))["sensorOrError"]
                         ["sensorState"]["ticks"] for sensor in sensors]
                if all(tick and tick[0]["status"] == "SKIPPED" and tick[0]["timestamp"] > ended
                       for tick in ticks):
                    return
            time.sleep(1)
    raise AssertionError(f"runs kept starting:\n{server.log_tail()}")


def wait_for_run(server: Server, run_id: str) -> dg.DagsterRun:
    """The run once it has finished (succeeded, failed or was canceled)."""
    deadline = time.monotonic() + RUN_S
    with server.instance() as instance:
        while True:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.is_finished:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} did not finish:\n{server.log_tail()}")
            time.sleep(1)


@pytest.fixture(scope="session")
def ui_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The quick start's config (vector_sync.yaml) over a copy of the example vault, with
    its state in the temp folder."""
    root = tmp_path_factory.mktemp("project")
    config = yaml.safe_load((REPO / "vector_sync.yaml").read_text())
    config.pop("qdrant", None)  # always embedded: $QDRANT_URL must not reach a real server
    config["state"] = {**config.get("state", {}), "dir": "state"}
    shutil.copytree(REPO / "examples" / "vault", root / "vault")
    for source in config["sources"].values():
        if source["kind"] == "markdown":
            source["path"] = "vault"
    (root / "vector_sync.yaml").write_text(yaml.safe_dump(config))
    return Project.at(root)  # relative paths are the config file's: Project reads them so


@pytest.fixture(scope="session")
def defs(ui_project: Project) -> dg.Definitions:
    """The project's definitions, for the names the UI must show (read, not hard-coded)."""
    return build_definitions(str(ui_project.config_file))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    """Nothing listens on it (connections of the stopped server may linger in TIME_WAIT,
    which SO_REUSEADDR binds over)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _sigint_default() -> None:
    # `dagster dev` stops on SIGTERM by mapping it to SIGINT's handler; a process started
    # from a backgrounded shell inherits SIGINT ignored, and would then ignore both
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def dagster_server(ui_project: Project, tmp_path_factory: pytest.TempPathFactory,
                   ) -> Iterator[Server]:
    """`dagster dev` (webserver and daemon) over the project, its own DAGSTER_HOME whatever
    the environment's, once the code location has loaded and the sensors' first sync of
    every source has finished."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    log = home.parent / "dagster-dev.log"
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "VECTOR_SYNC_CONFIG": str(ui_project.config_file)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "dev", "-m",
             "vector_sync.definitions", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ui_project.root, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_sigint_default)
    server = Server(f"http://127.0.0.1:{port}", home, log, "", process)
    try:
        server.location = _wait_until_loaded(server)
        _wait_for_first_syncs(server, list(ui_project.config["sources"]))
        yield server
    finally:
        _stop(process)
        assert _port_is_free(port), f"port {port} still taken after the server stopped"


def _wait_until_loaded(server: Server) -> str:
    """The name of the code location, once the webserver answers and has loaded it."""
    deadline = time.monotonic() + STARTUP_S
    query = ("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
             "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
    while True:
        if server.process.poll() is not None:
            raise AssertionError(f"dagster dev exited ({server.process.returncode}):\n"
                                 f"{server.log_tail()}")
        try:
            entries = server.graphql(query)["workspaceOrError"]["locationEntries"]
        except (OSError, urllib.error.URLError, KeyError, TypeError):
            entries = []
        for entry in entries:
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "PythonError":
                raise AssertionError(f"code location {entry['name']} failed to load:\n"
                                     f"{loaded['message']}")
            if entry["loadStatus"] == "LOADED" and loaded.get("__typename"):
                return entry["name"]
        if time.monotonic() > deadline:
            raise AssertionError(f"the UI did not load the code location:\n{server.log_tail()}")
        time.sleep(1)


def _wait_for_first_syncs(server: Server, sources: list[str]) -> None:
    """The watch sensors request a sync of every source on their first tick: the tests
    start once those have succeeded, from a synced project and an idle instance."""
    deadline = time.monotonic() + RUN_S
    with server.instance() as instance:
        for source in sources:
            runs = []
            while not runs:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no run of {source} was requested:\n"
                                         f"{server.log_tail()}")
                runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": source}))
                time.sleep(1)
            run = wait_for_run(server, runs[-1].run_id)
            assert run.status == dg.DagsterRunStatus.SUCCESS, \
                f"the first sync of {source} failed:\n{server.log_tail()}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to `dagster dev`, which stops its webserver and daemon; then SIGKILL to
    whatever of its process group is left (run workers, code servers)."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):  # ProcessLookupError: the group is gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.add_init_script(DISMISS_NUX)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshot(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Page, str], Path]:
    """screenshot(page, name): the viewport as <name>.png, into $VECTOR_SYNC_SCREENSHOTS
    (`make screenshots`: docs/images) or a temp folder."""
    folder = Path(os.environ.get("VECTOR_SYNC_SCREENSHOTS") or
                  tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=path, animations="disabled", caret="hide")
        return path

    return take
