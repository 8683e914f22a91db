"""What decides the points of one collection: its fields, model and chunking."""

from __future__ import annotations

from dataclasses import dataclass

from vector_sync.core.hashing import digest, stable_json, vector_version
from vector_sync.core.settings import ChunkingConfig, VectorSyncConfig
from vector_sync.core.text.chunking import chunker_fingerprint


@dataclass(frozen=True)
class CollectionSpec:
    """Everything about a collection that decides what its points look like."""

    name: str
    embed: tuple[str, ...]
    payload: tuple[str, ...]
    model: str
    chunking: ChunkingConfig

    @property
    def vector_version(self) -> str:
        chunker = chunker_fingerprint(self.chunking.max_tokens, self.chunking.overlap_tokens)
        return vector_version(self.model, chunker)

    @property
    def fingerprint(self) -> str:
        """Changes whenever a hash could change without the document changing."""
        return digest(self.vector_version, stable_json([self.embed, self.payload]))


def spec_for(config: VectorSyncConfig, collection: str) -> CollectionSpec:
    settings = config.collections[collection]
    return CollectionSpec(
        name=collection, embed=tuple(settings.embed), payload=tuple(settings.payload),
        model=config.embedding_for(collection).model, chunking=settings.chunking)


def collection_specs(config: VectorSyncConfig, source: str) -> list[CollectionSpec]:
    """The collections `source` feeds, in config order."""
    return [spec_for(config, name) for name in config.sources[source].collections]
