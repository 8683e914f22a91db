"""Loading `vector_sync.yaml` with the source kinds of `vector_sync.sources`.

The models live in `vector_sync.core.settings` (the core knows no source kind); this module
joins them with the registry, so everything outside the core loads a config in one call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vector_sync.core import settings
from vector_sync.core.settings import (
    CONFIG_ENV_VAR,
    DEFAULT_MODEL,
    RESERVED_PAYLOAD_KEYS,
    ChunkingConfig,
    CollectionConfig,
    ConfigError,
    EmbeddingConfig,
    QdrantConfig,
    RetryConfig,
    SensorsConfig,
    StateConfig,
    VectorSyncConfig,
    config_path,
    interpolate,
)
from vector_sync.core.source import SourceConfig
from vector_sync.sources import REGISTRY


def load_config(path: str | Path | None = None) -> VectorSyncConfig:
    """Load from `path`, else `$VECTOR_SYNC_CONFIG`, else `./vector_sync.yaml`."""
    return settings.load_config(path, REGISTRY)


def parse_config(data: Any, base_dir: Path) -> VectorSyncConfig:
    return settings.parse_config(data, base_dir, REGISTRY)


__all__ = [
    "CONFIG_ENV_VAR", "DEFAULT_MODEL", "RESERVED_PAYLOAD_KEYS", "ChunkingConfig",
    "CollectionConfig", "ConfigError", "EmbeddingConfig", "QdrantConfig", "RetryConfig",
    "SensorsConfig", "SourceConfig", "StateConfig", "VectorSyncConfig", "config_path",
    "interpolate", "load_config", "parse_config",
]
