"""Initial sync of a fresh vault with the real model: how close the pipeline gets to the
speed of the model alone.

Generates 150 Markdown notes (``--notes``) of 300-900 words with headings, then, in one
process:

(a) pipeline: the full initial sync of the source, by vector_sync.cli.runner.sync_source
    (the CLI's Dagster run: snapshot, changes, embeddings with the real offline
    all-MiniLM-L6-v2, embedded Qdrant, the SQLite ledger, and whatever checks the run
    includes). Wall time, chunks/s over the whole run, and a breakdown by Dagster step with
    each asset's own ``duration_s`` from its materialization metadata.
(b) raw fastembed: the exact chunk texts the pipeline embedded, read back from its change
    set (state/changes/<collection>/<source>.parquet, column ``chunks``), embedded directly
    with ``Embedder(config.embedding).embed(texts)`` (the already loaded model, the same
    batch size). chunks/s.

The model is loaded and warmed up before either is timed; the load is reported on its own.
Target: pipeline chunks/s (over the whole run's wall time) / raw chunks/s >= 0.9.

On a shared machine wall times swing with the load of other processes, so the script also
prints the ratio by CPU time and the ratio the run would have had if its embeddings stage
had run at exactly the raw speed; ``--repeats N`` runs N (pipeline, raw) pairs, each on a
fresh state, and reports the median pair.

Run: ``.venv/bin/python benchmarks/initial_sync.py [--notes N] [--repeats N] [--quick]``.
Generated data lives in a temporary folder that is deleted at the end (``--keep`` keeps
it). DAGSTER_HOME is unset, so runs use an ephemeral Dagster instance and leave no history.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _vault import (
    COLLECTION,
    SOURCE,
    WORDS,
    asset_durations,
    code_version,
    dagster_log,
    folders,
    frontmatter,
    scratch,
    sentence,
    step_seconds,
    step_table,
    sync_with_result,
    titles,
    write_config,
)

TARGET_RATIO = 0.9

# --- the vault ------------------------------------------------------------------------------


def _paragraph(rng: random.Random, others: Sequence[str]) -> tuple[str, int]:
    sentences = [sentence(rng) for _ in range(rng.randint(3, 6))]
    text = " ".join(" ".join(s) + "." for s in sentences)
    if rng.random() < 0.25:
        text += f" Related: [[{rng.choice(others)}]]."
    return text, sum(len(s) for s in sentences)


def note_text(rng: random.Random, title: str, words: int, others: Sequence[str]) -> str:
    """About `words` body words: an intro, then `##` sections (some with `###`
    sub-sections) of paragraphs, lists and now and then a code block."""
    lines = [*frontmatter(rng, title), f"# {title}", ""]
    text, written = _paragraph(rng, others)
    lines += [text, ""]
    while written < words:
        lines += [f"## {' '.join(sentence(rng, 2, 5))}", ""]
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.3:
                lines += [f"### {' '.join(sentence(rng, 2, 4))}", ""]
            roll = rng.random()
            if roll < 0.2:
                for _ in range(rng.randint(3, 6)):
                    item = sentence(rng, 3, 10)
                    written += len(item)
                    lines.append("- " + " ".join(item))
                lines.append("")
            elif roll < 0.27:
                code = [f"{rng.choice(WORDS)}_{n} = {rng.randint(0, 999)}" for n in range(4)]
                written += 12
                lines += ["```python", *code, "```", ""]
            else:
                text, count = _paragraph(rng, others)
                written += count
                lines += [text, ""]
    return "\n".join(lines)


def generate_vault(vault: Path, notes: int, min_words: int, max_words: int,
                   seed: int) -> int:
    rng = random.Random(seed)
    names = titles(rng, notes)
    places = folders()
    size = 0
    for title in names:
        folder = vault / rng.choice(places)
        folder.mkdir(parents=True, exist_ok=True)
        data = note_text(rng, title, rng.randint(min_words, max_words), names).encode()
        (folder / f"{title}.md").write_bytes(data)
        size += len(data)
    return size


# --- the two measurements -------------------------------------------------------------------


def changed_chunks(state_dir: Path) -> list[str]:
    """The chunk texts the embeddings asset embedded, in its order (added/updated rows of the
    change set)."""
    import pyarrow.parquet as pq

    from vector_sync.core.pipeline.state_files import StateFiles

    table = pq.read_table(StateFiles(state_dir).changes(COLLECTION, SOURCE),
                          columns=["action", "chunks"]).to_pydict()
    return [text for action, chunks in zip(table["action"], table["chunks"], strict=True)
            if action in ("added", "updated") for text in chunks]


def pipeline_vectors(state_dir: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    from vector_sync.core.pipeline.state_files import StateFiles

    column = pq.read_table(StateFiles(state_dir).embeddings(COLLECTION, SOURCE),
                           columns=["vector"]).column("vector")
    return np.asarray(column.to_pylist(), dtype=np.float32)


def warm_up_texts(rng: random.Random, count: int = 64) -> list[str]:
    """Chunk-sized texts (about 200 words) so that the model runs at full shapes once."""
    return [" ".join(" ".join(sentence(rng)) + "." for _ in range(16)) for _ in range(count)]


# --- main -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=150, help="notes in the vault")
    parser.add_argument("--min-words", type=int, default=300)
    parser.add_argument("--max-words", type=int, default=900)
    parser.add_argument("--batch-size", type=int, default=32,
                        help="embedding.batch_size in the config (both runs use it)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=1,
                        help="pipeline + raw pairs, each on a fresh state (median reported); "
                        "use 3 or more on a busy machine")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 notes")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--verbose", action="store_true", help="show the Dagster run logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.notes = min(args.notes, 20)
    args.repeats = max(1, args.repeats)

    os.environ.pop("DAGSTER_HOME", None)  # an ephemeral instance: no run history written
    with scratch("vector_sync_initial_", args.keep) as root:
        return run(args, root)


@dataclass
class Pair:
    """One pipeline run and the raw baseline on its chunks."""

    wall: float
    cpu: float
    chunks: int
    steps: dict[str, float]  # Dagster step -> seconds
    assets: dict[str, float]  # asset key -> its duration_s
    raw_wall: float
    raw_cpu: float
    model_wall: float  # inside the pipeline: time in Embedder.embed calls
    model_cpu: float

    @property
    def embedding_stage(self) -> float:
        return self.assets.get(f"embeddings_{COLLECTION}", 0.0)

    @property
    def ratio(self) -> float:
        return (self.chunks / self.wall) / (self.chunks / self.raw_wall)

    @property
    def cpu_ratio(self) -> float:
        return self.raw_cpu / self.cpu

    @property
    def estimate(self) -> float:
        """The ratio if the embeddings stage had run exactly as fast as the raw baseline:
        what the pipeline's own work costs, with the machine's load noise taken out."""
        rest = self.wall - self.embedding_stage
        return self.raw_wall / (self.raw_wall + rest)


def one_pair(args: argparse.Namespace, root: Path, n: int, log_file: Path,
             problems: list[str]) -> Pair:
    """(a) then (b) on a fresh state dir (so every pipeline run is an initial sync)."""
    from vector_sync.config import load_config
    from vector_sync.core.text.embedder import Embedder

    config_file = write_config(root, batch_size=args.batch_size, state=f"state{n}",
                               name=f"vector_sync{n}.yaml")
    config = load_config(config_file)
    model = {"wall": 0.0, "cpu": 0.0}
    original = Embedder.embed

    def timed_embed(self: Any, texts: Sequence[str]) -> np.ndarray:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return original(self, texts)
        finally:
            model["wall"] += time.perf_counter() - wall
            model["cpu"] += time.process_time() - cpu

    Embedder.embed = timed_embed  # type: ignore[method-assign]
    try:
        with nullcontext() if args.verbose else dagster_log(log_file):
            cpu = time.process_time()
            wall, report, result = sync_with_result(config_file, config, SOURCE)
            cpu = time.process_time() - cpu
    finally:
        Embedder.embed = original  # type: ignore[method-assign]
    if report["error"]:
        tail = log_file.read_text()[-5000:] if log_file.exists() else ""
        raise SystemExit(f"the pipeline run failed: {report['error']}\n{tail}")
    counts = report["collections"][COLLECTION]

    texts = changed_chunks(config.state.dir)
    raw_cpu = time.process_time()
    started = time.perf_counter()
    raw = Embedder(config.embedding).embed(texts)
    raw_wall = time.perf_counter() - started
    raw_cpu = time.process_time() - raw_cpu

    if counts["added"] != args.notes or counts["failed"]:
        problems.append(f"expected {args.notes} added and none failed: {counts}")
    if len(texts) != counts["chunks_embedded"]:
        problems.append(f"the change set holds {len(texts)} chunks, "
                        f"{counts['chunks_embedded']} were embedded")
    piped = pipeline_vectors(config.state.dir)
    max_diff = float(np.abs(piped - raw).max()) if piped.shape == raw.shape else float("nan")
    if not max_diff < 1e-4:
        problems.append(f"pipeline and raw vectors differ (max |diff| {max_diff})")
    return Pair(wall, cpu, len(texts), step_seconds(result), asset_durations(result), raw_wall,
                raw_cpu, model["wall"], model["cpu"])


def run(args: argparse.Namespace, root: Path) -> int:
    log_file = root / "dagster.log"
    print(f"initial_sync: {args.notes} notes of {args.min_words}-{args.max_words} words, "
          f"embedding batch size {args.batch_size}, {args.repeats} run(s), "
          f"{os.cpu_count()} CPUs, in {root}")
    print(f"code: {code_version()}")
    started = time.perf_counter()
    size = generate_vault(root / "vault", args.notes, args.min_words, args.max_words,
                          args.seed)
    print(f"setup: generated the vault ({size / 1e3:.0f} kB) in "
          f"{time.perf_counter() - started:.1f} s, not measured")

    started = time.perf_counter()
    import vector_sync.cli.runner  # noqa: F401 - the Dagster + Qdrant imports, not measured
    from vector_sync.config import EmbeddingConfig
    from vector_sync.core.text.embedder import Embedder

    imports = time.perf_counter() - started
    embedder = Embedder(EmbeddingConfig(batch_size=args.batch_size))  # what the config says
    started = time.perf_counter()
    embedder.embed(["warm-up"])
    model_load = time.perf_counter() - started
    started = time.perf_counter()
    embedder.embed(warm_up_texts(random.Random(args.seed)))
    warm_up = time.perf_counter() - started
    print(f"setup: imports {imports:.2f} s, model load + first call {model_load:.2f} s, "
          f"warm-up (64 chunk-sized texts) {warm_up:.2f} s; none of it is measured below")

    problems: list[str] = []
    pairs = []
    for n in range(args.repeats):
        pairs.append(one_pair(args, root, n, log_file, problems))
        if args.repeats > 1:
            p = pairs[-1]
            print(f"run {n + 1}: pipeline {p.wall:.2f} s, raw {p.raw_wall:.2f} s, ratio "
                  f"{p.ratio:.2f}, load average {os.getloadavg()[0]:.1f}")
    pair = sorted(pairs, key=lambda p: p.ratio)[len(pairs) // 2]  # the median run
    chunks = pair.chunks
    tokens = sum(map(embedder.count_tokens(), changed_chunks(root / "state0"))) / max(chunks, 1)
    pipeline_rate, raw_rate = chunks / pair.wall, chunks / pair.raw_wall
    embed_stage_rate = chunks / pair.embedding_stage if pair.embedding_stage else 0.0

    print()
    print("=" * 78)
    print(f"initial sync of {args.notes} notes: {chunks} chunks (mean {tokens:.0f} tokens), "
          f"all-MiniLM-L6-v2 int8 ONNX; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs" + (", median run" if len(pairs) > 1 else ""))
    print("-" * 78)
    print(f"model load (one-time, not counted below)       {model_load:8.2f} s")
    print(f"(a) pipeline, whole Dagster run (wall)         {pair.wall:8.2f} s   "
          f"{pipeline_rate:7.1f} chunks/s   (CPU {pair.cpu:.1f} s)")
    print("    Dagster steps of the run:")
    for line in step_table(pair.wall, pair.steps, pair.assets):
        print(line)
    print(f"      embeddings stage alone: {embed_stage_rate:.1f} chunks/s; in it, Embedder.embed"
          f" {pair.model_wall:.2f} s (CPU {pair.model_cpu:.1f} s),\n      the stage's own work "
          f"(Parquet in/out, float lists) {pair.embedding_stage - pair.model_wall:.2f} s")
    print(f"(b) raw fastembed, same {chunks} texts           {pair.raw_wall:8.2f} s   "
          f"{raw_rate:7.1f} chunks/s   (CPU {pair.raw_cpu:.1f} s)")
    verdict = "MEETS" if pair.ratio >= TARGET_RATIO else "MISSES"
    print(f"pipeline_chunks_per_s / raw_chunks_per_s = {pipeline_rate:.1f} / {raw_rate:.1f}"
          f" = {pair.ratio:.2f}   target >= {TARGET_RATIO}: {verdict}")
    print(f"  noise checks: the same ratio by CPU time = {pair.cpu_ratio:.2f}; "
          f"embeddings stage alone / raw = {embed_stage_rate / raw_rate:.2f};\n"
          f"  the model inside the pipeline vs raw: wall {pair.model_wall:.2f} / "
          f"{pair.raw_wall:.2f} s, CPU {pair.model_cpu:.1f} / {pair.raw_cpu:.1f} s;")
    print(f"  if the embeddings stage ran exactly at the raw speed, the ratio would be "
          f"{pair.estimate:.2f}\n  (raw / (raw + everything else in the run))")
    print(f"pipeline vectors == raw vectors: {'yes' if not problems else 'NO'}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("=" * 78)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
