"""`vector_sync.VectorSyncComponent`: vector_sync declared in a `defs.yaml` of any Dagster
project (`dg scaffold defs vector_sync.VectorSyncComponent <name>`).

Its attributes are the configuration `vector_sync.yaml` takes, inline, or `config_file:`
naming such a file (relative to the `defs.yaml`), plus `key_prefix` and `group_name` so that
several configurations share a code location, and `resource` for what a deployment
overrides (the Qdrant connection, the ledger, the default model), from environment
variables read when a step runs. The config is validated with the messages the
`vector-sync` command prints; the definitions are those of `vector_sync.definitions`, made
by the same builder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel, Field

from vector_sync.config import ConfigError
from vector_sync.defs.build import build_definitions
from vector_sync.defs.resources import VectorSyncResource
from vector_sync.scaffold import VectorSyncScaffolder

# the config's own top-level keys (core/settings.py VectorSyncConfig): passed on as they are
CONFIG_KEYS = ("qdrant", "state", "embedding", "retry", "sensors", "execution", "sources",
               "collections", "deployment")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class FromEnv(dg.Model):
    """`{env: NAME}`: the value of environment variable NAME where the step runs
    (`dg.EnvVar`): never written into the definitions, never shown in the UI."""

    env: str


class ResourceOverrides(dg.Model):
    """What a deployment sets instead of the config's values."""

    qdrant_url: str | FromEnv | None = Field(None, description="replaces qdrant.url")
    qdrant_api_key: str | FromEnv | None = Field(None, description="replaces qdrant.api_key")
    ledger_url: str | FromEnv | None = Field(None, description="replaces state.ledger_url")
    embedding_model: str | FromEnv | None = Field(
        None, description="replaces embedding.model (the default model)")

    def values(self) -> dict[str, Any]:
        return {name: dg.EnvVar(value.env) if isinstance(value, FromEnv) else value
                for name, value in dict(self).items() if value is not None}


@dg.scaffold_with(VectorSyncScaffolder)
class VectorSyncComponent(dg.Component, dg.Model, dg.Resolvable):
    """Keep Qdrant collections in sync with sources: the vector_sync asset graph (one
    partition per source; source_snapshot -> changes_<collection> ->
    embeddings_<collection> -> qdrant_<collection>), its checks, jobs and sensors."""

    config_file: str | None = Field(
        None, description="a vector_sync.yaml, relative to this defs.yaml; or give its keys "
        "inline instead")
    key_prefix: str | None = Field(
        None, description="asset key prefix (and of job, sensor and resource names), so "
        "that several configurations share a code location")
    group_name: str | None = Field(
        None, description="one asset group for everything; default: a group per collection")
    resource: ResourceOverrides | None = Field(
        None, description="deployment overrides; a value or {env: VAR}")
    qdrant: dict[str, Any] | None = Field(None, description="as in vector_sync.yaml")
    state: dict[str, Any] | None = Field(None, description="as in vector_sync.yaml")
    embedding: dict[str, Any] | None = Field(None, description="as in vector_sync.yaml")
    retry: dict[str, Any] | None = Field(None, description="as in vector_sync.yaml")
    sensors: dict[str, Any] | None = Field(None, description="as in vector_sync.yaml")
    execution: dict[str, Any] | None = Field(None, description="as in vector_sync.yaml")
    sources: dict[str, Any] | None = Field(None, description="as in vector_sync.yaml")
    collections: dict[str, Any] | None = Field(None, description="as in vector_sync.yaml")
    deployment: str | None = Field(None, description="as in vector_sync.yaml")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        where = context.path / "defs.yaml" if context.path.is_dir() else context.path
        try:
            resource = self.vector_sync_resource(context.path if context.path.is_dir()
                                                 else context.path.parent)
            config = resource.load(overrides=False)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        return build_definitions(prefix=self.key_prefix, group=self.group_name,
                                 resource=resource, config=config)

    def vector_sync_resource(self, folder: Path) -> VectorSyncResource:
        """The resource these attributes describe: the config file or the inline config
        (relative paths against `folder`), with the deployment's overrides."""
        if self.key_prefix is not None and not _PREFIX.match(self.key_prefix):
            raise ConfigError(f"key_prefix {self.key_prefix!r} must be a letter, then "
                              "letters, digits or '_'")
        inline = {key: value for key in CONFIG_KEYS
                  if (value := getattr(self, key)) is not None}
        overrides = self.resource.values() if self.resource else {}
        if self.config_file and inline:
            raise ConfigError(f"give config_file or the config's keys inline, not both "
                              f"(inline: {', '.join(inline)})")
        if self.config_file:
            return VectorSyncResource(config_path=str((folder / self.config_file).resolve()),
                                      **overrides)
        if not inline:
            raise ConfigError("no configuration: set config_file, or sources and collections "
                              "inline")
        return VectorSyncResource(config_data=json.dumps(_plain(inline)),
                                  base_dir=str(folder.resolve()), **overrides)


def _plain(value: Any) -> Any:
    """The inline config as JSON takes it (YAML may give dates, numbers as keys)."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)
