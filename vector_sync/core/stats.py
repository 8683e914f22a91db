"""Durations and rates for the metadata every stage reports."""

import time


def timed(started: float) -> float:
    """Seconds since `started` (a time.perf_counter() reading), rounded for reports."""
    return round(time.perf_counter() - started, 3)


def throughput(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0
