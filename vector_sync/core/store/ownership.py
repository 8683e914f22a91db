"""Which collections in Qdrant are this deployment's.

Several configurations may share one Qdrant: a server used by several teams, or one embedded
storage used by two config files. Every collection vector_sync creates records in its
metadata the deployment that created it, and only those are this configuration's to prune or
to report as not in the config. A collection created by another configuration, by another
tool or by hand is "not managed here": listed, never counted against verify, never deleted,
and never written by a sync.

A deployment is named by the config's `deployment` key, or else by an id made the first time
the configuration writes Qdrant and kept in its ledger under the config file's path relative
to the state dir. So moving or copying a project keeps its id, two config files sharing one
state dir get one each, and two teams with their own ledgers never get the same one.
"""

from __future__ import annotations

import os
import uuid

from vector_sync.core.ledger import Ledger
from vector_sync.core.settings import VectorSyncConfig

_STATE_SOURCE = ""  # the ledger's per-source state, under a name no source can have


def _state_key(config: VectorSyncConfig) -> str:
    file = config.config_file
    where = os.path.relpath(file, config.state.dir) if file is not None else "(no file)"
    return f"deployment:{where}"


def deployment_of(config: VectorSyncConfig, ledger: Ledger, create: bool = False) -> str | None:
    """This configuration's deployment id; None when it has none yet and `create` is False
    (it has then created no collection: a read-only command makes nothing)."""
    if config.deployment:
        return config.deployment
    key = _state_key(config)
    found = ledger.get_state(_STATE_SOURCE, key)
    if found is None and create:
        name = config.config_file.name if config.config_file else "vector_sync"
        found = ledger.first_state(_STATE_SOURCE, key, f"{name}@{uuid.uuid4().hex[:12]}")
    return found
