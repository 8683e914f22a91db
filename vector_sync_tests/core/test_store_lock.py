"""Embedded Qdrant admits one process at a time: a second opener waits, then fails clearly."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from vector_sync.config import QdrantConfig, StateConfig
from vector_sync.core.store import QdrantUnavailable, open_store

EVENT_TIMEOUT_S = 30  # only a broken test ever waits this long


def test_second_opener_waits_for_the_lock_then_gets_the_storage(tmp_path: Path) -> None:
    state = StateConfig(dir=tmp_path)
    opened = threading.Event()  # the holder has the storage
    waiting = threading.Event()  # the main thread is about to wait for it
    releasing = threading.Event()  # set before the holder lets go, never after
    failures: list[BaseException] = []

    def hold_until_someone_waits() -> None:
        try:
            with open_store(QdrantConfig(), state) as store:
                store.ensure_collection("notes", 4, "m")
                opened.set()
                if not waiting.wait(EVENT_TIMEOUT_S):
                    raise TimeoutError("the main thread never started waiting")
                time.sleep(0.5)  # a fixed hold: the waiter finds the storage held, retries
                releasing.set()
        except BaseException as error:
            failures.append(error)
            opened.set()  # the main thread must not wait for a holder that failed

    holder = threading.Thread(target=hold_until_someone_waits)
    holder.start()
    try:
        assert opened.wait(EVENT_TIMEOUT_S)
        assert not failures, failures
        # held: an opener that does not wait fails at once
        with pytest.raises(QdrantUnavailable), open_store(QdrantConfig(lock_wait_s=0), state):
            pass
        waiting.set()
        with open_store(QdrantConfig(lock_wait_s=EVENT_TIMEOUT_S), state) as store:
            assert releasing.is_set()  # it got the storage only once the holder let go
            assert store.exists("notes")  # and sees what the holder wrote
    finally:
        waiting.set()
        holder.join(EVENT_TIMEOUT_S)
    assert not failures, failures


def test_opener_gives_up_after_lock_wait_with_a_clear_message(tmp_path: Path) -> None:
    state = StateConfig(dir=tmp_path)
    with open_store(QdrantConfig(), state), pytest.raises(
        QdrantUnavailable,
        match=rf"in use by another process \(process {os.getpid()} since .*; waited 0.5 s",
    ), open_store(QdrantConfig(lock_wait_s=0.5), state):
        pass
