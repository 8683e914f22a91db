"""Fault injection for the crash tests: a process killed at a named point of a sync.

Enabled only by the environment variable VECTOR_SYNC_FAULT_KILL_AT, which nothing but the
kill harness (vector_sync_tests/test_kill_anywhere.py) sets. Its value is a point name,
optionally with `@N` to kill at the N-th time the point is reached (default: the first):

    VECTOR_SYNC_FAULT_KILL_AT=qdrant.upsert.flushed@2 vector-sync sync

The process then sends itself SIGKILL there: no cleanup, no `finally`, no flush, exactly as
the OOM killer or a power cut of the process would. Unset, `reached()` is one comparison.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "VECTOR_SYNC_FAULT_KILL_AT"

_target, _, _nth = os.environ.get(ENV, "").partition("@")
_times_reached: Counter[str] = Counter()


def reached(point: str) -> None:
    """Mark a point of the sync; the process dies here if the harness asked for it."""
    if point != _target:
        return
    _times_reached[point] += 1
    if _times_reached[point] == int(_nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
