"""The one resource every asset uses: where the config lives."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from vector_sync.config import VectorSyncConfig, load_config
from vector_sync.core.locks import SourceBusy, source_lock


class VectorSyncResource(dg.ConfigurableResource):
    config_path: str

    def load(self) -> VectorSyncConfig:
        """Read on every use, so an edited config applies to the next run."""
        return load_config(self.config_path)

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
