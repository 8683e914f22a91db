"""Bulk work: fixed-size batches of any iterable (itertools.batched, which Python 3.11
lacks), and the cyclic garbage collector kept off the objects a stage did not make."""

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


@contextmanager
def old_objects_frozen() -> Iterator[None]:
    """A stage that lists 20,000 documents or verifies 100,000 points keeps hundreds of
    thousands of small objects alive (rows, ids, hashes), and each burst of allocations
    makes the cyclic collector walk every object of the process, Dagster's included: half
    of a no-op scan + diff. Objects that exist when the stage starts are frozen (left out
    of collections) until it ends; what the stage makes is collected as usual."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
