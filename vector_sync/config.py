"""The `vector_sync.yaml` contract: pydantic models, `${VAR}` interpolation and loading.

Errors name the offending key and say what was expected; secrets are `SecretStr` so they
never show up in a repr, a log line or a Dagster metadata value.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
RESERVED_PAYLOAD_KEYS = frozenset(
    {"source", "doc_id", "chunk_index", "chunk_count", "text", "content_hash", "synced_at"}
)
CONFIG_ENV_VAR = "VECTOR_SYNC_CONFIG"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QdrantConfig(_Strict):
    url: str | None = None
    api_key: SecretStr | None = None
    timeout_s: int = Field(60, gt=0)
    batch_size: int = Field(256, gt=0, description="points per upsert request")
    lock_wait_s: float = Field(
        30, ge=0, description="embedded storage only: how long to wait while another process "
        "(a run, a CLI search) holds it")


class StateConfig(_Strict):
    dir: Path = Path(".vector_sync")
    ledger_url: SecretStr | None = None

    @property
    def qdrant_path(self) -> Path:
        return self.dir / "qdrant"

    def ledger_sqlalchemy_url(self) -> str:
        if self.ledger_url and self.ledger_url.get_secret_value():
            return self.ledger_url.get_secret_value()
        return f"sqlite:///{self.dir / 'ledger.sqlite'}"


class EmbeddingConfig(_Strict):
    model: str = DEFAULT_MODEL
    model_path: Path | None = Field(
        None, description="local folder with model.onnx and tokenizer files for a custom model"
    )
    batch_size: int = Field(32, gt=0)


class ChunkingConfig(_Strict):
    max_tokens: int = Field(256, ge=32, le=8192)
    overlap_tokens: int = Field(32, ge=0)

    @model_validator(mode="after")
    def _overlap_fits(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.max_tokens // 2:
            raise ValueError("overlap_tokens must be less than half of max_tokens")
        return self


class CollectionConfig(_Strict):
    embed: list[str] = Field(min_length=1)
    payload: list[str] = []
    embedding: EmbeddingConfig | None = None  # None: the top-level `embedding`
    chunking: ChunkingConfig = ChunkingConfig()

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


class RetryConfig(_Strict):
    """Failed rows are retried after base_backoff_s * multiplier**(attempt-1), capped at
    max_backoff_s, each delay spread by +/- jitter (a fraction) so retries do not stampede."""

    max_retries: int = Field(5, ge=0, description="after this many failed attempts the retry "
                             "sensor stops asking; the row stays failed until it changes")
    base_backoff_s: float = Field(60, gt=0)
    multiplier: float = Field(2, ge=1)
    max_backoff_s: float = Field(3600, gt=0)
    jitter: float = Field(0.1, ge=0, lt=1)
    step_retries: int = Field(3, ge=0, description="retries of a run's Qdrant step when Qdrant "
                              "is unreachable, before its rows are marked failed")
    step_delay_s: float = Field(2, ge=0, description="first delay between step retries "
                                "(doubles each time)")


class SensorsConfig(_Strict):
    interval_s: int = Field(15, ge=1, description="how often each source is checked")
    resync_every_s: int = Field(
        3600, ge=60, description="a source is synced at least this often even when no change "
        "was seen (heals what change detection cannot see; keeps freshness honest)")


class _SourceBase(_Strict):
    collections: list[str] = Field(min_length=1)
    max_delete_fraction: float = Field(
        0.5, ge=0, le=1, description="a sync deleting more of the source's documents stops")


class MarkdownSourceConfig(_SourceBase):
    kind: Literal["markdown"]
    path: Path
    include: list[str] = ["**/*.md"]
    exclude: list[str] = []
    ignore_files: list[str] = [".vectorsyncignore", ".minimaignore"]
    max_file_bytes: int = Field(2_000_000, gt=0)


class MongoSourceConfig(_SourceBase):
    kind: Literal["mongodb"]
    uri: SecretStr = Field(description="mongodb:// or mongodb+srv:// URI, from the environment")
    database: str = Field(min_length=1)
    collection: str = Field(min_length=1)
    filter: dict[str, Any] = Field({}, description="a MongoDB query: only matching documents")
    updated_field: str | None = Field(
        None, min_length=1, description="a field changed on every write: the cheap change hint")
    batch_size: int = Field(1000, gt=0, description="documents per cursor batch")
    max_document_bytes: int = Field(
        2_000_000, gt=0, description="larger documents (projected, as BSON) fail as too_large")
    server_selection_timeout_ms: int = Field(5000, gt=0)
    write_back: bool = Field(False, description="write each sync status into syncMetadata")

    @model_validator(mode="after")
    def _uri_and_filter_usable(self) -> MongoSourceConfig:
        # the URI is a secret: say what is wrong without echoing it
        if not self.uri.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("uri must start with mongodb:// or mongodb+srv://")
        from bson import json_util
        from bson.errors import BSONError

        try:  # Extended JSON such as {"$date": "2024-01-01T00:00:00Z"} becomes BSON values
            json_util.loads(json.dumps(self.filter))
        except (TypeError, ValueError, BSONError) as error:
            raise ValueError(f"filter is not a MongoDB query in Extended JSON: {error}") from None
        return self


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[^/:@]+@[^/:]+:")
# what `git check-ref-format --branch` refuses, in short
_BAD_BRANCH = re.compile(r"^[-/.]|\.\.|//|/\.|@\{|[\x00-\x20~^:?*\[\\\x7f]|\.lock(/|$)|[/.]$")


def is_repo_url(repo: str) -> bool:
    """`scheme://...` or scp-like `user@host:path`: cloned; anything else is a local path."""
    return bool(_URL.match(repo))


class GitSourceConfig(_SourceBase):
    kind: Literal["git"]
    repo: str = Field(min_length=1, description="a local repository path, or a URL to clone")
    branch: str = Field("main", min_length=1)
    include: list[str] = ["**/*.md"]
    exclude: list[str] = []
    ignore_files: list[str] = [".vectorsyncignore"]
    max_file_bytes: int = Field(2_000_000, gt=0)
    last_author: bool = Field(False, description="add each file's last author (one git log pass)")
    clone_dir: Path | None = Field(None, description="where a URL repo is cloned; default "
                                   "<state.dir>/git/<source>")
    fetch_timeout_s: int = Field(300, gt=0)

    @model_validator(mode="after")
    def _repo_and_branch_usable(self) -> GitSourceConfig:
        if self.repo.startswith("-"):
            raise ValueError("repo must not start with '-'")
        if _BAD_BRANCH.search(self.branch) or self.branch == "@":
            raise ValueError(f"branch {self.branch!r} is not a valid Git branch name")
        return self


SourceConfig = Annotated[MarkdownSourceConfig | MongoSourceConfig | GitSourceConfig,
                         Field(discriminator="kind")]


class VectorSyncConfig(_Strict):
    qdrant: QdrantConfig = QdrantConfig()
    state: StateConfig = StateConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    retry: RetryConfig = RetryConfig()
    sensors: SensorsConfig = SensorsConfig()
    sources: dict[str, SourceConfig] = Field(min_length=1)
    collections: dict[str, CollectionConfig] = Field(min_length=1)

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


# --- loading -------------------------------------------------------------------------------

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


def _resolve_paths(config: VectorSyncConfig, base: Path) -> VectorSyncConfig:
    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else (base / path).resolve()

    def resolved_embedding(e: EmbeddingConfig) -> EmbeddingConfig:
        return e.model_copy(update={"model_path": absolute(e.model_path) if e.model_path else None})

    return config.model_copy(
        update={
            "state": config.state.model_copy(update={"dir": absolute(config.state.dir)}),
            "embedding": resolved_embedding(config.embedding),
            "sources": {
                name: _resolved_source(name, s, absolute, absolute(config.state.dir))
                for name, s in config.sources.items()
            },
            "collections": {
                name: c.model_copy(
                    update={"embedding": resolved_embedding(c.embedding) if c.embedding else None}
                )
                for name, c in config.collections.items()
            },
        }
    )


def _resolved_source(name: str, source: SourceConfig, absolute: Callable[[Path], Path],
                     state_dir: Path) -> SourceConfig:
    if isinstance(source, MarkdownSourceConfig):
        return source.model_copy(update={"path": absolute(source.path)})
    if isinstance(source, GitSourceConfig):
        repo = source.repo if is_repo_url(source.repo) else str(absolute(Path(source.repo)))
        clone_dir = absolute(source.clone_dir) if source.clone_dir else state_dir / "git" / name
        return source.model_copy(update={"repo": repo, "clone_dir": clone_dir})
    return source


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"] if not str(p).startswith("function-"))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling; see the README's configuration reference)"
        lines.append(f"  {where or '(top level)'}: {message}")
    return "invalid configuration:\n" + "\n".join(lines)


def parse_config(data: Any, base_dir: Path) -> VectorSyncConfig:
    if not isinstance(data, dict):
        raise ConfigError("invalid configuration: the file must hold a mapping at the top level")
    try:
        config = VectorSyncConfig.model_validate(_interpolate_tree(data))
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    return _resolve_paths(config, base_dir)


def config_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV_VAR) or "vector_sync.yaml")


def load_config(path: str | Path | None = None) -> VectorSyncConfig:
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
        return parse_config(data, file.resolve().parent)
    except ConfigError as error:
        raise ConfigError(f"{file}: {error}") from None
