"""The `vector_sync.yaml` contract: pydantic models, `${VAR}` interpolation and parsing.

Errors name the offending key and say what was expected; secrets are `SecretStr` so they
never show up in a repr, a log line or a Dagster metadata value. Source settings come from
the kinds of a `Registry`: this module knows only what every kind shares (`SourceConfig`).
Every field carries a description: docs/configuration.md is generated from them.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    create_model,
    model_validator,
)

from vector_sync.core.events.config import EventsConfig
from vector_sync.core.generations.settings import MigrationConfig
from vector_sync.core.source import Registry, Source, SourceConfig

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
RESERVED_PAYLOAD_KEYS = frozenset({"source", "doc_id", "chunk_index", "chunk_count", "text",
                                   "content_hash", "synced_at"})
CONFIG_ENV_VAR = "VECTOR_SYNC_CONFIG"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QdrantConfig(Strict):
    """Where the vectors go."""

    url: str | None = Field(None, description="a Qdrant server URL; null: Qdrant embedded "
                            "in the process, storage under `state.dir`/qdrant (one process "
                            "at a time)")
    api_key: SecretStr | None = Field(None, description="the server's API key, from the "
                                      "environment (`${QDRANT_API_KEY}`)")
    timeout_s: int = Field(60, gt=0, description="seconds a request to a server may take")
    batch_size: int = Field(256, gt=0, description="points per upsert request")
    lock_wait_s: float = Field(
        30, ge=0, description="embedded storage only: how long to wait while another process "
        "(a run, a CLI search) holds it")


class StateConfig(Strict):
    """Where vector_sync keeps its own state."""

    dir: Path = Field(Path(".vector_sync"), description="embedded Qdrant storage, the SQLite "
                      "ledger and the Parquet files handed from stage to stage")
    ledger_url: SecretStr | None = Field(None, description="a SQLAlchemy URL for the ledger "
                                         "(postgresql://...); null: SQLite in `dir`")
    lock_wait_s: float = Field(60, ge=0, description="how long a sync waits while another "
                               "process syncs the same source, before it stops with an error")
    ledger_outage_s: float = Field(30, ge=0, description="how long a PostgreSQL ledger may be "
                                   "unreachable (a restart, a failover) before the run fails; "
                                   "its reads and writes are retried meanwhile")

    @property
    def qdrant_path(self) -> Path:
        return self.dir / "qdrant"

    def ledger_sqlalchemy_url(self) -> str:
        if self.ledger_url and self.ledger_url.get_secret_value():
            return self.ledger_url.get_secret_value()
        return f"sqlite:///{self.dir / 'ledger.sqlite'}"


class EmbeddingConfig(Strict):
    """The embedding model."""

    model: str = Field(DEFAULT_MODEL, description="a fastembed model name; the default runs "
                       "offline from files installed with the package")
    model_path: Path | None = Field(
        None, description="local folder with model.onnx and tokenizer files for a custom model")
    batch_size: int = Field(16, gt=0, description="texts per model call: on CPU, 16 embeds "
                            "256-token chunks as fast as 32 with two thirds of the memory")
    max_batch_tokens: int = Field(2048, gt=0, description="padded tokens per model call at "
                                  "most (texts x the longest one's tokens): bounds its memory")
    threads: int | None = Field(None, gt=0, description="ONNX Runtime threads; null: per core")


class ChunkingConfig(Strict):
    """How documents are cut into chunks (changing it re-embeds the collection)."""

    max_tokens: int = Field(256, ge=32, le=8192, description="tokens per chunk at most, as "
                            "the model counts them (the default model reads 256)")
    overlap_tokens: int = Field(32, ge=0, description="tokens of the previous chunk repeated "
                                "at the start of the next one of a long section")

    @model_validator(mode="after")
    def _overlap_fits(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.max_tokens // 2:
            raise ValueError("overlap_tokens must be less than half of max_tokens")
        return self


class CollectionConfig(Strict):
    """A Qdrant collection: which fields become vectors, which travel as payload."""

    embed: list[str] = Field(min_length=1, description="fields embedded, in this order "
                             "(dotted paths into nested documents allowed)")
    payload: list[str] = Field([], description="fields copied to each point's payload, at "
                               "their source nesting")
    embedding: EmbeddingConfig | None = Field(None, description="this collection's own model; "
                                              "null: the top-level `embedding`")
    chunking: ChunkingConfig = Field(ChunkingConfig(), description="chunk size and overlap")

    @model_validator(mode="after")
    def _payload_not_reserved(self) -> CollectionConfig:
        for field in self.payload:
            top = field.split(".", 1)[0]
            if top in RESERVED_PAYLOAD_KEYS:
                raise ValueError(
                    f"payload field {field!r} collides with the reserved key {top!r} "
                    f"(reserved: {', '.join(sorted(RESERVED_PAYLOAD_KEYS))})"
                )
        return self


class RetryConfig(Strict):
    """Failed rows are retried after base_backoff_s * multiplier**(attempt-1), capped at
    max_backoff_s, each delay spread by +/- jitter (a fraction) so retries do not stampede."""

    max_retries: int = Field(5, ge=0, description="after this many failed attempts the retry "
                             "sensor stops asking; the row stays failed until it changes")
    base_backoff_s: float = Field(60, gt=0, description="delay before the first retry")
    multiplier: float = Field(2, ge=1, description="each further delay is this much longer")
    max_backoff_s: float = Field(3600, gt=0, description="delays never exceed this")
    jitter: float = Field(0.1, ge=0, lt=1, description="each delay varies by up to +/- this "
                          "fraction")
    step_retries: int = Field(3, ge=0, description="retries of a run's Qdrant step when Qdrant "
                              "is unreachable, before its rows are marked failed")
    step_delay_s: float = Field(2, ge=0, description="first delay between step retries "
                                "(doubles each time)")


class SensorsConfig(Strict):
    """How the Dagster sensors watch the sources."""

    interval_s: int = Field(15, ge=1, description="how often each source is checked")
    resync_every_s: int = Field(
        3600, ge=60, description="a source is synced at least this often even when no change "
        "was seen (heals what change detection cannot see; keeps freshness honest)")


class ExecutionConfig(Strict):
    """How runs that Dagster starts (sensors, the UI, backfills) execute their steps. CLI
    syncs always run in one process. docs/scaling-out.md says when to use which."""

    executor: Literal["in_process", "multiprocess", "celery"] = Field(
        "in_process", description="in_process: every step of a run in one process (the "
        "quick start); multiprocess: each step its own process on this machine; celery: "
        "steps queued to Celery workers on any machine (install the `deploy` extra)")
    max_concurrent: int = Field(0, ge=0, description="multiprocess: steps at once; 0: one "
                                "per core")
    broker: SecretStr = Field(SecretStr("pyamqp://guest@127.0.0.1:5672//"), description=(
        "celery: the broker the workers listen to (RabbitMQ pyamqp://..., Redis redis://...); "
        "default: the local RabbitMQ, pyamqp://guest@127.0.0.1:5672//"))
    backend: str = Field("rpc://", description="celery: where results go back to the run")
    embed_shards: int = Field(1, ge=1, le=256, description="split the embedding of each "
                              "collection's change set into this many steps (by a hash of "
                              "the document id), which a multiprocess or Celery executor runs "
                              "at once; 1: one step")


class VectorSyncConfig(Strict):
    """The whole file: the sections below, and these keys of its own."""

    qdrant: QdrantConfig = Field(QdrantConfig(), description="the Qdrant side")
    state: StateConfig = Field(StateConfig(), description="vector_sync's own state")
    embedding: EmbeddingConfig = Field(EmbeddingConfig(), description="the default model")
    retry: RetryConfig = Field(RetryConfig(), description="retries of failed documents")
    sensors: SensorsConfig = Field(SensorsConfig(), description="the watch sensors")
    execution: ExecutionConfig = Field(ExecutionConfig(), description="how Dagster-launched "
                                       "runs execute their steps")
    migration: MigrationConfig = Field(MigrationConfig(), description="model/chunker changes")
    sources: dict[str, SourceConfig] = Field(
        min_length=1, description="name -> settings of a source; `kind` picks the source kind")
    collections: dict[str, CollectionConfig] = Field(
        min_length=1, description="name -> a Qdrant collection (the name in Qdrant)")
    deployment: str | None = Field(
        None, min_length=1, description="this configuration's name in Qdrant, recorded in "
        "every collection it creates: only those are its to prune, other collections are "
        "\"not managed here\" and never written. Null: an id made on the first sync and kept "
        "in the ledger. Set it when several teams share a Qdrant server and you want to read "
        "who owns what, or to keep the id when the ledger is replaced")
    events: EventsConfig = Field(EventsConfig(), description="sync events for the systems "
                                 "around the index (NATS, Redis, webhooks, a file)")
    # the file the config was loaded from (None when built from a dict): names the ledger's
    # record of the deployment id
    _config_file: Path | None = PrivateAttr(None)

    @property
    def config_file(self) -> Path | None:
        return self._config_file

    @model_validator(mode="after")
    def _references_resolve(self) -> VectorSyncConfig:
        for kind, names in (("source", self.sources), ("collection", self.collections)):
            for name in names:
                if not re.match(_NAME, name):
                    raise ValueError(
                        f"{kind} name {name!r} must be letters, digits, '_' or '-'"
                    )
        for name, collection_config in self.collections.items():
            embedding = self.embedding_for(name)
            limit = collection_config.chunking.max_tokens
            if embedding.model == DEFAULT_MODEL and not embedding.model_path and limit > 256:
                raise ValueError(
                    f"collections.{name}.chunking.max_tokens is {limit}, but {DEFAULT_MODEL} "
                    "reads at most 256 tokens (longer chunks would be silently truncated)"
                )
        for name, source in self.sources.items():
            for collection in source.collections:
                if collection not in self.collections:
                    raise ValueError(
                        f"sources.{name}.collections names {collection!r}, which is not "
                        f"defined under collections (defined: {', '.join(self.collections)})"
                    )
        return self

    def embedding_for(self, collection: str) -> EmbeddingConfig:
        return self.collections[collection].embedding or self.embedding

    def sources_feeding(self, collection: str) -> list[str]:
        return [name for name, s in self.sources.items() if collection in s.collections]

    def fields_of(self, source: str) -> list[str]:
        """Every field the collections fed by `source` embed or copy to the payload."""
        fields: dict[str, None] = {}
        for collection in self.sources[source].collections:
            spec = self.collections[collection]
            fields.update(dict.fromkeys([*spec.embed, *spec.payload]))
        return list(fields)

    def open_source(self, name: str) -> Source:
        return self.sources[name].open(name, self.fields_of(name))


# --- parsing ---------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Replace `${VAR}` and `${VAR:-default}`; an unset VAR without a default is an error."""
    env = dict(os.environ) if env is None else env

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] or default is None):
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (used as ${{{name}}})")

    return _VAR.sub(substitute, text)


