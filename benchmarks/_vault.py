"""Shared by the benchmarks: a vocabulary and folder layout for generated vaults, the
config they are synced with, and a quiet Dagster log. Not a benchmark itself."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any

import numpy as np
import yaml

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


def sentence(rng: random.Random, low: int = 6, high: int = 16) -> list[str]:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    words[0] = words[0].capitalize()
    return words


def titles(rng: random.Random, count: int) -> list[str]:
    """Unique note titles of 2-5 capitalized words (a number keeps them unique)."""
    return [" ".join(w.capitalize() for w in rng.choices(WORDS, k=rng.randint(2, 5)))
            + f" {i}" for i in range(count)]


def folders() -> list[str]:
    """area/topic/ folders, a third of them with area/topic/year/ below."""
    found = [f"{a}/{t}" for a in AREAS for t in TOPICS]
    return found + [f"{f}/{year}" for f in found[::3] for year in (2023, 2024, 2025)]


def frontmatter(rng: random.Random, title: str) -> list[str]:
    tags = rng.sample(WORDS, rng.randint(1, 4))
    created = f"20{rng.randint(18, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return ["---", f"title: {title}", f"tags: [{', '.join(tags)}]", f"created: {created}",
            "---", ""]


def short_body(rng: random.Random) -> str:
    """2-4 sentences: a note or record of a few hundred bytes, one chunk."""
    return " ".join(" ".join(sentence(rng)) + "." for _ in range(rng.randint(2, 4)))


def write_small_vault(vault: Path, count: int, seed: int, first: int = 0) -> list[Path]:
    """Notes `first` to `count` - 1 (small: a tag, a heading, short_body) over the folders()
    layout, each folder cut into buckets of at most 500 notes; written with bare os calls
    (open, write, close) because a million notes are written this way. Returns the paths in
    order. A vault can grow in steps: notes after `first` get a random stream of their own."""
    rng, places = random.Random(seed if first == 0 else seed * 1_000_003 + first), folders()
    paths = []
    for i in range(first, count):
        folder = vault / places[i % len(places)] / f"b{i // len(places) // 500:03d}"
        if (i // len(places)) % 500 == 0 or i == first:  # the first note of a bucket
            folder.mkdir(parents=True, exist_ok=True)
        title = " ".join(w.capitalize() for w in rng.choices(WORDS, k=3)) + f" {i}"
        path = folder / f"{title}.md"
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(handle, f"---\ntags: [{rng.choice(WORDS)}]\n---\n# {title}\n\n"
                 f"{short_body(rng)}\n".encode())
        os.close(handle)
        paths.append(path)
    return paths


def bare_walk(vault: Path) -> int:
    """The baseline of a listing: every file under `vault` found and stat'ed, nothing else."""
    count = 0
    for folder, _, files in os.walk(vault):
        for name in files:
            os.stat(os.path.join(folder, name))
            count += 1
    return count


def write_config(root: Path, batch_size: int = 16, state: str = "state",
                 name: str = "vector_sync.yaml") -> Path:
    """The repository's quick-start config (vector_sync.yaml) for the vault in root/vault,
    with the state (ledger, embedded Qdrant, Parquet files) in root/<state>."""
    config = {
        "state": {"dir": state},
        "embedding": {"model": "sentence-transformers/all-MiniLM-L6-v2",
                      "batch_size": batch_size},
        "sources": {SOURCE: {"kind": "markdown", "path": "vault", "include": ["**/*.md"],
                             "collections": [COLLECTION]}},
        "collections": {COLLECTION: {"embed": ["title", "body"],
                                     "payload": ["tags", "path", "modified_at", "aliases",
                                                 "links"]}},
    }
    path = root / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextmanager
def dagster_log(path: Path) -> Iterator[None]:
    """The Dagster console logger writes to stderr: into a file instead, so that the figures
    stay readable."""
    with path.open("a") as log, redirect_stderr(log):
        yield


def code_version() -> str:
    """The commit the measured code is at, and whether vector_sync/ has local changes."""
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "vector_sync"], cwd=here,
                               text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" + uncommitted changes in vector_sync/" if dirty else "")


# --- running a sync the way the CLI does, keeping Dagster's result ---------------------------


def sync_with_result(config_file: Path, config: Any, source: str) -> tuple[float, Any, Any]:
    """vector_sync.cli.runner.sync_source, timed, plus the ExecuteInProcessResult it builds its
    report from (taken from its call to collection_counts, so the run is exactly the CLI's).
    Returns (seconds, report, result)."""
    from vector_sync.cli import runner as run

    results = []
    original = run.collection_counts

    def keeping(result: Any, collections: list[str]) -> dict[str, dict[str, int]]:
        results.append(result)
        return original(result, collections)

    run.collection_counts = keeping  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        report = run.sync_source(config_file, config, source)
        seconds = time.perf_counter() - started
    finally:
        run.collection_counts = original  # type: ignore[assignment]
    return seconds, report, results[0] if results else None


def step_seconds(result: Any) -> dict[str, float]:
    """Step key -> seconds, in execution order, from the steps' success/failure events (the
    asset or check function plus Dagster's per-step work: resources, config, events)."""
    import dagster as dg

    steps: dict[str, float] = {}
    for event in result.all_events if result is not None else []:
        if event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            steps[event.step_key] = event.event_specific_data.duration_ms / 1000
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            steps[event.step_key] = float("nan")
    return steps


def asset_durations(result: Any) -> dict[str, float]:
    """Asset key ("changes_notes") -> the `duration_s` its materialization reported."""
    found: dict[str, float] = {}
    for event in result.get_asset_materialization_events() if result is not None else []:
        materialization = event.event_specific_data.materialization
        if materialization is not None and "duration_s" in materialization.metadata:
            found["/".join(materialization.asset_key.path)] = float(
                materialization.metadata["duration_s"].value)
    return found


def step_table(wall: float, steps: dict[str, float], assets: dict[str, float],
               indent: str = "      ") -> list[str]:
    """Lines: each step's seconds and share of the run, with the asset's own duration_s."""
    lines = []
    for step, seconds in steps.items():
        asset = step.replace("__", "/")
        own = f"   (asset duration_s {assets[asset]:.2f} s)" if asset in assets else ""
        lines.append(f"{indent}{step:<36}{seconds:9.3f} s  {seconds / wall:6.1%}{own}")
    rest = wall - sum(steps.values())
    lines.append(f"{indent}{'Dagster outside the steps':<36}{rest:9.3f} s  {rest / wall:6.1%}")
    return lines


# --- cheap setup for benchmarks that need an already-synced state ------------------------

STAND_IN_DIMENSION = 384


def fake_embed(self: Any, texts: Sequence[str]) -> np.ndarray:
    """Deterministic, normalized 384-dim vectors, seeded by each text: microseconds, not
    the model's tens of milliseconds per chunk. For setup only, and said so in the output."""
    vectors = np.empty((len(texts), STAND_IN_DIMENSION), dtype=np.float32)
    for row, text in enumerate(texts):
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
        vector = np.random.default_rng(seed).standard_normal(STAND_IN_DIMENSION)
        vectors[row] = vector / np.linalg.norm(vector)
    return vectors


@contextmanager
def cheap_setup() -> Iterator[None]:
    """For the setup run only: the stand-in embedder."""
    from vector_sync.core.text.embedder import Embedder

    original_embed = Embedder.embed
    Embedder.embed = fake_embed  # type: ignore[method-assign]
    try:
        yield
    finally:
        Embedder.embed = original_embed  # type: ignore[method-assign]


@contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary folder for a benchmark's data, deleted afterwards unless `keep`."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
