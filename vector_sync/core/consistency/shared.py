"""One complete verification of a source shared by the steps of one run: the Dagster verify
job checks each collection in a step of its own, and a source feeding several collections
would otherwise be listed (and diffed) once per collection. The first step that needs a
source verifies it for every collection of the run it feeds, as `vector-sync verify` does,
and leaves each other collection's result in the state directory for that collection's
step, which takes it (and deletes it). Steps may run in separate processes (the
multiprocess and Celery executors), so the results are files, under a lock per source and
run (steps of different sources go on in parallel).
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

from vector_sync.core.atomic import atomic_write
from vector_sync.core.consistency.compare import Verification
from vector_sync.core.ledger import LedgerUnavailable
from vector_sync.core.locks import hold_file_lock
from vector_sync.core.source import SourceUnavailable
from vector_sync.core.store import QdrantUnavailable

RUNS = "verify_runs"  # under state.dir
KEEP_S = 86_400  # a run's folder left behind (a step that never came) is removed after this
WAIT_S = 6 * 3600  # a step waits this long for another step's verification of the run


class NotVerified(Exception):
    """The shared verification could not read a source, Qdrant or the ledger: every step
    that shares it says so, with the same reason."""


def verified_once(state_dir: Path, run_id: str, source: str, collection: str,
                  run_collections: Sequence[str],
                  verify: Callable[[list[str]], list[Verification]]) -> list[Verification]:
    """`collection`'s results of verifying `source` in run `run_id`. The first step of the
    run to ask for `source` calls `verify` with every one of `run_collections` (those the
    run checks that the source feeds) and keeps the others' results for their steps; a
    step whose result was already taken (a re-executed step) verifies its own collection
    again. Raises NotVerified."""
    folder = state_dir / RUNS / _name(run_id)
    with closing(hold_file_lock(folder / f"{_name(source)}.lock", WAIT_S)):
        mine = folder / f"{_name(source)}-{_name(collection)}.pickle"
        verified = folder / f"{_name(source)}.verified"
        found = _taken(mine)
        if found is None:
            wanted = [collection] if verified.exists() else \
                list(dict.fromkeys([collection, *run_collections]))
            _forget_old_runs(state_dir / RUNS, keep=folder)
            try:
                results: list[Verification] | str = verify(wanted)
            except (SourceUnavailable, QdrantUnavailable, LedgerUnavailable) as error:
                results = str(error)
            except Exception:  # noqa: BLE001 - one collection's fault stays its own
                if wanted == [collection]:
                    raise
                wanted, results = [collection], verify([collection])
            for name in wanted[1:]:  # for the other steps; this one's is returned
                kept = results if isinstance(results, str) else [
                    r for r in results if r.collection == name]
                with atomic_write(folder / f"{_name(source)}-{_name(name)}.pickle") as path:
                    path.write_bytes(pickle.dumps(kept))
            verified.touch()
            found = results if isinstance(results, str) else [
                r for r in results if r.collection == collection]
    if isinstance(found, str):
        raise NotVerified(found)
    return list(found)


def _taken(path: Path) -> list[Verification] | str | None:
    """The result another step left at `path`, removed; None if there is none."""
    if not path.exists():
        return None
    found: list[Verification] | str = pickle.loads(path.read_bytes())  # noqa: S301 - ours
    path.unlink()
    return found


def _name(text: str) -> str:
    """A file name for any source, collection or run name."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _forget_old_runs(runs: Path, keep: Path) -> None:
    for folder in runs.iterdir() if runs.is_dir() else ():
        if folder != keep and time.time() - folder.stat().st_mtime > KEEP_S:
            shutil.rmtree(folder, ignore_errors=True)
