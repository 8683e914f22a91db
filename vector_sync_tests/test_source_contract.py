"""The source contract is all a new source kind needs: a kind defined here, in the test,
registered the way the built-in kinds are (one line), is synced end to end by the real CLI
and Dagster run, verified, and watched by the generic sensor look."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import dagster as dg
import pytest
from pydantic import Field

from vector_sync.cli import main
from vector_sync.config import ConfigError, parse_config
from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.core.source import Source, SourceConfig, SourceUnavailable
from vector_sync.definitions import build_definitions
from vector_sync.sources import REGISTRY
from vector_sync_tests.support import Project, counts


class JsonLinesConfig(SourceConfig):
    """Records in a JSON Lines file, one document per line with an `id`."""

    kind: Literal["jsonl"]
    file: Path = Field(description="the .jsonl file")

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        return JsonLinesSource(name, self.file)

    def where(self) -> str:
        return f"records in {self.file}"


class JsonLinesSource:
    scoped_reads = True

    def __init__(self, name: str, file: Path) -> None:
        self.name, self.file = name, file

    def _records(self) -> dict[str, str]:
        try:
            lines = self.file.read_text().splitlines()
        except OSError as error:
            raise SourceUnavailable(f"jsonl source {self.name!r}: {error.strerror}") from None
        return {str(json.loads(line)["id"]): line for line in lines if line.strip()}

    def scan(self) -> Iterator[SourceEntry]:
        for doc_id, line in self._records().items():
            yield SourceEntry(doc_id, hashlib.sha256(line.encode()).hexdigest())

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        records = self._records()
        for doc_id in doc_ids:
            if doc_id in records:
                line = records[doc_id]
                yield Document(doc_id, hashlib.sha256(line.encode()).hexdigest(),
                               json.loads(line))


@pytest.fixture
def jsonl_kind() -> Iterator[None]:
    REGISTRY.register("jsonl", JsonLinesConfig)  # exactly how sources/__init__.py does it
    yield
    REGISTRY.unregister("jsonl")


def _write(path: Path, *records: dict[str, object]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def tools(project: Project, jsonl_kind: None) -> Project:
    project.config["sources"] = {"tools": {"kind": "jsonl", "file": "tools.jsonl",
                                           "collections": ["tools"]}}
    project.config["collections"] = {"tools": {"embed": ["name", "about"],
                                               "payload": ["stars"]}}
    project.save()
    _write(project.root / "tools.jsonl",
           {"id": 1, "name": "ripgrep", "about": "Searches files by regex, fast.", "stars": 5},
           {"id": 2, "name": "fd", "about": "Finds files by name.", "stars": 4})
    return project


def test_a_kind_defined_in_a_test_syncs_end_to_end(tools: Project, capsys):
    code, report = tools.cli("sync", capsys=capsys)
    assert code == 0 and counts(report, "tools", "tools")["added"] == 2
    assert {d: p[0]["stars"] for d, p in tools.points("tools").items()} == {"1": 5, "2": 4}

    _write(tools.root / "tools.jsonl",
           {"id": 1, "name": "ripgrep", "about": "Searches files by regex, fast.", "stars": 6},
           {"id": 3, "name": "bat", "about": "Prints files with syntax highlighting."})
    code, report = tools.cli("sync", capsys=capsys)
    assert code == 0
    assert {k: v for k, v in counts(report, "tools", "tools").items() if v} == {
        "added": 1, "payload_updated": 1, "deleted": 1, "chunks_embedded": 1}
    points = tools.points("tools")
    assert set(points) == {"1", "3"} and points["1"][0]["stars"] == 6
    assert "syntax highlighting" in points["3"][0]["text"]

    code, verified = tools.cli("verify", capsys=capsys)
    assert code == 0 and verified["collections"]["tools"]["sources"]["tools"]["checked"] == 2


def test_the_generic_look_watches_a_new_kind(tools: Project):
    defs = build_definitions(str(tools.config_file))
    sensor = defs.resolve_sensor_def("watch_tools")
    instance = dg.DagsterInstance.ephemeral()
    first = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(first, dg.SensorResult) and len(first.run_requests or []) == 1
    quiet = sensor(dg.build_sensor_context(instance=instance, definitions=defs,
                                           cursor=first.cursor))
    assert isinstance(quiet, dg.SensorResult) and not quiet.run_requests
    _write(tools.root / "tools.jsonl", {"id": 9, "name": "jq", "about": "Slices JSON."})
    changed = sensor(dg.build_sensor_context(instance=instance, definitions=defs,
                                             cursor=quiet.cursor))
    assert isinstance(changed, dg.SensorResult)
    [request] = changed.run_requests or []
    assert request.partition_key == "tools" and "tools.jsonl" in (sensor.description or "")


def test_an_unknown_kind_is_a_config_error_naming_the_known_ones(project: Project, capsys):
    project.config["sources"]["notes"]["kind"] = "jsonl"  # not registered here
    project.save()
    capsys.readouterr()
    assert main(["sync", "--config", str(project.config_file)]) == 2
    error = capsys.readouterr().err
    assert "sources.notes.kind: unknown source kind 'jsonl'" in error
    assert "markdown" in error and "mongodb" in error and "git" in error


@pytest.mark.parametrize(("source", "message"), [
    ({"collections": ["notes"]}, "sources.notes.kind: Field required"),
    ({"kind": ["markdown"], "collections": ["notes"]}, "sources.notes.kind: Input should be"),
])
def test_a_missing_or_malformed_kind_is_a_config_error(source, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"sources": {"notes": source},
                      "collections": {"notes": {"embed": ["title"]}}}, Path("/base"))
