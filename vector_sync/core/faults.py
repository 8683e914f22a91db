"""Fault injection for the reliability tests: a process killed, or stopped, at a named
point of a sync.

Enabled only by two environment variables that nothing but the tests set. Each names a
point, optionally with `@N` for the N-th time the point is reached (default: the first):

    VECTOR_SYNC_FAULT_KILL_AT=qdrant.upsert.flushed@2 vector-sync sync
    VECTOR_SYNC_FAULT_STOP_AT=apply.write_ahead vector-sync sync

KILL: the process sends itself SIGKILL there: no cleanup, no `finally`, no flush, as the OOM
killer would (vector_sync_tests/test_kill_anywhere.py). STOP: it sends itself SIGSTOP, so
that a test can break something underneath it (a database connection, a server) and then
let it go on with SIGCONT. Unset, `reached()` loops over nothing.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "VECTOR_SYNC_FAULT_KILL_AT"
STOP_ENV = "VECTOR_SYNC_FAULT_STOP_AT"

_targets = {name: (point, int(nth or 1)) for name, (point, _, nth) in (
    (signal.SIGKILL, os.environ.get(ENV, "").partition("@")),
    (signal.SIGSTOP, os.environ.get(STOP_ENV, "").partition("@"))) if point}
_times_reached: Counter[tuple[int, str]] = Counter()


def reached(point: str) -> None:
    """Mark a point of the sync; the process dies or stops here if a test asked for it."""
    for sent, (target, nth) in _targets.items():
        if point == target:
            _times_reached[(sent, point)] += 1
            if _times_reached[(sent, point)] == nth:
                os.kill(os.getpid(), sent)
