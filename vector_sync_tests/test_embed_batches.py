"""What the embed stage hands the real model at once: each call holds at most
`embedding.batch_size` texts and at most `embedding.max_batch_tokens` padded tokens (its
count times its longest text's tokens), which is what bounds the model's memory on notes
whose chunks all fill the chunker's budget, while every chunk is still embedded once, in
order, to the vector it gets on its own."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np

from vector_sync.core.pipeline.embed import embedding_rows
from vector_sync.core.pipeline.rows import Change
from vector_sync.core.settings import EmbeddingConfig
from vector_sync.core.text.embedder import Embedder

WORDS = ["river", "mountain", "garden", "kitchen", "letter", "market", "winter", "harbor",
         "teacher", "village", "engine", "lantern", "meadow", "painter", "signal", "bridge"]
BUDGET = 320  # three or four of the long texts per call, where batch_size allows eight


class _Recording:
    """The loaded fastembed model, every `embed` call's texts written down (an observer: the
    vectors are the model's own)."""

    def __init__(self, model: Any, calls: list[list[str]]) -> None:
        self.model, self.calls = model, calls

    def embed(self, texts: list[str], batch_size: int) -> Any:
        self.calls.append(list(texts))
        assert batch_size >= len(texts), "fastembed would cut the call again"
        return self.model.embed(texts, batch_size=batch_size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


class ObservedEmbedder(Embedder):
    def __init__(self, config: EmbeddingConfig) -> None:
        super().__init__(config)
        self.seen: list[list[str]] = []

    @property
    def _model(self) -> Any:
        return _Recording(super()._model, self.seen)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)) + "."


def test_model_calls_stay_within_the_token_budget_and_vectors_match_unbatched() -> None:
    rng = random.Random(3)
    # three notes whose long chunks (about 70-90 tokens: a small budget keeps the test fast;
    # the bound is the same for chunks that fill a 256-token window) and short ones, mixed
    docs = {f"note{n}": [_text(rng, rng.choice([6, 12, 60, 80])) for _ in range(8)]
            for n in range(3)}
    changes = [Change(doc_id, "added", content_hash=f"h-{doc_id}", chunks=chunks)
               for doc_id, chunks in docs.items()]
    embedder = ObservedEmbedder(EmbeddingConfig(batch_size=8, max_batch_tokens=BUDGET))
    count, window = embedder.count_tokens(), embedder.max_tokens()
    stats: Counter[str] = Counter()

    rows = list(embedding_rows(changes, embedder.embed, {}, {}, stats))

    assert [(r.doc_id, r.chunk_index) for r in rows] == [
        (doc_id, i) for doc_id, chunks in docs.items() for i in range(len(chunks))]
    assert stats["chunks_embedded"] == 24
    every = [text for chunks in docs.values() for text in chunks]
    assert sorted(text for call in embedder.seen for text in call) == sorted(every)
    # (texts, padded tokens) of each model call
    padded = [(len(call), len(call) * max(min(count(t), window) for t in call))
              for call in embedder.seen]
    assert all(size <= 8 and tokens <= BUDGET for size, tokens in padded), padded
    longest = max(min(count(t), window) for t in every)
    assert longest > BUDGET // 8, "the long chunks must not fit batch_size at once"
    # the bound cut the long chunks' calls, not the short ones': those still fill batch_size
    sizes = [size for size, _ in padded]
    assert max(sizes) == 8 and min(sizes) <= BUDGET // longest, padded

    model = Embedder(EmbeddingConfig())._model
    for row in rows:
        alone = next(iter(model.embed([docs[row.doc_id][row.chunk_index]], batch_size=1)))
        assert np.allclose(row.vector, alone, atol=1e-4), (row.doc_id, row.chunk_index)


def test_a_text_over_the_budget_goes_alone_and_nothing_is_dropped() -> None:
    rng = random.Random(5)
    texts = [_text(rng, words) for words in (300, 5, 5, 280, 8, 8, 8)]
    embedder = Embedder(EmbeddingConfig(batch_size=3, max_batch_tokens=100))
    calls = list(embedder.calls(texts))
    assert [text for call in calls for text in call] == texts
    assert [len(call) for call in calls] == [1, 2, 1, 3]
