"""Durations and rates for the metadata every stage reports."""

import time


def timed(started: float) -> float:
    """Seconds since `started` (a time.perf_counter() reading), rounded for reports."""
    return round(time.perf_counter() - started, 3)


def throughput(name: str, count: int, seconds: float) -> dict[str, float]:
    """{name: count per second}, or nothing when nothing was done: a 0 from a run with
    nothing to write is no rate, and would drag the UI's plot of it down."""
    return {name: round(count / seconds, 1)} if count > 0 and seconds > 0 else {}
