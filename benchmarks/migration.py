"""Migration figures: a model change and a chunker-only change of a generated vault, through
the migration engine in this process (`vector-sync migrate start` does the same).

- migration throughput: chunks embedded per second of `migrate start` (snapshot, diff,
  embed, apply, per batch, under the source lock) against raw embedding throughput of the
  very same chunk texts by the same model in the same process, handed over shortest first
  as the embed stage does (goal: >= 0.9x);
- chunks reused on a chunker-only change (same model): vectors of identical chunk texts
  taken from the serving generation, against the chunks of the new generation;
- the quality gate's cost: seconds of the canary queries at `migrate switch`.

`.venv/bin/python benchmarks/migration.py [--notes N] [--json PATH]`; run.py's `migration`
group calls `measure()`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _vault import sentence, titles, write_config  # noqa: E402

from vector_sync.cli import main as cli  # noqa: E402
from vector_sync.config import load_config  # noqa: E402
from vector_sync.core.generations import engine  # noqa: E402
from vector_sync.core.pipeline.embed import embed_by_length  # noqa: E402
from vector_sync.core.store import open_store  # noqa: E402
from vector_sync.core.text.embedder import Embedder  # noqa: E402
from vector_sync.core.text.model_files import default_model_dir  # noqa: E402


def _vault(root: Path, notes: int, seed: int) -> Path:
    rng = random.Random(seed)
    vault = root / "vault"
    vault.mkdir(parents=True)
    for i, title in enumerate(titles(rng, notes)):
        paragraphs = [" ".join(" ".join(sentence(rng)) + "." for _ in range(rng.randint(2, 16)))
                      for _ in range(rng.randint(1, 4))]
        body = "\n\n".join(f"## Part {p}\n\n{text}" for p, text in enumerate(paragraphs))
        (vault / f"note{i:04d}.md").write_text(f"# {title}\n\n{body}\n")
    return write_config(root)


def _edit(config_file: Path, change: dict[str, Any]) -> None:
    data = yaml.safe_load(config_file.read_text())
    data["collections"]["notes"].update(change)
    config_file.write_text(yaml.safe_dump(data))


def _sync(config_file: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # the setup's report is not a figure
        code = cli(["sync", "--config", str(config_file), "--json"])
    if code:
        raise RuntimeError(f"setup sync failed ({code})")


def _texts(config_file: Path, physical: str) -> list[str]:
    config = load_config(config_file)
    with open_store(config.qdrant, config.state) as store:
        points = sorted(store.scroll(physical, None, ["doc_id", "chunk_index", "text"]),
                        key=lambda p: (p.payload["doc_id"], p.payload["chunk_index"]))
    return [str(p.payload["text"]) for p in points]


def model_change(root: Path, notes: int, seed: int) -> dict[str, Any]:
    config_file = _vault(root, notes, seed)
    _sync(config_file)
    copy = root / "minilm-copy"
    shutil.copytree(default_model_dir(), copy)
    _edit(config_file, {"embedding": {"model": "local/minilm-copy", "model_path": str(copy),
                                      "batch_size": 16}})
    config = load_config(config_file)
    new_model = Embedder(config.embedding_for("notes"))
    new_model.embed(["warm up"])  # model load is neither side's work
    started = time.perf_counter()
    built = engine.start(config, "notes")
    seconds = time.perf_counter() - started
    texts = _texts(config_file, built.physical)
    started = time.perf_counter()  # the bare model, given the texts in its best order
    embed_by_length(new_model.embed, texts)
    raw_seconds = time.perf_counter() - started
    switched = engine.switch(config, "notes")
    migration_rate = built.chunks_embedded / seconds
    raw_rate = len(texts) / raw_seconds
    return {"chunks": built.chunks_embedded, "migration_s": round(seconds, 2),
            "migration_chunks_per_s": round(migration_rate, 1),
            "raw_chunks_per_s": round(raw_rate, 1), "ratio": round(migration_rate / raw_rate, 3),
            "gate_s": switched["gate"]["seconds"], "gate_canaries": switched["gate"]["canaries"],
            "gate_overlap": switched["gate"]["overlap"]}


def chunker_change(root: Path, notes: int, seed: int) -> dict[str, Any]:
    config_file = _vault(root, notes, seed)
    _sync(config_file)
    _edit(config_file, {"chunking": {"max_tokens": 128, "overlap_tokens": 16}})
    config = load_config(config_file)
    started = time.perf_counter()
    built = engine.start(config, "notes")
    seconds = time.perf_counter() - started
    total = built.chunks_embedded + built.chunks_reused
    switched = engine.switch(config, "notes")
    return {"chunks": total, "reused": built.chunks_reused, "embedded": built.chunks_embedded,
            "reused_share": round(built.chunks_reused / total, 3) if total else 0.0,
            "migration_s": round(seconds, 2), "gate_s": switched["gate"]["seconds"]}


def measure(root: Path, notes: int = 200, seed: int = 11) -> dict[str, Any]:
    (root / "model").mkdir()
    (root / "chunker").mkdir()
    return {"model_change": model_change(root / "model", notes, seed),
            "chunker_change": chunker_change(root / "chunker", notes, seed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="vector_sync_migration_") as folder:
        figures = measure(Path(folder), args.notes, args.seed)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()


def run_rows(root: Path, quick: bool, row: Any) -> list[dict[str, Any]]:
    """The `migration` group of benchmarks/run.py, as its rows."""
    figures = measure(root, notes=40 if quick else 200)
    model, chunker = figures["model_change"], figures["chunker_change"]
    return [
        row("migration", "migration: model change, chunks/s",
            f"{model['migration_chunks_per_s']} chunks/s ({model['chunks']} chunks)",
            f"raw embedding {model['raw_chunks_per_s']} chunks/s", model["ratio"], ">= 0.9x",
            model["ratio"] >= 0.9, **model),
        row("migration", "migration: chunker-only change, chunks reused",
            f"{chunker['reused']} of {chunker['chunks']} reused",
            f"{chunker['embedded']} embedded", chunker["reused_share"], **chunker),
        row("migration", "migration: quality gate",
            f"{model['gate_s']} s ({model['gate_canaries']} canaries)", **model),
    ]
