"""Source kinds behind the protocol in `base.py`; `build_source` picks one from the config."""

from __future__ import annotations

from collections.abc import Sequence

from vector_sync.config import SourceConfig, VectorSyncConfig
from vector_sync.sources.base import Source, SourceUnavailable


def build_source(name: str, config: SourceConfig, fields: Sequence[str] | None = None) -> Source:
    """`fields`: the (dotted) fields the source's collections embed or copy to the payload
    (`source_fields`). Sources that can fetch less use it (MongoDB's projection); None means
    every field."""
    if config.kind == "markdown":
        from vector_sync.sources.markdown import MarkdownSource

        return MarkdownSource(name, config)
    if config.kind == "mongodb":
        from vector_sync.sources.mongodb import MongoSource

        return MongoSource(name, config, fields)
    if config.kind == "git":
        from vector_sync.sources.git import GitSource

        return GitSource(name, config)
    raise ValueError(f"unsupported source kind {config.kind!r}")


def source_fields(config: VectorSyncConfig, source: str) -> list[str]:
    """Every field the collections fed by `source` embed or copy to the payload, in order."""
    fields: dict[str, None] = {}
    for collection in config.sources[source].collections:
        spec = config.collections[collection]
        fields.update(dict.fromkeys([*spec.embed, *spec.payload]))
    return list(fields)


__all__ = ["Source", "SourceUnavailable", "build_source", "source_fields"]
