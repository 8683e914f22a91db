"""The one resource every asset uses: where the config lives, and what a deployment
overrides of it.

The config is a file (`config_path`) or, for the component's inline form, its data
(`config_data`, JSON, with relative paths against `base_dir`). A deployment may override
the Qdrant connection, the ledger and the default embedding model without editing it: these
fields take `dg.EnvVar("QDRANT_API_KEY")` like any Dagster resource config, so a secret is
read from the environment of the process that runs the step and is never shown in the UI.
`load()` is the single place where the assets get their configuration.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import SecretStr

from vector_sync.config import (
    ConfigError,
    EmbeddingConfig,
    QdrantConfig,
    StateConfig,
    VectorSyncConfig,
    load_config,
    parse_config,
)
from vector_sync.core.generations.serving import serving_config
from vector_sync.core.locks import SourceBusy, source_lock

# the resource fields a deployment may set, beside the config's own keys they replace
OVERRIDES = {"qdrant_url": "qdrant.url", "qdrant_api_key": "qdrant.api_key",
             "ledger_url": "state.ledger_url", "embedding_model": "embedding.model"}


class VectorSyncResource(dg.ConfigurableResource):
    config_path: str | None = None
    config_data: str | None = None  # the inline config, JSON
    base_dir: str | None = None  # what relative paths of config_data resolve against
    qdrant_url: str | None = None  # replaces qdrant.url (empty: as the config says)
    qdrant_api_key: str | None = None  # replaces qdrant.api_key
    ledger_url: str | None = None  # replaces state.ledger_url
    embedding_model: str | None = None  # replaces embedding.model, the default model

    def load(self, overrides: bool = True) -> VectorSyncConfig:
        """Read on every use, so an edited config applies to the next run. Without
        `overrides`: the config as written (what the definitions are built from, before a
        step resolves the environment variables an override names)."""
        if self.config_path:
            config = load_config(self.config_path)
        elif self.config_data is not None:
            config = parse_config(json.loads(self.config_data), Path(self.base_dir or "."))
        else:
            raise ConfigError("the vector_sync resource names no config: set config_path "
                              "or config_data")
        # every step uses the serving generation's settings (core/generations/serving.py)
        return serving_config(self.overridden(config), register=True) if overrides else config

    def overridden(self, config: VectorSyncConfig) -> VectorSyncConfig:
        """The config with this deployment's overrides; each section validated again."""
        qdrant: dict[str, Any] = {"url": self.qdrant_url or None} if self.qdrant_url else {}
        if self.qdrant_api_key:
            qdrant["api_key"] = SecretStr(self.qdrant_api_key)
        update: dict[str, Any] = {}
        if qdrant:
            update["qdrant"] = QdrantConfig.model_validate(
                {**dict(config.qdrant), **qdrant})
        if self.ledger_url:
            update["state"] = StateConfig.model_validate(
                {**dict(config.state), "ledger_url": SecretStr(self.ledger_url)})
        if self.embedding_model:
            update["embedding"] = EmbeddingConfig.model_validate(
                {**dict(config.embedding), "model": self.embedding_model})
        return config.model_copy(update=update) if update else config

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[
            VectorSyncResource]:
        """A run of one source holds the source's lock (core/locks.py) from its first step
        to its last when its steps share a process (the in-process executor, the default):
        a CLI sync or another run of the source waits for the whole run, instead of slipping
        in between two of its steps and applying a newer change set before this run's
        older one. Each step takes the lock again (re-entrant). A run whose steps are
        separate processes (multiprocess, Celery) gets only that: its resource is set up in
        every step's process, and holding the lock there would keep a collection's embedding
        shards from running side by side."""
        run = context.run
        source = run.tags.get("dagster/partition") if run is not None else None
        settings = self.load()
        if source not in settings.sources or settings.execution.executor != "in_process":
            yield self
            return
        try:
            with source_lock(settings.state, source, settings.state.lock_wait_s):
                yield self
        except SourceBusy as error:
            raise dg.Failure(description=str(error)) from None
