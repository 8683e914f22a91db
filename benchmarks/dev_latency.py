"""Edit-to-searchable latency under the real ``dagster dev`` (webserver + daemon).

Nobody launches anything: the benchmark starts ``dagster dev`` on a copy of the example vault,
waits for the initial sync that the ``watch_notes`` sensor requests on its first tick, then,
after a random pause of up to one sensor interval (so that the edit lands at a random point
of the sensor's cycle; ``--no-random-phase`` edits at once), appends to one note a
sentence with a unique nonsense phrase, under a level-2 heading with the same phrase, and
polls ``vector-sync search notes "<phrase>" --json --limit 1`` (a poll starts at most once a
second, ``--poll-interval``) until the top hit's text contains the phrase. Target: at most
30 s from the edit. Repeated ``--repeats`` times (a different note each time); each repeat
and the medians are printed. The exit code is 1 when an edit missed the target or was never
found.

Why the heading: a level-2 heading starts a chunk of its own (README §7), so the new chunk is
about the phrase and the phrase's search ranks it first. A bare sentence appended to a note
lands in its last section's chunk among that section's text; with all-MiniLM-L6-v2 a search
for the nonsense phrase then ranked that chunk first for only 26 of the 30 example notes
(and for 33 of 40 edits in sequences of 5), so an edit that had synced correctly could never
be "found" with ``--limit 1``. With the heading: 60 of 60. When an edit is not found, the
report says whether an in-process search ranks the new text in its top 10 at all.

The breakdown is read from the Dagster instance in the temporary DAGSTER_HOME (run records,
the run's event log, the sensor's ticks), not guessed. The stages add up to the total:

- sensor: edit -> run created (the run record's create_timestamp). Split into the wait for
  the tick that requested the run and that tick's evaluation plus the run's creation.
  ``watch_<source>`` checks every ``sensors.interval_s`` (15 s) at the earliest, and the
  daemon's sensor loop wakes every 5 s, so ticks are 15-20 s apart.
- run start: run created -> first STEP_START. Split into the queued-run coordinator
  (RUN_ENQUEUED -> RUN_STARTING; the coordinator dequeues every 5 s), the launch
  (RUN_STARTING -> RUN_START: the run worker process starts, imports Dagster and
  vector_sync, loads the definitions) and RUN_START -> first STEP_START.
- snapshot + changes: first STEP_START -> STEP_START of ``embeddings__<collection>`` (the
  ``source_snapshot`` and ``changes`` steps, the mass-delete guard, the gaps between).
- embed: the ``embeddings__<collection>`` step, STEP_START -> STEP_SUCCESS (loading the model
  in the run worker and embedding the changed note's chunks).
- qdrant pool/gap: embeddings STEP_SUCCESS -> qdrant STEP_START (claiming the ``qdrant``
  pool slot included).
- apply: the ``qdrant__<collection>`` step, STEP_START -> STEP_SUCCESS. It opens embedded
  Qdrant, so a search that holds the storage at that moment makes it wait.
- run end: the last step -> the run record's end_time.
- search visibility: run end -> the end of the first poll whose top hit has the phrase. With
  CLI polls this is mostly the cost of one CLI search (a new Python process: interpreter,
  imports, model load, the query's embedding, about 3 s here, timed idle before the edits)
  plus where the poll cycle happened to be; it can be negative when a poll that started
  before the run ended opened the storage after the qdrant step. The text is searchable
  as soon as the qdrant step has closed the storage.

Polling modes. ``--poll cli`` (default): each poll runs the ``vector-sync`` console
script's entry point (``vector_sync.cli.main``) in a new ``.venv/bin/python`` process, like
the real command, through a few lines that also report when it opened and closed the Qdrant
storage and how long it waited for the storage lock; ``--exact-cli`` runs
``.venv/bin/vector-sync`` itself instead, without those figures. ``--poll api``: the
in-process API (the model loaded once; each poll embeds the query, opens the storage,
searches and closes it, as ``cmd_search`` does): the visibility stage then shows the
pipeline without the CLI's start-up. ``--poll-after-run`` (control): no search runs until
the instance shows the run finished, so no search process competes with the run for the 2
cores or the storage lock.

Embedded Qdrant admits one process at a time; ``qdrant.lock_wait_s`` (default 30 s) makes
a search that finds the storage held by the run wait, and the run's qdrant step wait for a
search (vector_sync.core.store retries every 0.2 s). The report lists every lock wait on the
search side and every poll that held the storage while the qdrant step ran.

Everything lives in a temporary folder that is deleted at the end (``--keep`` keeps it): a
copy of examples/vault, the repository's vector_sync.yaml with the vault path and the state
dir pointed there (embedded Qdrant is forced: qdrant.url is dropped), and a DAGSTER_HOME with
the repository's dagster.yaml. ``dagster dev -w workspace.yaml -h 127.0.0.1 -p <free port>``
runs from the repository in its own process group, which gets SIGTERM at the end (also after
an error or Ctrl-C), and SIGKILL if anything of it is left after 30 s. Its output goes to a
log file in the temporary folder; the error lines and tracebacks in it, and every run the
instance holds, are printed at the end.

Run (about 2 minutes with 3 repeats):

    .venv/bin/python benchmarks/dev_latency.py [--repeats 3] [--poll cli|api]
        [--poll-after-run] [--exact-cli] [--seed N] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from _vault import COLLECTION, SOURCE, code_version, scratch

from vector_sync.defs.jobs import SYNC_JOB

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
TARGET_S = 30.0
SENSOR = f"watch_{SOURCE}"
STOP_GRACE_S = 30.0

# Runs vector_sync.cli.main exactly as the `vector-sync` console script does, and reports on
# stderr (one JSON line after MARK) when the storage was requested, opened and closed, and
# how long vector_sync.core.store slept waiting for the embedded storage's lock.
MARK = "@@dev_latency@@"
CLI_WRAPPER = f"""
import json, sys, time
started = time.time()
from contextlib import contextmanager
from vector_sync.core import store
marks = {{"started": started, "lock_wait_s": 0.0, "lock_waits": 0}}
_time = store.time
class _Clock:
    def __getattr__(self, name):
        return getattr(_time, name)
    def sleep(self, seconds):
        marks["lock_wait_s"] += seconds
        marks["lock_waits"] += 1
        _time.sleep(seconds)