def _interpolate_tree(value: Any) -> Any:
    if isinstance(value, str):
        return interpolate(value)
    if isinstance(value, dict):
        return {k: _interpolate_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate_tree(v) for v in value]
    return value


@lru_cache(maxsize=16)
def config_model(kinds: tuple[type[SourceConfig], ...]) -> type[VectorSyncConfig]:
    """VectorSyncConfig whose `sources` validate as one of `kinds` (by their `kind` key)."""
    if not kinds:
        return VectorSyncConfig
    entry: Any = kinds[0] if len(kinds) == 1 else Annotated[
        Union[kinds], Field(discriminator="kind")]  # noqa: UP007 - a runtime tuple of types
    sources_field = VectorSyncConfig.model_fields["sources"]
    return create_model(
        "VectorSyncConfig", __base__=VectorSyncConfig,
        sources=(dict[str, entry], Field(min_length=1, description=sources_field.description)))


def _kinds_used(data: dict[str, Any], registry: Registry) -> tuple[type[SourceConfig], ...]:
    sources = data.get("sources")
    if not isinstance(sources, dict):
        return ()
    used: dict[str, None] = {}
    for name, settings in sources.items():
        kind = settings.get("kind") if isinstance(settings, dict) else None
        if not isinstance(kind, str):
            continue  # pydantic says what is wrong with `kind`
        if kind not in registry:
            raise ConfigError(f"invalid configuration:\n  sources.{name}.kind: unknown source "
                              f"kind {kind!r} (known: {', '.join(registry.names())})")
        used[kind] = None
    return tuple(registry.config_model(kind) for kind in used)


