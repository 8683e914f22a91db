"""Dagster entry point of a config file: `dagster dev -m vector_sync.definitions` (and the
CLI's runs).

The asset graph is built from the config found via $VECTOR_SYNC_CONFIG or ./vector_sync.yaml:
one partition per source, one changes/embeddings/qdrant asset chain (and group) per
collection. The pieces are made in `vector_sync.defs` and put together by
`vector_sync.defs.build`, which the component (`vector_sync.VectorSyncComponent`, for a
`defs.yaml` in any Dagster project) uses too.
"""

from __future__ import annotations

import dagster as dg

from vector_sync.defs import build


def build_definitions(path: str | None = None, prefix: str | None = None,
                      group: str | None = None) -> dg.Definitions:
    """The definitions of a config file; the config's executor is also the code
    location's default (what the UI's Materialize runs with)."""
    return build.build_definitions(path, prefix, group, default_executor=True)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
