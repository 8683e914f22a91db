"""The local services the tests use for real (PostgreSQL, RabbitMQ, ...), and what a test
does when one is missing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def service_missing(reason: str) -> None:
    """A local service (or capability) a test needs is not there: a skip on a developer's
    machine, a failure under CI=true, where every one of them must be running."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: every local service must be available)")
    pytest.skip(reason)


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A small disk of its own mounted at `folder` (created), to fill up on purpose; mounting
    needs root, as on the machines CI runs on."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        service_missing(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