def _resolve_paths(config: VectorSyncConfig, base: Path) -> VectorSyncConfig:
    def absolute(path: Path) -> Path:
        try:
            if "\x00" in str(path):
                raise ValueError("it holds a NUL byte")
            return path if path.is_absolute() else (base / path).resolve()
        except (ValueError, OSError) as error:  # a NUL byte, a symlink loop
            raise ConfigError(f"invalid configuration: the path {str(path)!r} cannot be "
                              f"used: {error}") from None

    def resolved_embedding(e: EmbeddingConfig) -> EmbeddingConfig:
        return e.model_copy(update={"model_path": absolute(e.model_path) if e.model_path else None})

    state_dir = absolute(config.state.dir)
    return config.model_copy(
        update={
            "state": config.state.model_copy(update={"dir": state_dir}),
            "embedding": resolved_embedding(config.embedding),
            "events": config.events.model_copy(update={"sinks": [
                s.model_copy(update={"path": absolute(s.path)}) if s.kind == "file" else s
                for s in config.events.sinks]}),
            "sources": {name: s.resolved(name, absolute, state_dir)
                        for name, s in config.sources.items()},
            "collections": {
                name: c.model_copy(
                    update={"embedding": resolved_embedding(c.embedding) if c.embedding else None}
                )
                for name, c in config.collections.items()
            },
        }
    )


