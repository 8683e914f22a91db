"""One sync of a source at a time, across processes.

A source's stages hand files to each other under the state dir and read and write its ledger
rows, so two syncs of one source interleaving (two CLI runs, a CLI run and a sensor's run)
could apply one run's change set with the other's embeddings. A sync holds the source's lock
file (`<state.dir>/locks/<source>.lock`, flock: released by the kernel if the process dies)
for the whole run when it starts from the CLI, and for each step when Dagster runs the steps.
The lock is re-entrant within a process: the CLI's run executes the steps in-process.
`hold_file_lock` is the primitive, also guarding embedded Qdrant's storage.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from vector_sync.core.settings import StateConfig

POLL_S = 0.2
_held: dict[str, tuple[IO[str], int]] = {}  # lock path -> (open file, nesting depth)


class SourceBusy(Exception):
    """Another process is syncing the source and did not finish within the wait."""


@contextmanager
def source_lock(state: StateConfig, source: str, wait_s: float) -> Iterator[None]:
    path = state.dir / "locks" / f"{source}.lock"
    key = str(path)
    if key in _held:
        handle, depth = _held[key]
        _held[key] = (handle, depth + 1)
    else:
        try:
            _held[key] = (hold_file_lock(path, wait_s), 1)
        except LockHeld as busy:
            raise SourceBusy(f"source {source!r} is being synced by {busy.holder}; waited "
                             f"{wait_s:g} s (state.lock_wait_s): try again when it has "
                             "finished") from None
    try:
        yield
    finally:
        handle, depth = _held[key]
        if depth == 1:
            del _held[key]
            handle.close()  # releases the lock
        else:
            _held[key] = (handle, depth - 1)


class LockHeld(Exception):
    """`hold_file_lock` waited in vain; `holder` says who has the lock."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def hold_file_lock(path: Path, wait_s: float) -> IO[str]:
    """An exclusive flock on `path`, waiting up to `wait_s` for its holder to let go; the
    file then says who holds it. Closing the returned file releases the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise LockHeld(holder) from None
            time.sleep(POLL_S)
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
    handle.flush()
    return handle