store.time = _Clock()
_open_store = store.open_store
@contextmanager
def timed_open_store(*args, **kwargs):
    marks["open_requested"] = time.time()
    with _open_store(*args, **kwargs) as opened:
        marks["opened"] = time.time()
        yield opened
    marks["closed"] = time.time()
store.open_store = timed_open_store
from vector_sync.cli import main
try:
    code = main(sys.argv[1:])
finally:
    marks["finished"] = time.time()
    print("{MARK}" + json.dumps(marks), file=sys.stderr, flush=True)
sys.exit(code)
"""

SYLLABLES = ["bra", "dro", "fen", "glim", "kra", "lun", "mop", "nix", "plo", "quor", "rab",
             "snu", "tov", "vex", "wib", "zan", "yol", "thra", "ulm", "ezz"]


def nonsense_phrase(rng: random.Random) -> str:
    words = ["".join(rng.choices(SYLLABLES, k=3)) for _ in range(3)]
    return " ".join(words)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def normalized(text: str) -> str:
    return " ".join(text.split()).lower()


# --- setup ----------------------------------------------------------------------------------


def write_config(root: Path) -> Path:
    """The repository's vector_sync.yaml, with the vault copy and the state dir in root."""
    config = yaml.safe_load((REPO / "vector_sync.yaml").read_text())
    config["qdrant"] = {k: v for k, v in (config.get("qdrant") or {}).items()
                        if k not in ("url", "api_key")}  # embedded storage, never a server
    config["state"] = {**(config.get("state") or {}), "dir": str(root / "state")}
    config["sources"][SOURCE]["path"] = str(root / "vault")
    path = root / "vector_sync.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def sensor_interval(config_file: Path) -> float:
    """watch_<source>'s minimum interval (sensors.interval_s)."""
    from vector_sync.config import load_config

    return float(load_config(config_file).sensors.interval_s)


def vault_notes(root: Path, config_file: Path) -> list[Path]:
    """The notes the source syncs (what its scan lists), smallest first."""
    from vector_sync.config import load_config
    from vector_sync.sources.markdown import MarkdownSource

    config = load_config(config_file)
    settings = config.sources[SOURCE]
    vault = Path(str(settings.path))
    paths = [vault / entry.doc_id for entry in MarkdownSource(SOURCE, settings).scan()]
    return sorted((p for p in paths if p.is_file()), key=lambda p: p.stat().st_size)


