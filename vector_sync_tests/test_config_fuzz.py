"""Configuration fuzzing (hypothesis): whatever a config file holds, loading it either gives a
config or raises ConfigError with a message, never another exception (a KeyError, a
TypeError from a validator) that the CLI would print as a traceback instead of exit code 2."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vector_sync.config import ConfigError, parse_config

VALID: dict[str, Any] = {
    "state": {"dir": "state", "ledger_url": None},
    "qdrant": {"url": None},
    "embedding": {"model": "sentence-transformers/all-MiniLM-L6-v2", "batch_size": 16},
    "retry": {"max_retries": 3},
    "sensors": {"interval_s": 15},
    "sources": {
        "notes": {"kind": "markdown", "path": "vault", "collections": ["notes"]},
        "tools": {"kind": "mongodb", "uri": "mongodb://h/", "database": "d",
                  "collection": "c", "collections": ["notes"], "updated_field": "u"},
        "code": {"kind": "git", "repo": "repo", "branch": "main", "collections": ["notes"]},
        "docs": {"kind": "website", "start_urls": ["https://ex.com/docs/"],
                 "collections": ["notes"]},
        "cms": {"kind": "surrealdb", "url": "mem://", "namespace": "n", "database": "d",
                "table": "t", "where": "a = 1", "collections": ["notes"]},
    },
    "collections": {"notes": {"embed": ["title", "body"], "payload": ["tags"],
                              "chunking": {"max_tokens": 256}}},
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=10)


def paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += paths(value, (*prefix, index))
    return found


ALL_PATHS = paths(VALID)[1:]


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    config = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent: Any = config
        for part in path[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                break
        else:
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if isinstance(parent, dict) and action == "delete":
                parent.pop(path[-1], None)
            elif isinstance(parent, dict) and action == "add":
                parent[draw(st.text(max_size=10))] = draw(values)
            elif isinstance(parent, dict | list):
                # an earlier mutation may have changed the shape under this path
                with contextlib.suppress(IndexError, TypeError):
                    parent[path[-1]] = draw(values)
    return draw(st.one_of(st.just(config), values)) if draw(st.integers(0, 20)) == 0 \
        else config


@pytest.mark.parametrize("path", ["state\x00dir", "/abs/\x00"])
def test_a_path_with_a_nul_byte_is_a_config_error(tmp_path, path):
    # found by the fuzzer below: it raised ValueError("embedded null byte")
    with pytest.raises(ConfigError, match="cannot be used"):
        parse_config({**copy.deepcopy(VALID), "state": {"dir": path}}, tmp_path)


def test_the_unmutated_config_is_valid(tmp_path):
    assert set(parse_config(copy.deepcopy(VALID), tmp_path).sources) == set(VALID["sources"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_any_config_loads_or_fails_with_config_error(data):
    try:
        parse_config(data, Path("/tmp/vector-sync-fuzz"))
    except ConfigError as error:
        assert str(error).strip()
