"""The one resource every asset uses: where the config lives."""

from __future__ import annotations

import dagster as dg

from vector_sync.config import VectorSyncConfig, load_config


class VectorSyncResource(dg.ConfigurableResource):
    config_path: str

    def load(self) -> VectorSyncConfig:
        """Read on every use, so an edited config applies to the next run."""
        return load_config(self.config_path)
