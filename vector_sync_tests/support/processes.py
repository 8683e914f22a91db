"""A sync as a process of its own, stopped at a fault point and let go again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from vector_sync_tests.support.project import Project


def is_stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP, e.g. by VECTOR_SYNC_FAULT_STOP_AT)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def start_sync(project: Project, **env: str) -> subprocess.Popen[str]:
    """`vector-sync sync --json` of the project as its own process (no Dagster instance),
    with extra environment variables such as the fault hook's."""
    base = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    return subprocess.Popen([sys.executable, "-m", "vector_sync.cli", "sync", "--config",
                             str(project.config_file), "--json"], env={**base, **env},
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sync_stopped_at(project: Project, point: str) -> subprocess.Popen[str]:
    """A sync process stopped by the fault hook at `point`; SIGCONT lets it go on."""
    from vector_sync.core.faults import STOP_ENV

    sync = start_sync(project, **{STOP_ENV: point})
    wait_until_stopped(sync, point)
    return sync


def wait_until_stopped(process: subprocess.Popen[str], point: str) -> None:
    deadline = time.monotonic() + 300
    while not is_stopped(process.pid):
        if process.poll() is not None or time.monotonic() > deadline:
            _, err = process.communicate()
            raise AssertionError(f"never reached {point}: {err[-3000:]}")
        time.sleep(0.1)
