"""No-op re-sync of a large vault: what a sync costs when nothing changed.

Measures, on a generated vault of 20,000 Markdown notes (``--notes``) that is already
fully synced:

(a) scan + diff: the work of the ``source_snapshot`` and ``changes/<collection>`` assets
    without Dagster (the same engine calls as vector_sync/defs/assets.py: source.scan, the
    ledger look-ups, the snapshot Parquet, Differ.changes, the change-set Parquet), with a
    breakdown. Target: >= 20,000 documents/s.
(b) the whole ``vector-sync sync --config <cfg> --json`` process (Python start-up, imports,
    the Dagster run); its JSON must report nothing added/updated/payload_updated/deleted,
    0 chunks embedded and every note unchanged.
(c) the in-process ``vector_sync.defs.run.sync_source`` call (the Dagster run without the
    interpreter start-up).

Setup (not measured): the "already synced" state comes from one real sync_source run in
which ``Embedder.embed`` is replaced by a cheap deterministic stand-in (normalized random
384-dimensional vectors seeded by the text), because embedding 20,000 notes with the real
model would take far too long. Everything else in that run is real: embedded Qdrant, the
SQLite ledger, the Dagster run. The stand-in is removed again before anything is measured.

Run: ``.venv/bin/python benchmarks/noop_resync.py [--notes N] [--repeats R] [--quick]``.
Generated data lives in a temporary folder that is deleted at the end (``--keep`` keeps it).
DAGSTER_HOME is unset, so runs use an ephemeral Dagster instance and leave no history.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, redirect_stderr
from pathlib import Path
from typing import Any

import numpy as np
import yaml

TARGET_DOCS_PER_S = 20_000
DIMENSION = 384
SOURCE = "notes"
COLLECTION = "notes"

_VOCABULARY = """
able about above account across action activity actually add address after again against
age agent ago agree air all almost alone along already also although always among amount
analysis answer anyone anything appear apply approach area argue arm around arrive art
article ask assume attack attention author available avoid away baby back bad bag ball bank
bar base basket beat beautiful because become bed before begin behavior behind believe
benefit best better between beyond big bill birth bit black blood blue board body book born
both box branch bread break bring brother budget build building business buy call camera
campaign cancer candidate capital car card care career carry case catch cause cell center
central century certain chair challenge chance change character charge check child choice
choose church citizen city civil claim class clear close coach cold collection college color
come commercial common community company compare computer concern condition conference
consider consumer contain continue control cost could country couple course court cover
create crime cultural culture cup current customer cut dark data daughter day dead deal
death debate decade decide decision deep defense degree describe design despite detail
determine develop development difference different difficult dinner direction director
discover discuss discussion disease doctor dog door down draw dream drive drop drug during
each early east easy eat economic economy edge education effect effort eight either election
else employee end energy enjoy enough enter entire environment environmental especially
establish even evening event ever every evidence exactly example executive exist expect
experience expert explain eye face fact factor fail fall family far fast father fear federal
feel feeling few field fight figure fill film final finally financial find fine finger
finish fire firm first fish five floor fly focus follow food foot force foreign forget form
former forward four free friend front full fund future game garden gas general generation
girl give glass goal good government great green ground group grow growth guess gun guy hair
half hand hang happen happy hard have head health hear heart heat heavy help here herself
high himself history hold home hope hospital hot hotel hour house however huge human hundred
husband idea identify image imagine impact important improve include including increase
indeed indicate individual industry information inside instead institution interest
interesting international interview into investment involve issue item itself job join just
keep key kid kill kind kitchen know knowledge land language large last late later laugh law
lawyer lay lead leader learn least leave left leg legal less letter level lie life light
like likely line list listen little live local long look lose loss lot love low machine
magazine main maintain major majority make manage management manager many market marriage
material matter maybe mean measure media medical meet meeting member memory mention message
method middle might military million mind minute miss mission model modern moment money month
more morning most mother mouth move movement movie much music must myself name nation
national natural nature near nearly necessary need network never news newspaper next nice
night none north note nothing notice number occur offer office officer official often oil
once only onto open operation opportunity option order organization other others outside over
own owner page pain painting paper parent part participant particular particularly partner
party pass past patient pattern pay peace people per perform performance perhaps period
person personal phone physical pick picture piece place plan plant play player point police
policy political politics poor popular population position positive possible power practice
prepare present president pressure pretty prevent price private probably problem process
produce product production professional professor program project property protect prove
provide public pull purpose push put quality question quickly quite race radio raise range
rate rather reach read ready real reality realize really reason receive recent recently
recognize record red reduce reflect region relate relationship religious remain remember
remove report represent require research resource respond response rest result return reveal
rich right rise risk road rock role room rule run safe same save say scene school science
scientist score sea season seat second section security see seek seem sell send senior sense
series serious serve service set seven several shake share shoot short shot should shoulder
show side sign significant similar simple simply since sing single sister sit site situation
six size skill skin small smile social society soldier some somebody someone something
sometimes son song soon sort sound source south southern space speak special specific speech
spend sport spring staff stage stand standard star start state statement station stay step
still stock stop store story strategy street strong structure student study stuff style
subject success successful such suddenly suffer suggest summer support sure surface system
table take talk task tax teach teacher team technology television tell ten tend term test
than thank that their them themselves then theory there these they thing think third this
those though thought thousand threat three through throughout throw thus time today together
tonight too top total tough toward town trade traditional training travel treat treatment
tree trial trip trouble true truth try turn type under understand unit until upon usually
value various very victim view violence visit voice vote wait walk wall want war watch water
way weapon wear week weight well west western what whatever when where whether which while
white whole whom whose why wide wife will win wind window wish with within without woman
wonder word work worker world worry would write writer wrong yard yeah year yes yet young
"""
WORDS = _VOCABULARY.split()
AREAS = ["cooking", "engineering", "garden", "journal", "reading", "travel", "projects",
         "health", "finance", "music", "work", "ideas"]
TOPICS = ["notes", "archive", "drafts", "reference", "meetings", "research", "howto",
          "people", "places", "log"]


# --- the vault ------------------------------------------------------------------------------


def _sentence(rng: random.Random, low: int = 6, high: int = 16) -> list[str]:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    words[0] = words[0].capitalize()
    return words


def note_text(rng: random.Random, title: str, words: int, titles: Sequence[str]) -> str:
    """A note of about `words` body words: frontmatter, a heading, paragraphs and lists,
    now and then a sub-heading, a wikilink or an inline tag."""
    tags = rng.sample(WORDS, rng.randint(1, 4))
    created = f"20{rng.randint(18, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    lines = ["---", f"title: {title}", f"tags: [{', '.join(tags)}]", f"created: {created}",
             "---", "", f"# {title}", ""]
    written = 0
    while written < words:
        roll = rng.random()
        if roll < 0.08 and written > 40:
            heading = " ".join(_sentence(rng, 2, 4))
            lines += [f"## {heading}", ""]
        elif roll < 0.2:
            for _ in range(rng.randint(2, 5)):
                item = _sentence(rng, 3, 9)
                written += len(item)
                lines.append("- " + " ".join(item))
            lines.append("")
        else:
            paragraph = []
            for _ in range(rng.randint(2, 5)):
                sentence = _sentence(rng)
                written += len(sentence)
                paragraph.append(" ".join(sentence) + ".")
            if rng.random() < 0.3:
                paragraph.append(f"See [[{rng.choice(titles)}]].")
            if rng.random() < 0.2:
                paragraph.append(f"#{rng.choice(WORDS)}")
            lines += [" ".join(paragraph), ""]
    return "\n".join(lines)


def generate_vault(vault: Path, notes: int, min_words: int, max_words: int,
                   seed: int) -> int:
    """`notes` notes in nested folders (area/topic/ and some area/topic/year/); returns the
    number of bytes written."""
    rng = random.Random(seed)
    titles = [" ".join(w.capitalize() for w in rng.choices(WORDS, k=rng.randint(2, 5)))
              + f" {i}" for i in range(notes)]
    folders = [f"{a}/{t}" for a in AREAS for t in TOPICS]
    folders += [f"{f}/{year}" for f in folders[::3] for year in (2023, 2024, 2025)]
    size = 0
    made: set[str] = set()
    for title in titles:
        folder = rng.choice(folders)
        if folder not in made:
            (vault / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        text = note_text(rng, title, rng.randint(min_words, max_words), titles)
        data = text.encode("utf-8")
        (vault / folder / f"{title}.md").write_bytes(data)
        size += len(data)
    return size


def write_config(root: Path) -> Path:
    """The repository's quick-start config (vector_sync.yaml), pointed at the temp vault."""
    config = {
        "state": {"dir": "state"},
        "embedding": {"model": "sentence-transformers/all-MiniLM-L6-v2", "batch_size": 32},
        "sources": {SOURCE: {"kind": "markdown", "path": "vault", "include": ["**/*.md"],
                             "collections": [COLLECTION]}},
        "collections": {COLLECTION: {"embed": ["title", "body"],
                                     "payload": ["tags", "path", "modified_at", "aliases",
                                                 "links"]}},
    }
    path = root / "vector_sync.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- the stand-in embedder (setup only) -----------------------------------------------------


