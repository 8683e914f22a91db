"""A commented `vector_sync.yaml` for each source kind: what `vector-sync init` writes and
what the component's scaffolder puts into a `defs.yaml`.

The keys come from the kind's settings in the registry (`vector_sync.sources.REGISTRY`) with
their descriptions, as the configuration reference shows them: required keys with an
example value, the others commented out with their defaults. Only the example values are
written here, per kind; a test loads every kind's template with the real loader, so a kind
added without one, or a key that changes, is noticed.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from vector_sync.core.source import SourceConfig
from vector_sync.sources import REGISTRY

DEFAULT_KIND = "markdown"


class Example:
    """A kind's example: its source's name, required (and suggested) keys, the fields its
    collection embeds and copies to the payload."""

    def __init__(self, name: str, values: dict[str, Any], embed: list[str],
                 payload: list[str]) -> None:
        self.name, self.values, self.embed, self.payload = name, values, embed, payload


EXAMPLES = {
    "markdown": Example("notes", {"path": "./vault", "include": ["**/*.md"]},
                        ["title", "body"], ["tags", "path", "modified_at"]),
    "mongodb": Example("articles", {"uri": "${MONGODB_URI:-mongodb://localhost:27017}",
                                    "database": "app", "collection": "articles"},
                       ["title", "body"], ["slug", "tags"]),
    "git": Example("handbook", {"repo": "./handbook", "branch": "main"},
                   ["title", "body"], ["tags", "path", "commit", "committed_at"]),
    "website": Example("docs", {"start_urls": ["https://example.com/docs/"]},
                       ["title", "breadcrumbs", "body"], ["url", "title", "modified_at"]),
    "surrealdb": Example("cms", {"url": "surrealkv://./data/cms", "namespace": "app",
                                 "database": "cms", "table": "articles"},
                         ["title", "body"], ["tags", "author"]),
    "confluence": Example("wiki", {"url": "https://example.atlassian.net/wiki",
                                   "spaces": ["ENG"], "email": "${ATLASSIAN_EMAIL:-}",
                                   "token": "${ATLASSIAN_TOKEN:-change-me}"},
                          ["title", "body"], ["title", "space", "url", "modified_at"]),
    "jira": Example("issues", {"url": "https://example.atlassian.net",
                               "jql": "project = ENG", "email": "${ATLASSIAN_EMAIL:-}",
                               "token": "${ATLASSIAN_TOKEN:-change-me}"},
                    ["summary", "description", "comments"], ["key", "status", "labels"]),
}


def kinds() -> list[str]:
    return REGISTRY.names()


def _yaml_value(value: Any) -> str:
    """One line of YAML (flow style; JSON is YAML): strings quoted only where needed."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    plain = value and all(c.isalnum() or c in "._/-:" for c in value) \
        if isinstance(value, str) else False
    if plain and value.lower() not in ("null", "true", "false", "yes", "no", "on", "off"):
        return value
    return json.dumps(value, default=str)


def _described(line: str, text: str | None) -> list[str]:
    """`line` with its description as comment lines above it."""
    indent = line[:len(line) - len(line.lstrip())]
    return [*textwrap.wrap(" ".join((text or "").split()), 88 - len(indent),
                           initial_indent=f"{indent}# ", subsequent_indent=f"{indent}#   "),
            line]


def _source_lines(kind: str, example: Example | None, collection: str) -> list[str]:
    model: type[SourceConfig] = REGISTRY.config_model(kind)
    values = dict(example.values) if example else {}
    lines = [f"    kind: {kind}"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        if name in ("kind", "collections"):
            continue
        if key in values:
            line = f"    {key}: {_yaml_value(values[key])}"
        elif field.is_required():
            line = f"    {key}: CHANGE-ME"
        else:
            default = None if field.default is PydanticUndefined else field.default
            if field.default_factory is not None:
                default = field.default_factory()  # type: ignore[call-arg]
            line = f"    # {key}: {_yaml_value(default)}"
        lines.extend(_described(line, field.description))
    lines.append(f"    collections: [{collection}]  # the collections it feeds")
    return lines


def template(kind: str = DEFAULT_KIND) -> str:
    """The commented `vector_sync.yaml` for a source of `kind` (KeyError: not a kind)."""
    if kind not in REGISTRY:
        raise KeyError(kind)
    example = EXAMPLES.get(kind)
    name = example.name if example else kind
    doc = " ".join((REGISTRY.config_model(kind).__doc__ or "").split("\n\n")[0].split())
    embed, payload = (example.embed, example.payload) if example else (["title"], [])
    return "\n".join([
        f"# vector_sync.yaml: one {kind} source feeding one Qdrant collection.",
        f"# {kind}: {doc}",
        "# Every key is described in the configuration reference (docs/configuration.md);",
        "# ${VAR} and ${VAR:-default} are read from the environment (keep secrets there).",
        "# Relative paths resolve against this file's folder.",
        "qdrant:",
        "  url: ${QDRANT_URL:-}  # a Qdrant server; empty: Qdrant embedded under state.dir",
        "  api_key: ${QDRANT_API_KEY:-}",
        "state:",
        "  dir: .vector_sync  # embedded Qdrant, the SQLite ledger, the files between stages",
        "  # ledger_url: ${LEDGER_URL}  # postgresql://... for a shared ledger",
        "embedding:",
        "  model: sentence-transformers/all-MiniLM-L6-v2  # runs offline, installed with it",
        "sources:",
        f"  {name}:",
        *_source_lines(kind, example, name),
        "collections:",
        f"  {name}:  # the collection's name in Qdrant",
        f"    embed: {_yaml_value(embed)}  # fields embedded, in this order",
        f"    payload: {_yaml_value(payload)}  # fields copied to each point's payload",
        "",
    ])
