"""Shared by the benchmarks: a vocabulary and folder layout for generated vaults, the
config they are synced with, and a quiet Dagster log. Not a benchmark itself."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

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


def write_config(root: Path, batch_size: int = 32, state: str = "state",
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