def fake_embed(self: Any, texts: Sequence[str]) -> np.ndarray:
    """Deterministic, normalized 384-dim vectors, seeded by each text: microseconds, not
    the model's tens of milliseconds per chunk."""
    vectors = np.empty((len(texts), DIMENSION), dtype=np.float32)
    for row, text in enumerate(texts):
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
        vector = np.random.default_rng(seed).standard_normal(DIMENSION)
        vectors[row] = vector / np.linalg.norm(vector)
    return vectors


@contextmanager
def cheap_setup() -> Iterator[None]:
    """For the setup run only: the stand-in embedder, and embedded Qdrant's SQLite file
    without an fsync per point (it commits every point on its own: 40,000 points would
    take minutes of fsyncs). The data written is the same; both are undone afterwards."""
    from qdrant_client.local.persistence import CollectionPersistence

    from vector_sync.core.embedder import Embedder

    original_embed, original_table = Embedder.embed, CollectionPersistence._ensure_table

    def unsynced_table(self: Any) -> None:
        self.storage.execute("PRAGMA synchronous = OFF")
        original_table(self)

    Embedder.embed = fake_embed  # type: ignore[method-assign]
    CollectionPersistence._ensure_table = unsynced_table  # type: ignore[method-assign]
    try:
        yield
    finally:
        Embedder.embed = original_embed  # type: ignore[method-assign]
        CollectionPersistence._ensure_table = original_table  # type: ignore[method-assign]


