"""Embedded Qdrant admits one process at a time: a second opener waits, then fails clearly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from vector_sync.config import QdrantConfig, StateConfig
from vector_sync.core.store import QdrantUnavailable, open_store


def test_second_opener_waits_for_the_lock_then_gets_the_storage(tmp_path: Path) -> None:
    state = StateConfig(dir=tmp_path)
    released = threading.Event()

    def hold_for_a_moment() -> None:
        with open_store(QdrantConfig(), state) as store:
            store.ensure_collection("notes", 4, "m")
            time.sleep(0.6)
        released.set()

    holder = threading.Thread(target=hold_for_a_moment)
    holder.start()
    time.sleep(0.2)
    with open_store(QdrantConfig(lock_wait_s=10), state) as store:
        assert released.is_set()  # it waited rather than failing
        assert store.exists("notes")
    holder.join()


def test_opener_gives_up_after_lock_wait_with_a_clear_message(tmp_path: Path) -> None:
    state = StateConfig(dir=tmp_path)
    with open_store(QdrantConfig(), state):
        started = time.monotonic()
        with pytest.raises(QdrantUnavailable, match=r"in use by another process \(waited 0.5 s"), \
                open_store(QdrantConfig(lock_wait_s=0.5), state):
            pass
        assert time.monotonic() - started >= 0.5
