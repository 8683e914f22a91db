"""Source kinds behind the protocol in `base.py`; `build_source` picks one from the config."""

from __future__ import annotations

from vector_sync.config import SourceConfig
from vector_sync.sources.base import Source, SourceUnavailable


def build_source(name: str, config: SourceConfig) -> Source:
    if config.kind == "markdown":
        from vector_sync.sources.markdown import MarkdownSource

        return MarkdownSource(name, config)
    raise ValueError(f"unsupported source kind {config.kind!r}")


__all__ = ["Source", "SourceUnavailable", "build_source"]