@contextmanager
def dagster_log(path: Path) -> Iterator[None]:
    """The Dagster console logger writes to stderr: into a file instead, so that the figures
    stay readable (`--verbose` shows them)."""
    with path.open("a") as log, redirect_stderr(log):
        yield


# --- (a) scan + diff, instrumented --------------------------------------------------------


class Timers:
    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def iterate(self, name: str, items: Iterable[Any]) -> Iterator[Any]:
        """`items`, with the time spent producing them (not consuming them) added to name."""
        iterator = iter(items)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.seconds[name] += time.perf_counter() - started
                return
            self.seconds[name] += time.perf_counter() - started
            yield item

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.time(name):
                return function(*args, **kwargs)
        return timed


LEDGER_OPEN, LEDGER_READ = "ledger open", "ledger read"


class TimedSource:
    """The real source, with the time spent in scan() recorded."""

    def __init__(self, source: Any, timers: Timers) -> None:
        self._source, self._timers, self.name = source, timers, source.name

    def scan(self) -> Iterator[Any]:
        return self._timers.iterate("scan", self._source.scan())

    def read(self, doc_ids: Iterable[str]) -> Iterator[Any]:
        return self._timers.iterate("read", self._source.read(doc_ids))


def timed_ledger(config: Any, timers: Timers) -> Any:
    from vector_sync.core.ledger import Ledger

    with timers.time(LEDGER_OPEN):
        ledger = Ledger(config.state.ledger_sqlalchemy_url())
    ledger.get_state = timers.wrap(LEDGER_READ, ledger.get_state)  # type: ignore[method-assign]
    ledger.rows = timers.wrap(LEDGER_READ, ledger.rows)  # type: ignore[method-assign]
    source_rows = ledger.source_rows
    ledger.source_rows = (  # type: ignore[method-assign]
        lambda source: timers.iterate(LEDGER_READ, source_rows(source)))
    return ledger