def _describe(error: ValidationError, data: dict[str, Any]) -> str:
    sources = data.get("sources")
    sources = sources if isinstance(sources, dict) else {}
    lines = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"] if not str(p).startswith("function-")]
        # a union of kinds puts the kind ("markdown") into the location: it is not a key
        if len(loc) > 2 and loc[0] == "sources" and isinstance(sources.get(loc[1]), dict) \
                and sources[loc[1]].get("kind") == loc[2]:
            del loc[2]
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling; see docs/configuration.md)"
        lines.append(f"  {'.'.join(loc) or '(top level)'}: {message}")
    return "invalid configuration:\n" + "\n".join(lines)


def parse_config(data: Any, base_dir: Path, registry: Registry) -> VectorSyncConfig:
    if not isinstance(data, dict):
        raise ConfigError("invalid configuration: the file must hold a mapping at the top level")
    data = _interpolate_tree(data)
    try:
        config = config_model(_kinds_used(data, registry)).model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error, data)) from None
    return _resolve_paths(config, base_dir)


def config_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV_VAR) or "vector_sync.yaml")


def load_config(path: str | Path | None, registry: Registry) -> VectorSyncConfig:
    """Load from `path`, else `$VECTOR_SYNC_CONFIG`, else `./vector_sync.yaml`."""
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {file}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{file} is not valid YAML: {error}") from None
    try:
        config = parse_config(data, file.resolve().parent, registry)
    except ConfigError as error:
        raise ConfigError(f"{file}: {error}") from None
    config._config_file = file.resolve()
    return config
