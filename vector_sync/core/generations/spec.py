"""What a generation is built with (model, chunker, embedded fields), its fingerprint, and
the physical Qdrant collection named after it.

The fingerprint covers what decides a point's vector and text: the model (and the folder it
is loaded from: a second copy of a model under another name is another model), the chunker
settings, the distance and the `embed` fields. The vector size follows from the model. The
payload fields are not in it: a payload change is applied in place by the next sync.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vector_sync.core.hashing import digest, stable_json
from vector_sync.core.settings import (
    ChunkingConfig,
    CollectionConfig,
    EmbeddingConfig,
    VectorSyncConfig,
)
from vector_sync.core.text.chunking import chunker_fingerprint

DISTANCE = "Cosine"  # every collection vector_sync makes
SEPARATOR = "__"  # <configured name>__<6 hex of the fingerprint>


@dataclass(frozen=True)
class GenerationSpec:
    model: str
    model_path: str | None
    max_tokens: int
    overlap_tokens: int
    embed: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        return digest("generation", self.model, self.model_path or "",
                      chunker_fingerprint(self.max_tokens, self.overlap_tokens), DISTANCE,
                      stable_json(list(self.embed)))

    def physical(self, collection: str) -> str:
        return f"{collection}{SEPARATOR}{self.fingerprint[:6]}"

    def same_model(self, other: GenerationSpec) -> bool:
        """Vectors of identical chunk texts are interchangeable between the two."""
        return (self.model, self.model_path) == (other.model, other.model_path)

    def to_json(self) -> str:
        return stable_json({"model": self.model, "model_path": self.model_path,
                            "chunking": {"max_tokens": self.max_tokens,
                                         "overlap_tokens": self.overlap_tokens},
                            "embed": list(self.embed)})

    @classmethod
    def from_json(cls, text: str) -> GenerationSpec:
        data: dict[str, Any] = json.loads(text)
        return cls(data["model"], data.get("model_path"), int(data["chunking"]["max_tokens"]),
                   int(data["chunking"]["overlap_tokens"]), tuple(data["embed"]))

    def as_dict(self) -> dict[str, Any]:
        return dict(json.loads(self.to_json()))

    def differences(self, other: GenerationSpec) -> list[str]:
        """What changed from `self` to `other`, as config keys."""
        changed = []
        if self.model != other.model:
            changed.append(f"embedding.model: {self.model} -> {other.model}")
        if self.model_path != other.model_path:
            changed.append(f"embedding.model_path: {self.model_path} -> {other.model_path}")
        if (self.max_tokens, self.overlap_tokens) != (other.max_tokens, other.overlap_tokens):
            changed.append(f"chunking: {self.max_tokens}/{self.overlap_tokens} -> "
                           f"{other.max_tokens}/{other.overlap_tokens} (max/overlap tokens)")
        if self.embed != other.embed:
            changed.append(f"embed: {list(self.embed)} -> {list(other.embed)}")
        return changed

    def collection_config(self, base: CollectionConfig,
                          embedding: EmbeddingConfig) -> CollectionConfig:
        """`base` (its payload fields) with this generation's model, chunker and fields;
        batch size, token budget and threads stay the configured ones."""
        return base.model_copy(update={
            "embed": list(self.embed),
            "embedding": embedding.model_copy(update={
                "model": self.model,
                "model_path": Path(self.model_path) if self.model_path else None}),
            "chunking": ChunkingConfig(max_tokens=self.max_tokens,
                                       overlap_tokens=self.overlap_tokens)})


def configured_spec(config: VectorSyncConfig, collection: str) -> GenerationSpec:
    """The generation the config asks for."""
    settings = config.collections[collection]
    embedding = config.embedding_for(collection)
    return GenerationSpec(embedding.model,
                          str(embedding.model_path) if embedding.model_path else None,
                          settings.chunking.max_tokens, settings.chunking.overlap_tokens,
                          tuple(settings.embed))


def with_spec(config: VectorSyncConfig, collection: str, spec: GenerationSpec,
              as_name: str | None = None) -> VectorSyncConfig:
    """The config with `collection` built as `spec`. `as_name`: under that name instead (a
    generation's physical name), fed by the same sources and by nothing else: the stages
    then read and write that generation's points and ledger rows only."""
    settings = spec.collection_config(config.collections[collection],
                                      config.embedding_for(collection))
    if as_name is None:
        return config.model_copy(update={"collections": {**config.collections,
                                                         collection: settings}})
    sources = {name: source.model_copy(update={"collections": [as_name]})
               for name, source in config.sources.items() if collection in source.collections}
    return config.model_copy(update={"collections": {as_name: settings}, "sources": sources})