def scan_and_diff(config_file: Path, scratch: Path) -> tuple[float, dict[str, float], dict]:
    """The source_snapshot and changes assets' work for one collection (assets.py, minus
    Dagster), writing their Parquet files under `scratch`. Returns (seconds, breakdown,
    diff counts)."""
    from vector_sync.config import load_config
    from vector_sync.core import engine
    from vector_sync.core.embedder import Embedder
    from vector_sync.core.state_files import CHANGES, SNAPSHOT, StateFiles, read_rows, write_rows
    from vector_sync.defs.assets import check_chunk_budget
    from vector_sync.sources import build_source

    files = StateFiles(scratch)
    snap, chg = Timers(), Timers()  # one per asset
    started = time.perf_counter()
    # source_snapshot
    with snap.time("total"):
        with snap.time("config"):
            settings = load_config(config_file)
        source = TimedSource(build_source(SOURCE, settings.sources[SOURCE]), snap)
        ledger = timed_ledger(settings, snap)
        try:
            specs = engine.collection_specs(settings, SOURCE)
            states: Counter[str] = Counter()

            def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
                for row in rows:
                    states[row["state"]] += 1
                    yield row

            write_rows(files.snapshot(SOURCE), SNAPSHOT,
                       counted(engine.snapshot_rows(source, ledger, specs)))
        finally:
            ledger.close()
    # changes/<collection>
    with chg.time("total"):
        with chg.time("config"):
            settings = load_config(config_file)
        spec = next(s for s in engine.collection_specs(settings, SOURCE) if s.name == COLLECTION)
        with chg.time("tokenizer"):
            embedder = Embedder(settings.embedding_for(COLLECTION))
            check_chunk_budget(spec, embedder)
            differ = engine.Differ(spec, embedder.count_tokens())
        diff = engine.Diff()
        ledger = timed_ledger(settings, chg)
        try:
            rows = ledger.rows(SOURCE, COLLECTION)
        finally:
            ledger.close()
        with chg.time("diff"):
            write_rows(files.changes(COLLECTION, SOURCE), CHANGES,
                       differ.changes(read_rows(files.snapshot(SOURCE)), rows, diff))
            files.change_counts(COLLECTION, SOURCE).write_text(json.dumps(diff.as_dict()))
    seconds = time.perf_counter() - started
    s, c = snap.seconds, chg.seconds
    breakdown = {
        "scan (source.scan: list folders, stat files)": s["scan"],
        "ledger read, snapshot (get_state, source_rows)": s[LEDGER_READ],
        "ledger read, changes (rows)": c[LEDGER_READ],
        "ledger open x2 (engine + migration check)": s[LEDGER_OPEN] + c[LEDGER_OPEN],
        "config load x2": s["config"] + c["config"],
        "snapshot rest (hint match, write snapshot parquet)": s["total"] - sum(
            s[k] for k in ("config", LEDGER_OPEN, LEDGER_READ, "scan", "read")),
        "tokenizer + chunk budget": c["tokenizer"],
        "diff (read snapshot, Differ, write change set)": c["diff"],
        "read (notes whose hint changed: none expected)": s["read"],
    }
    breakdown["other"] = seconds - sum(breakdown.values())
    return seconds, breakdown, {**diff.as_dict(), "snapshot_states": dict(states)}


# --- (b) and (c) ----------------------------------------------------------------------------

NOOP_KEYS = ("added", "updated", "payload_updated", "deleted", "failed", "chunks_embedded")


def check_noop(counts: dict[str, int], notes: int) -> list[str]:
    problems = [f"{k} = {counts.get(k)}" for k in NOOP_KEYS if counts.get(k) != 0]
    if counts.get("unchanged") != notes:
        problems.append(f"unchanged = {counts.get('unchanged')}, expected {notes}")
    return problems


