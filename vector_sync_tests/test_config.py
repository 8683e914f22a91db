"""The config contract: validation messages that name the key, interpolation, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from vector_sync.config import ConfigError, interpolate, load_config

MINIMAL = """
sources:
  notes: {kind: markdown, path: ./vault, collections: [notes]}
collections:
  notes: {embed: [title, body]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "conf" / "vector_sync.yaml"
    file.parent.mkdir(exist_ok=True)
    file.write_text(text)
    return file


def test_defaults_and_paths_relative_to_the_config_file(tmp_path):
    config = load_config(_write(tmp_path, MINIMAL))
    assert config.sources["notes"].path == tmp_path / "conf" / "vault"
    assert config.state.dir == tmp_path / "conf" / ".vector_sync"
    assert config.state.ledger_sqlalchemy_url() == \
        f"sqlite:///{tmp_path / 'conf' / '.vector_sync' / 'ledger.sqlite'}"
    assert config.qdrant.url is None
    assert config.embedding.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert config.collections["notes"].chunking.max_tokens == 256


def test_interpolation_with_defaults_and_secrets_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("QDRANT_KEY", "s3cret-value")
    monkeypatch.delenv("UNSET_URL", raising=False)
    config = load_config(_write(tmp_path, MINIMAL + """
qdrant:
  url: ${UNSET_URL:-http://localhost:6333}
  api_key: ${QDRANT_KEY}
"""))
    assert config.qdrant.url == "http://localhost:6333"
    assert config.qdrant.api_key is not None
    assert config.qdrant.api_key.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(config) and "s3cret-value" not in str(config)
    assert interpolate("${A:-x}", {"A": ""}) == "x" and interpolate("${A}", {"A": ""}) == ""
    with pytest.raises(ConfigError, match="NOPE is not set"):
        interpolate("${NOPE}", {})


@pytest.mark.parametrize(("extra", "message"), [
    ("collections:\n  notes: {embed: [title], payloadd: [x]}",
     "collections.notes.payloadd: unknown key"),
    ("collections:\n  notes: {embed: [title], payload: [text]}",
     "collides with the reserved key 'text'"),
    ("collections:\n  notes: {embed: []}", "collections.notes.embed"),
    ("collections:\n  other: {embed: [title]}", "which is not defined under collections"),
    ("collections:\n  notes: {embed: [title], chunking: {max_tokens: 512}}",
     "reads at most 256 tokens"),
])
def test_errors_name_the_key_and_say_what_is_expected(tmp_path, extra, message):
    base = MINIMAL.split("\ncollections:")[0] + "\n"
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(_write(tmp_path, base + extra))


def test_an_unknown_source_kind_lists_the_supported_ones(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, MINIMAL.replace("kind: markdown", "kind: gopher")))
    assert "sources.notes" in str(error.value) and "markdown" in str(error.value)


def test_a_missing_file_and_bad_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "sources: [unclosed"))