class DagsterDev:
    """`dagster dev` in its own process group; stop() sends the group SIGTERM."""

    def __init__(self, root: Path, home: Path, config_file: Path, port: int) -> None:
        self.root, self.home, self.port = root, home, port
        self.log_path = root / "dagster_dev.log"
        env = {**os.environ, "DAGSTER_HOME": str(home), "VECTOR_SYNC_CONFIG": str(config_file),
               "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               "PYTHONUNBUFFERED": "1"}
        env.pop("QDRANT_URL", None)
        self.log = self.log_path.open("w")
        self.started = time.time()
        self.process = subprocess.Popen(
            [str(VENV_BIN / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        self.pgid = self.process.pid  # start_new_session: the leader's pid is the group id

    def wait_for_webserver(self, timeout: float) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.process.returncode}; "
                                   f"see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/server_info",
                                            timeout=2) as response:
                    if response.status == 200:
                        return time.time() - self.started
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the webserver did not answer within {timeout:.0f} s")

    def stop(self) -> list[str]:
        """SIGTERM to the group, SIGKILL after STOP_GRACE_S; returns what was left over."""
        notes = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            notes.append(f"dagster dev ignored SIGTERM for {STOP_GRACE_S:.0f} s: SIGKILL")
        deadline = time.time() + STOP_GRACE_S
        while self._group_alive() and time.time() < deadline:
            time.sleep(0.5)
        if self._group_alive():
            survivors = "; ".join(f"{pid} {cmd}" for pid, cmd in self._group_members())
            notes.append(f"processes of the group outlived SIGTERM by {STOP_GRACE_S:.0f} s, "
                         f"SIGKILL to the group: {survivors}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
        # anything else that carries our DAGSTER_HOME (a process that left the group)
        for pid in self._strays():
            notes.append(f"stray process {pid} with this DAGSTER_HOME: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()
        return notes

    def _group_alive(self) -> bool:
        return bool(self._group_members())

    def _group_members(self) -> list[tuple[int, str]]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace").strip()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
            if int(fields[2]) == self.pgid and fields[0] != "Z":
                found.append((int(entry.name), command[:160] or f"[{fields[0]}]"))
        return found

    def _strays(self) -> list[int]:
        wanted = f"DAGSTER_HOME={self.home}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if wanted in environ:
                found.append(int(entry.name))
        return found

    def problems(self) -> list[str]:
        """Error lines and tracebacks from the dagster dev output (webserver, daemon, code
        server and the run workers' console logs)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        found, in_traceback = [], False
        for line in lines:
            if line.startswith("Traceback"):
                in_traceback = True
            if in_traceback or re.search(r"\b(ERROR|CRITICAL|Exception|Error:)", line):
                found.append(line)
            if in_traceback and line and not line.startswith((" ", "Traceback")):
                in_traceback = False
        return found


# --- reading the Dagster instance -----------------------------------------------------------


def as_epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


class Instance:
    def __init__(self, home: Path) -> None:
        import dagster as dg

        self.dg = dg
        self.instance = dg.DagsterInstance.from_config(str(home))

    def sync_runs(self, after: float) -> list[Any]:
        dg = self.dg
        return list(self.instance.get_run_records(
            dg.RunsFilter(job_name=SYNC_JOB,
                          created_after=datetime.fromtimestamp(after, UTC)),
            order_by="create_timestamp", ascending=True))

    def record(self, run_id: str) -> Any:
        return self.instance.get_run_record_by_id(run_id)

    def events(self, run_id: str) -> list[Any]:
        return [e for e in self.instance.all_logs(run_id) if e.dagster_event is not None]

    def sensor_ticks(self, after: float) -> list[Any]:
        from dagster._core.scheduler.instigation import InstigatorType

        states = [s for s in self.instance.all_instigator_state(
            instigator_type=InstigatorType.SENSOR) if s.instigator_name == SENSOR]
        ticks = []
        for state in states:
            ticks += self.instance.get_ticks(state.instigator_origin_id, state.selector_id,
                                             after=after)
        return sorted(ticks, key=lambda t: t.timestamp)

    def dispose(self) -> None:
        self.instance.dispose()


def wait_for_run(instance: Instance, after: float, timeout: float, trigger: str = "watch",
                 pause: float = 0.5) -> Any:
    """The first sync run created after `after` with the given trigger tag, once finished."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for record in instance.sync_runs(after):
            if record.dagster_run.tags.get("vector_sync/trigger") == trigger:
                if record.dagster_run.is_finished:
                    return record
                break
        time.sleep(pause)
    raise TimeoutError(f"no finished {trigger} sync run within {timeout:.0f} s")


@dataclass
class RunTimes:
    run_id: str
    status: str
    created: float
    start: float | None
    end: float | None
    events: dict[str, float]  # first RUN_* event of each type -> timestamp
    steps: dict[str, tuple[float, float | None, str]]  # step key -> (start, end, outcome)
    tick: Any  # the sensor tick that requested the run, if found
    previous_tick: Any  # the last tick before it


def run_times(instance: Instance, record: Any, ticks_after: float) -> RunTimes:
    dg = instance.dg
    run = record.dagster_run
    events: dict[str, float] = {}
    steps: dict[str, tuple[float, float | None, str]] = {}
    for entry in instance.events(run.run_id):
        event = entry.dagster_event
        kind = event.event_type
        if kind.name.startswith("RUN_"):  # the names; the values say PIPELINE_*
            events.setdefault(kind.name, entry.timestamp)
        elif kind == dg.DagsterEventType.STEP_START:
            steps[event.step_key] = (entry.timestamp, None, "started")
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
                      dg.DagsterEventType.STEP_SKIPPED):
            started = steps.get(event.step_key, (entry.timestamp, None, ""))[0]
            steps[event.step_key] = (started, entry.timestamp, kind.name)
    ticks = instance.sensor_ticks(ticks_after)
    tick = next((t for t in ticks if run.run_id in t.run_ids), None)
    before = [t for t in ticks if tick is not None and t.timestamp < tick.timestamp]
    return RunTimes(run.run_id, run.status.value, as_epoch(record.create_timestamp) or 0.0,
                    as_epoch(record.start_time), as_epoch(record.end_time), events, steps,
                    tick, before[-1] if before else None)


# --- searching -----------------------------------------------------------------------------


@dataclass
class Poll:
    started: float
    finished: float
    found: bool
    top: str = ""  # doc_id of the top hit
    rank: int = 0  # api searches: the rank of the first hit with the phrase (0: none)
    error: str = ""
    marks: dict[str, float] = field(default_factory=dict)  # CLI wrapper: open/close times

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def lock_wait(self) -> float:
        return float(self.marks.get("lock_wait_s", 0.0))

    @property
    def held(self) -> tuple[float, float] | None:
        """When this search held the storage (opened -> closed)."""
        if "opened" in self.marks and "closed" in self.marks:
            return self.marks["opened"], self.marks["closed"]
        return None


class LockClock:
    """Stands in for the `time` module in vector_sync.core.store (in this process) and adds
    up the sleeps of its wait for the embedded storage's lock; like the CLI wrapper's."""

    def __init__(self, real: Any) -> None:
        self.real, self.waited, self.waits = real, 0.0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def sleep(self, seconds: float) -> None:
        self.waited += seconds
        self.waits += 1
        self.real.sleep(seconds)


class Searcher:
    def __init__(self, config_file: Path, mode: str, exact_cli: bool) -> None:
        self.config_file, self.mode, self.exact_cli = config_file, mode, exact_cli
        self._embedder: Any = None
        self._clock: LockClock | None = None

    def __call__(self, phrase: str, mode: str | None = None) -> Poll:
        if (mode or self.mode) == "api":
            return self.api(phrase)
        return self.cli(phrase)

    def cli(self, phrase: str) -> Poll:
        args = ["search", COLLECTION, phrase, "--json", "--limit", "1",
                "--config", str(self.config_file)]
        command = ([str(VENV_BIN / "vector-sync"), *args] if self.exact_cli
                   else [str(VENV_BIN / "python"), "-c", CLI_WRAPPER, *args])
        env = {k: v for k, v in os.environ.items() if k not in ("QDRANT_URL", "DAGSTER_HOME")}
        started = time.time()
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        finished = time.time()
        marks: dict[str, float] = {}
        other = []
        for line in done.stderr.splitlines():
            if line.startswith(MARK):
                marks = json.loads(line[len(MARK):])
            elif line.strip():
                other.append(line.strip())
        poll = Poll(started, finished, False, marks=marks)
        if done.returncode != 0:
            poll.error = f"exit {done.returncode}: " + " | ".join(other[-3:])
            return poll
        try:
            hits = json.loads(done.stdout)
        except json.JSONDecodeError as error:
            poll.error = f"unreadable JSON ({error}): {done.stdout[:200]!r}"
            return poll
        return self._judge(poll, hits, phrase)

    def api(self, phrase: str, limit: int = 1) -> Poll:
        """What cmd_search does, in this process, with the model loaded once."""
        from vector_sync.config import load_config
        from vector_sync.core import store as store_module
        from vector_sync.core.embedder import Embedder
        from vector_sync.core.store import QdrantUnavailable, open_store

        config = load_config(self.config_file)
        if self._embedder is None:
            self._embedder = Embedder(config.embedding_for(COLLECTION))
        if self._clock is None:
            self._clock = LockClock(store_module.time)
            store_module.time = self._clock  # type: ignore[assignment]
        waited_before = self._clock.waited
        started = time.time()
        marks: dict[str, float] = {"started": started}
        poll = Poll(started, started, False, marks=marks)
        try:
            vector = self._embedder.embed([phrase])[0]
            marks["open_requested"] = time.time()
            with open_store(config.qdrant, config.state) as store:
                marks["opened"] = time.time()
                points = store.search(COLLECTION, vector.tolist(), limit) \
                    if store.exists(COLLECTION) else []
            marks["closed"] = time.time()
        except QdrantUnavailable as error:
            poll.finished, poll.error = time.time(), str(error)
            return poll
        finally:
            marks["lock_wait_s"] = self._clock.waited - waited_before
        poll.finished = time.time()
        hits = [{k: (p.payload or {}).get(k) for k in ("doc_id", "text")} for p in points]
        poll.rank = next((rank for rank, hit in enumerate(hits, 1)
                          if normalized(phrase) in normalized(str(hit.get("text") or ""))), 0)
        return self._judge(poll, hits, phrase)

    @staticmethod
    def _judge(poll: Poll, hits: list[dict[str, Any]], phrase: str) -> Poll:
        if hits:
            poll.top = str(hits[0].get("doc_id"))
            poll.found = normalized(phrase) in normalized(str(hits[0].get("text") or ""))
        return poll


def idle_search_lines(searcher: Searcher, phrase: str) -> list[str]:
    """One CLI search and one in-process search while nothing runs."""
    lines = []
    cli = searcher(phrase, "cli")
    if cli.error:
        lines.append(f"  idle CLI search failed: {cli.error}")
    else:
        lines.append(f"  idle CLI search (new process): {cli.seconds:.2f} s"
                     + (f" = start-up + imports + model + query embedding "
                        f"{cli.marks['open_requested'] - cli.started:.2f} s, opening the "
                        f"storage {cli.marks['opened'] - cli.marks['open_requested']:.2f} s, "
                        f"search + close {cli.marks['closed'] - cli.marks['opened']:.2f} s, "
                        f"exit {cli.finished - cli.marks['closed']:.2f} s"
                        if {"open_requested", "opened", "closed"} <= cli.marks.keys() else ""))
    searcher("warm-up", "api")  # loads the model once
    api = searcher(phrase, "api")
    if api.error:
        lines.append(f"  idle in-process search failed: {api.error}")
    else:
        lines.append(f"  idle in-process search (model loaded): {api.seconds:.3f} s = query "
                     f"embedding {api.marks['open_requested'] - api.started:.3f} s, opening the "
                     f"storage {api.marks['opened'] - api.marks['open_requested']:.3f} s, "
                     f"search + close {api.marks['closed'] - api.marks['opened']:.3f} s")
    return lines


# --- one edit ----------------------------------------------------------------------------


STAGES = ["sensor (edit -> run created)", "run start (created -> first step)",
          "snapshot + changes", "embed (embeddings step)", "qdrant pool/gap",
          "apply (qdrant step)", "run end (last step -> end_time)",
          "search visibility (run end -> found)"]


@dataclass
class Measurement:
    note: str
    phrase: str
    edited: float
    found_at: float | None
    polls: list[Poll]
    run: RunTimes | None
    stages: dict[str, float] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    @property
    def total(self) -> float | None:
        return None if self.found_at is None else self.found_at - self.edited


def measure_edit(instance: Instance, searcher: Searcher, note: Path, vault: Path,
                 rng: random.Random, args: argparse.Namespace) -> Measurement:
    phrase = nonsense_phrase(rng)
    # a section of its own, so that its chunk is about the phrase (see the docstring)
    with note.open("a") as handle:
        handle.write(f"\n## The {phrase}\n\nRemember that the {phrase} lives on the second "
                     "shelf.\n")
    edited = time.time()
    polls: list[Poll] = []
    found_at = None
    deadline = edited + args.timeout
    poll_interval = args.poll_interval
    if args.poll_after_run:  # control: no search process competes with the run
        with contextlib.suppress(TimeoutError):
            wait_for_run(instance, edited, args.timeout, pause=0.1)
    while time.time() < deadline:
        poll = searcher(phrase)
        polls.append(poll)
        if poll.found:
            found_at = poll.finished
            break
        pause = poll.started + poll_interval - time.time()
        if pause > 0:
            time.sleep(pause)
    measurement = Measurement(str(note.relative_to(vault)), phrase, edited, found_at, polls,
                              None)
    try:
        record = wait_for_run(instance, edited, max(30.0, deadline - time.time() + 30))
    except TimeoutError as error:
        measurement.details.append(f"no run: {error}")
        return measurement
    measurement.run = run_times(instance, record, edited - 60)
    breakdown(measurement)
    if found_at is None:  # indexed but not ranked first, or not indexed at all?
        check = searcher.api(phrase, limit=10)
        measurement.details.append(
            f"not found: the last poll's top hit was {polls[-1].top if polls else '-'!r}; "
            + (f"an in-process search ranks the new text {check.rank} of 10" if check.rank
               else "the new text is not among the top 10 hits of an in-process search"
               + (f" ({check.error})" if check.error else "")))
    return measurement


def breakdown(m: Measurement) -> None:
    run = m.run
    assert run is not None
    steps = run.steps
    embed = steps.get(f"embeddings__{COLLECTION}")
    apply = steps.get(f"qdrant__{COLLECTION}")
    ordered = sorted(steps.items(), key=lambda item: item[1][0])
    first_step = ordered[0][1][0] if ordered else None
    last_end = max((end for _, end, _ in steps.values() if end is not None), default=None)
    end = run.end
    s = m.stages
    s[STAGES[0]] = run.created - m.edited
    if first_step is not None:
        s[STAGES[1]] = first_step - run.created
    if embed and first_step is not None:
        s[STAGES[2]] = embed[0] - first_step
    if embed and embed[1] is not None:
        s[STAGES[3]] = embed[1] - embed[0]
    if embed and embed[1] is not None and apply:
        s[STAGES[4]] = apply[0] - embed[1]
    if apply and apply[1] is not None:
        s[STAGES[5]] = apply[1] - apply[0]
    if end is not None and last_end is not None:
        s[STAGES[6]] = end - last_end
    if end is not None and m.found_at is not None:
        s[STAGES[7]] = m.found_at - end

    d = m.details
    d.append(f"run {run.run_id[:8]}: {run.status}")
    if run.tick is not None:
        tick_end = run.tick.end_timestamp
        d.append(f"sensor: edit -> requesting tick started {run.tick.timestamp - m.edited:.2f} s"
                 f"; tick start -> run created {run.created - run.tick.timestamp:.2f} s"
                 + (f" (tick evaluation ended {tick_end - run.tick.timestamp:.2f} s after it "
                    "started)" if tick_end else ""))
        if run.previous_tick is not None:
            d.append(f"        previous tick {m.edited - run.previous_tick.timestamp:.2f} s "
                     f"before the edit, {run.tick.timestamp - run.previous_tick.timestamp:.2f} s "
                     "before the requesting tick")
    else:
        d.append("sensor: the requesting tick was not found in the instance")
    ev = run.events
    launched = ev.get("RUN_DEQUEUED", ev.get("RUN_STARTING"))
    if "RUN_ENQUEUED" in ev and launched and "RUN_START" in ev and first_step:
        d.append(f"run start: created -> enqueued {ev['RUN_ENQUEUED'] - run.created:.2f} s, "
                 f"queued -> launched by the coordinator {launched - ev['RUN_ENQUEUED']:.2f} s, "
                 f"launched -> RUN_START (run worker process start-up) "
                 f"{ev['RUN_START'] - launched:.2f} s, RUN_START -> first step "
                 f"{first_step - ev['RUN_START']:.2f} s")
    elif first_step:
        d.append("run start events: " + ", ".join(
            f"{k} +{v - run.created:.2f} s" for k, v in sorted(ev.items(), key=lambda i: i[1])))
    d.append("steps: " + ", ".join(
        f"{key} {(end_ - start) if end_ else float('nan'):.2f} s"
        + ("" if outcome == "STEP_SUCCESS" else f" ({outcome})")
        for key, (start, end_, outcome) in ordered))
    polls = m.polls
    if polls:
        d.append(f"polls: {len(polls)}, {statistics.median(p.seconds for p in polls):.2f} s "
                 f"median each; errors: {sum(1 for p in polls if p.error)}")
        final = polls[-1]
        if m.found_at is not None and end is not None:
            opened = final.marks.get("opened")
            d.append(f"found by a poll that started {final.started - end:+.2f} s from run end "
                     f"and took {final.seconds:.2f} s"
                     + (f"; it opened the storage {opened - apply[1]:+.2f} s from the end of "
                        "the qdrant step" if opened and apply and apply[1] else "")
                     + (f" (lock wait {final.lock_wait:.2f} s)" if final.lock_wait else ""))
    waits = [(i, p) for i, p in enumerate(polls, 1) if p.lock_wait > 0]
    for i, p in waits:
        d.append(f"lock wait: poll {i} waited {p.lock_wait:.2f} s for the storage "
                 f"(started {p.started - m.edited:.2f} s after the edit)")
    for i, p in enumerate(polls, 1):
        if p.error:
            d.append(f"poll {i} error: {p.error}")
    if apply is not None and apply[1] is not None:
        overlaps = [(i, min(held[1], apply[1]) - max(held[0], apply[0]))
                    for i, p in enumerate(polls, 1) if (held := p.held) is not None]
        overlaps = [(i, seconds) for i, seconds in overlaps if seconds > 0]
        if overlaps:
            from vector_sync.core import store

            retry_s = float(getattr(store, "LOCK_POLL_S", 0.2))
            d.append(f"storage contention: {len(overlaps)} poll(s) held the storage during the "
                     f"qdrant step ({', '.join(f'poll {i} {s * 1000:.0f} ms' for i, s in overlaps)}"
                     f"); a step that found it held retried every {retry_s:g} s "
                     f"(vector_sync.core.store), so it may have lost up to {retry_s:g} s per poll")


# --- main -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="edits to measure")
    parser.add_argument("--poll", choices=["cli", "api"], default="cli",
                        help="poll with the CLI in a new process (default) or in-process")
    parser.add_argument("--exact-cli", action="store_true",
                        help="poll with .venv/bin/vector-sync itself (no lock-wait figures)")
    parser.add_argument("--poll-interval", type=float, default=1.0,
                        help="minimum seconds between the starts of two polls")
    parser.add_argument("--poll-after-run", action="store_true",
                        help="control: start polling only once the run has finished (read "
                        "from the instance), so that no search competes with the run")
    parser.add_argument("--no-random-phase", dest="random_phase", action="store_false",
                        help="edit at once instead of after a random pause of up to one "
                        "sensor interval")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds to wait for one edit to become searchable")
    parser.add_argument("--startup-timeout", type=float, default=600.0,
                        help="seconds to wait for dagster dev and the initial sync")
    parser.add_argument("--seed", type=int, default=None, help="picks the notes and phrases")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    args.repeats = max(1, args.repeats)

    with scratch("vector_sync_dev_latency_", args.keep) as root:
        return run(args, root)


def run(args: argparse.Namespace, root: Path) -> int:
    shutil.copytree(REPO / "examples" / "vault", root / "vault")
    config_file = write_config(root)
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    notes = vault_notes(root, config_file)
    interval = sensor_interval(config_file)
    rng = random.Random(args.seed if args.seed is not None else time.time_ns())
    edited_notes = rng.sample(notes[: max(args.repeats, len(notes) // 2)],
                              min(args.repeats, len(notes)))
    port = free_port()
    load = os.getloadavg()
    print(f"dev_latency: `dagster dev` (webserver + daemon) on a copy of examples/vault "
          f"({len(notes)} synced notes), port {port}, {os.cpu_count()} cores, load average "
          f"{load[0]:.2f} at the start")
    print(f"code: {code_version()}")
    print(f"polling: {'in-process API' if args.poll == 'api' else 'CLI in a new process'}"
          f"{' (.venv/bin/vector-sync itself)' if args.exact_cli and args.poll == 'cli' else ''}"
          f", a poll starts at most every {args.poll_interval:g} s"
          + (", only after the run has finished (control)" if args.poll_after_run else "")
          + (f"; each edit after a random 0-{interval:g} s pause (the sensor interval)"
             if args.random_phase else ""))

    dev = DagsterDev(root, home, config_file, port)
    instance: Instance | None = None
    measurements: list[Measurement] = []
    leftovers: list[str] = []
    try:
        up = dev.wait_for_webserver(args.startup_timeout)
        print(f"  dagster dev up (webserver answers /server_info): {up:.1f} s")
        instance = Instance(home)
        initial = wait_for_run(instance, dev.started - 1, args.startup_timeout)
        created = as_epoch(initial.create_timestamp) or 0.0
        print(f"  initial sync (requested by the sensor's first tick): run created "
              f"{created - dev.started:.1f} s after `dagster dev` started, "
              f"{initial.dagster_run.status.value} after "
              f"{(as_epoch(initial.end_time) or created) - created:.1f} s")
        if initial.dagster_run.status.value != "SUCCESS":
            print(f"  the initial sync did not succeed; see {dev.log_path}")
            return 1
        searcher = Searcher(config_file, args.poll, args.exact_cli)
        for line in idle_search_lines(searcher, "how do I keep a sourdough starter alive"):
            print(line)
        for index, note in enumerate(edited_notes, 1):
            if args.random_phase:
                # the edit lands at a random point of the sensor's interval
                time.sleep(rng.uniform(0, interval))
            m = measure_edit(instance, searcher, note, root / "vault", rng, args)
            measurements.append(m)
            print_measurement(index, m)
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        if instance is not None:
            with contextlib.suppress(Exception):
                print_runs(instance, dev.started - 1)
            instance.dispose()
        leftovers = dev.stop()

    print_summary(measurements)
    problems = dev.problems()
    print(f"dagster dev output: {dev.log_path}" + (" (deleted; --keep keeps it)"
                                                   if not args.keep else ""))
    if problems:
        print(f"  {len(problems)} error/traceback lines in it:")
        for line in problems[:60]:
            print(f"    {line}")
    else:
        print("  no errors or tracebacks in it")
    for note in leftovers:
        print(f"  stopping: {note}")
    ok = bool(measurements) and all(m.total is not None and m.total <= TARGET_S
                                    for m in measurements)
    return 0 if ok else 1


def print_runs(instance: Instance, after: float) -> None:
    """Every run the instance holds: which sensor asked for it and how it ended."""
    records = list(instance.instance.get_run_records(
        instance.dg.RunsFilter(created_after=datetime.fromtimestamp(after, UTC))))
    kinds: dict[str, int] = {}
    for record in records:
        run = record.dagster_run
        key = (f"{run.job_name} ({run.tags.get('vector_sync/trigger', 'no trigger tag')}) "
               f"{run.status.value}")
        kinds[key] = kinds.get(key, 0) + 1
    print(f"\nruns in the instance: {len(records)}: "
          + ", ".join(f"{count} {key}" for key, count in sorted(kinds.items())))
    for record in records:
        if record.dagster_run.status.value not in ("SUCCESS", "STARTED", "QUEUED"):
            print(f"  run {record.dagster_run.run_id}: {record.dagster_run.status.value}")


def print_measurement(index: int, m: Measurement) -> None:
    total = m.total
    print(f"\nedit {index}: appended to {m.note!r} a section and sentence with {m.phrase!r}")
    for name in STAGES:
        if name in m.stages:
            print(f"  {name:<40}{m.stages[name]:8.2f} s")
    if total is None:
        print(f"  NOT found within the timeout ({len(m.polls)} polls)")
    else:
        print(f"  {'total: edit -> search finds it':<40}{total:8.2f} s   target <= "
              f"{TARGET_S:.0f} s: {'met' if total <= TARGET_S else 'MISSED'}")
    for line in m.details:
        print(f"    {line}")


def print_summary(measurements: list[Measurement]) -> None:
    if not measurements:
        print("\nno edit measured")
        return
    print(f"\nsummary over {len(measurements)} edit(s): each, then the median")
    for name in STAGES:
        values = [m.stages[name] for m in measurements if name in m.stages]
        if values:
            print(f"  {name:<40}" + "".join(f"{v:8.2f}" for v in values)
                  + f"   median {statistics.median(values):6.2f} s")
    totals = [m.total for m in measurements if m.total is not None]
    missing = len(measurements) - len(totals)
    if totals:
        median = statistics.median(totals)
        print(f"  {'total: edit -> search finds it':<40}" + "".join(f"{v:8.2f}" for v in totals)
              + f"   median {median:6.2f} s   target <= {TARGET_S:.0f} s: "
              f"{'met' if median <= TARGET_S else 'MISSED'}"
              + (f"; {missing} edit(s) never found" if missing else ""))
    waits = sum(1 for m in measurements for p in m.polls if p.lock_wait > 0)
    print(f"  polls that waited for the storage lock: {waits} of "
          f"{sum(len(m.polls) for m in measurements)}")
    load = os.getloadavg()
    print(f"  load average at the end: {load[0]:.2f} (2-core machines shared with other "
          "work make every stage noisy)")


if __name__ == "__main__":
    sys.exit(main())