def cli_sync(config_file: Path, env: dict[str, str]) -> tuple[float, dict[str, Any], int]:
    command = [str(Path(sys.executable).with_name("vector-sync")), "sync",
               "--config", str(config_file), "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"vector-sync sync exited {done.returncode} without JSON") from None
    return seconds, report, done.returncode


def in_process_sync(config_file: Path) -> tuple[float, dict[str, Any]]:
    from vector_sync.config import load_config
    from vector_sync.defs.run import sync_source

    started = time.perf_counter()
    result = sync_source(config_file, load_config(config_file), SOURCE)
    return time.perf_counter() - started, result


# --- main -----------------------------------------------------------------------------------


def _stats(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f} s"
    return (f"median {statistics.median(values):.3f} s, best {min(values):.3f} s "
            f"({', '.join(f'{v:.3f}' for v in values)})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=20_000, help="notes in the vault")
    parser.add_argument("--min-words", type=int, default=100)
    parser.add_argument("--max-words", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 500 notes, one run of each measurement")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--verbose", action="store_true", help="show the Dagster run logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.notes, args.repeats = min(args.notes, 500), 1

    os.environ.pop("DAGSTER_HOME", None)  # an ephemeral instance: no run history written
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    root = Path(tempfile.mkdtemp(prefix="vector_sync_noop_"))
    try:
        return run(args, root, env)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path, env: dict[str, str]) -> int:
    notes = args.notes
    log_file = root / "dagster.log"

    def quiet() -> Any:
        return nullcontext() if args.verbose else dagster_log(log_file)

    print(f"noop_resync: {notes} notes of {args.min_words}-{args.max_words} words, "
          f"{args.repeats} run(s) per measurement, {os.cpu_count()} CPUs, in {root}")

    started = time.perf_counter()
    size = generate_vault(root / "vault", notes, args.min_words, args.max_words, args.seed)
    config_file = write_config(root)
    print(f"setup: generated the vault ({size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s, not measured")

    started = time.perf_counter()
    from vector_sync.config import load_config
    from vector_sync.defs.run import sync_source

    with cheap_setup(), quiet():
        initial = sync_source(config_file, load_config(config_file), SOURCE)
    counts = initial["collections"][COLLECTION]
    print(f"setup: initial sync with a stand-in embedder, not measured "
          f"({time.perf_counter() - started:.1f} s: {counts['added']} added, "
          f"{counts['chunks_embedded']} chunks given stand-in vectors)")
    if initial["error"] or counts["added"] != notes or counts["failed"]:
        print(f"setup failed: {initial}")
        if log_file.exists():
            print(log_file.read_text()[-5000:])
        return 1

    failures: list[str] = []

    # (a)
    scan_runs = []
    for n in range(args.repeats):
        seconds, breakdown, diff = scan_and_diff(config_file, root / f"scratch{n}")
        scan_runs.append((seconds, breakdown))
        problems = check_noop({**diff, "chunks_embedded": diff["chunks_to_embed"]}, notes)
        if problems or diff["snapshot_states"] != {"skipped": notes}:
            failures.append(f"(a) the diff is not a no-op: {problems}, {diff}")
    median_a = statistics.median(s for s, _ in scan_runs)
    best_breakdown = min(scan_runs, key=lambda r: r[0])[1]
    docs_per_s = notes / median_a

    # (b)
    cli_runs = []
    for _ in range(args.repeats):
        seconds, report, code = cli_sync(config_file, env)
        cli_runs.append(seconds)
        source_report = report["sources"][SOURCE]
        problems = check_noop(source_report["collections"][COLLECTION], notes)
        if code or source_report["error"] or problems:
            failures.append(f"(b) vector-sync sync (exit {code}) did not report a no-op: "
                            f"{problems or source_report}")

    # (c)
    inproc_runs = []
    for _ in range(args.repeats):
        with quiet():
            seconds, result = in_process_sync(config_file)
        inproc_runs.append(seconds)
        problems = check_noop(result["collections"][COLLECTION], notes)
        if result["error"] or problems:
            failures.append(f"(c) sync_source did not report a no-op: {problems or result}")

    verdict = "MEETS" if docs_per_s >= TARGET_DOCS_PER_S else "MISSES"
    print()
    print("=" * 78)
    print(f"no-op re-sync of {notes} notes (nothing changed)")
    print("-" * 78)
    print(f"(a) scan + diff (snapshot + changes, no Dagster): {_stats([s for s, _ in scan_runs])}")
    print(f"    {docs_per_s:,.0f} documents/s (median run)   target >= {TARGET_DOCS_PER_S:,}"
          f" documents/s: {verdict}")
    print("    breakdown (fastest run):")
    for name, seconds in best_breakdown.items():
        print(f"      {name:<50}{seconds:8.3f} s")
    print(f"(b) `vector-sync sync --json` process: {_stats(cli_runs)}")
    print(f"    ({notes / statistics.median(cli_runs):,.0f} documents/s end to end)")
    print(f"(c) in-process sync_source (Dagster run): {_stats(inproc_runs)}")
    print(f"    ({notes / statistics.median(inproc_runs):,.0f} documents/s)")
    print(f"    process start-up + imports + config, i.e. (b) - (c): "
          f"{statistics.median(cli_runs) - statistics.median(inproc_runs):.3f} s")
    print(f"no-op checks (0 added/updated/payload_updated/deleted/failed, 0 chunks embedded, "
          f"{notes} unchanged): {'OK' if not failures else 'FAILED'}")
    for failure in failures:
        print(f"  {failure}")
    print("=" * 78)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
