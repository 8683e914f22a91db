"""Durations and rates for the metadata every stage reports, and durations as the config
writes them (`24h`)."""

import re
import time

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_s(text: str) -> float:
    """Seconds of `30s`, `15m`, `24h`, `7d`, `2w`."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 30s, 15m, 24h, 7d or 2w")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def timed(started: float) -> float:
    """Seconds since `started` (a time.perf_counter() reading), rounded for reports."""
    return round(time.perf_counter() - started, 3)


def throughput(name: str, count: int, seconds: float) -> dict[str, float]:
    """{name: count per second}, or nothing when nothing was done: a 0 from a run with
    nothing to write is no rate, and would drag the UI's plot of it down."""
    return {name: round(count / seconds, 1)} if count > 0 and seconds > 0 else {}
