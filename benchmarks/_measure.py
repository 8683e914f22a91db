"""Whole-process measurement for benchmarks/run.py: wall time, CPU time and peak resident
memory of one child process, each child started by a tiny launcher of its own.

Why the launcher: on Linux a process's `ru_maxrss` starts at the peak of the process it was
forked (or vforked) from, so a child of a big parent (run.py, after setting up 20,000
synced notes) would report the parent's memory. The launcher is a fresh `python -c` of about
10 MiB; it spawns the measured command, waits for it with `os.wait4` and writes what the
kernel reports for that child alone. Start-up of the launcher itself is not in the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024,
               "cpu_s": usage.ru_utime + usage.ru_stime,
               "exit_code": os.waitstatus_to_exitcode(status)}, out)
"""


class ProcessFailed(Exception):
    """A measured process exited with an unexpected code; the message ends with its output."""


@dataclass
class Measured:
    seconds: float
    peak_mib: float
    cpu_s: float
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def environment() -> dict[str, str]:
    """The children's environment: no DAGSTER_HOME (an ephemeral instance, no history)."""
    return {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}


def measure(command: Sequence[str], cwd: Path | None = None, ok: Sequence[int] = (0,)) -> Measured:
    """Run `command` (argv[0] an absolute path) as a whole process and measure it."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        done = subprocess.run([sys.executable, "-c", _LAUNCHER, result.name, *command],
                              cwd=cwd, env=environment(), capture_output=True, text=True)
        figures = json.loads(Path(result.name).read_text() or "{}")
    if not figures:
        raise ProcessFailed(f"launcher failed for {command[:3]}: {last_line(done.stderr)}")
    measured = Measured(**figures, stdout=done.stdout, stderr=done.stderr)
    if measured.exit_code not in ok:
        raise ProcessFailed(f"{' '.join(map(str, command[:4]))} exited {measured.exit_code}: "
                            f"{last_line(done.stderr or done.stdout)}")
    return measured


def repeat(command: Sequence[str], times: int, cwd: Path | None = None) -> list[Measured]:
    return [measure(command, cwd) for _ in range(times)]


def median(runs: Sequence[Measured]) -> Measured:
    """The run of median wall time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda run: run.seconds)[(len(runs) - 1) // 2]


def median_seconds(runs: Sequence[Measured]) -> float:
    return statistics.median(run.seconds for run in runs)


def peak(runs: Sequence[Measured]) -> float:
    return max(run.peak_mib for run in runs)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def linear_fit(sizes: Sequence[int], values: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares (intercept, slope per unit of size), or None with fewer than 2 sizes."""
    if len(sizes) < 2:
        return None
    mean_n, mean_v = statistics.fmean(sizes), statistics.fmean(values)
    slope = sum((n - mean_n) * (v - mean_v) for n, v in zip(sizes, values, strict=True)) \
        / sum((n - mean_n) ** 2 for n in sizes)
    return mean_v - slope * mean_n, slope
