"""fastembed, loaded only when something must actually be embedded."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vector_sync.core.settings import EmbeddingConfig
from vector_sync.core.text.model_files import ModelUnavailable, cache_root, model_dir
from vector_sync.core.text.tokens import TokenCounter, model_max_tokens, token_counter

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _load_model(model: str, model_path: Path | None, threads: int | None) -> Any:
    """One loaded model per process: loading costs about a second."""
    from fastembed import TextEmbedding  # slow import: only when something is embedded

    started = time.perf_counter()
    local = model_dir(model, model_path)
    if local is not None and model not in {m["model"] for m in
                                           TextEmbedding.list_supported_models()}:
        _register_custom(model, local)
    loaded = TextEmbedding(model, specific_model_path=str(local) if local else None,
                           cache_dir=str(hub_cache()), threads=threads)
    log.info("loaded embedding model %s in %.1f s", model, time.perf_counter() - started)
    return loaded


def _register_custom(model: str, folder: Path) -> None:
    """A sentence-transformers style model fastembed does not know: mean pooling, normalized,
    the dimension from the folder's config.json."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    dimension = json.loads((folder / "config.json").read_text())["hidden_size"]
    TextEmbedding.add_custom_model(
        model, pooling=PoolingType.MEAN, normalization=True, dim=int(dimension),
        sources=ModelSource(hf=model), model_file="model.onnx",
    )


def hub_cache() -> Path:
    """Where fastembed keeps the models it downloads from a hub (a Hugging Face cache)."""
    return cache_root() / "fastembed"


def hub_folder(model: str) -> Path:
    """The downloaded files of a fastembed model, found through public APIs: the model's
    Hugging Face repository from fastembed's list, its snapshot in the cache."""
    from fastembed import TextEmbedding
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    described = [m for m in TextEmbedding.list_supported_models() if m["model"] == model]
    repo = described[0]["sources"].get("hf") if described else None
    if repo is None:
        raise ModelUnavailable(f"fastembed does not list model {model!r} with a Hugging Face "
                               "source; set embedding.model_path to a folder with its files")
    try:
        return Path(snapshot_download(repo, cache_dir=str(hub_cache()), local_files_only=True))
    except LocalEntryNotFoundError:
        raise ModelUnavailable(f"the files of model {model!r} are not in {hub_cache()}: it "
                               "is downloaded on first use, which needs the network") from None


class Embedder:
    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config

    @cached_property
    def folder(self) -> Path:
        """Where the model files are; for a hub model this downloads it (needs the network)."""
        local = model_dir(self.config.model, self.config.model_path)
        if local is not None:
            return local
        self._model  # noqa: B018 - loading a hub model downloads its files into hub_cache()
        return hub_folder(self.config.model)

    @property
    def _model(self) -> Any:  # fastembed's TextEmbedding
        return _load_model(self.config.model, self.config.model_path, self.config.threads)

    @cached_property
    def dimension(self) -> int:
        return int(self._model.embedding_size)

    def count_tokens(self) -> TokenCounter:
        return token_counter(self.folder)

    def max_tokens(self) -> int:
        return model_max_tokens(self.folder)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dimension), normalized by the model. The texts
        go to the model in calls of consecutive texts (see `calls`): hand them over sorted by
        length and each call pads little."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = [vector for call in self.calls(texts)
                   for vector in self._model.embed(call, batch_size=len(call))]
        return np.asarray(vectors, dtype=np.float32)

    def calls(self, texts: Sequence[str]) -> Iterator[list[str]]:
        """`texts` in order, cut into model calls of at most `batch_size` texts and at most
        `max_batch_tokens` padded tokens: the model pads a call to its longest text, and
        ONNX Runtime keeps the memory of the largest call it ran (its arena does not shrink),
        so a call of texts that all fill the model's window sets the process's peak. A text
        longer than the budget alone goes in a call of its own."""
        if len(texts) == 1:  # a search query: no tokenizer of our own to load
            yield list(texts)
            return
        count, window = self.count_tokens(), self.max_tokens()
        budget, most = self.config.max_batch_tokens, self.config.batch_size
        call: list[str] = []
        longest = 0
        for text in texts:
            tokens = min(count(text), window)  # the model truncates at its window
            if call and (len(call) == most or (len(call) + 1) * max(longest, tokens) > budget):
                yield call
                call, longest = [], 0
            call.append(text)
            longest = max(longest, tokens)
        if call:
            yield call
