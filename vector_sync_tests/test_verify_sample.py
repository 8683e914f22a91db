"""`verify --sample` costs what it samples: its documents are drawn from the ledger, only they
are read from the source (by id, never listed), and they are compared with Qdrant. What a
sample cannot see is said in its output. The source is the real Markdown source, subclassed
only to count what it is asked (an injected probe)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import pytest

from vector_sync.cli import main
from vector_sync.core.documents import Document, ReadFailure, SourceEntry
from vector_sync.core.source import Source
from vector_sync.sources import REGISTRY
from vector_sync.sources.markdown import MarkdownConfig, MarkdownSource
from vector_sync_tests.support import Project

NOTES = 40
ASKED: dict[str, list[str]] = {"read": [], "scan": []}


class ProbedSource(MarkdownSource):
    def scan(self) -> Iterator[SourceEntry]:
        ASKED["scan"].append(self.name)
        yield from super().scan()

    def read(self, doc_ids: Iterable[str]) -> Iterator[Document | ReadFailure]:
        ids = list(doc_ids)
        ASKED["read"] += ids
        yield from super().read(ids)


class ProbedConfig(MarkdownConfig):
    kind: Literal["probed_markdown"]  # type: ignore[assignment]

    def open(self, name: str, fields: Sequence[str] | None) -> Source:
        return ProbedSource(name, self)


@pytest.fixture
def vault(project: Project, capsys: pytest.CaptureFixture[str]) -> Iterator[Project]:
    REGISTRY.register("probed_markdown", ProbedConfig)
    project.config["sources"]["notes"]["kind"] = "probed_markdown"
    project.save()
    for i in range(NOTES):
        project.note(f"n{i:02}.md", f"---\ntags: [t{i}]\n---\n# Note {i}\n\nNote {i} is short.\n")
    assert project.cli("sync", capsys=capsys)[0] == 0
    ASKED["read"].clear()
    ASKED["scan"].clear()
    yield project
    REGISTRY.unregister("probed_markdown")


def sampled(project: Project, capsys: pytest.CaptureFixture[str],
            fraction: str) -> tuple[int, dict]:
    code, report = project.cli("verify", "--sample", fraction, capsys=capsys)
    return code, report["collections"]["notes"]["sources"]["notes"]


def test_a_sample_reads_only_its_documents_and_never_lists_the_source(vault, capsys):
    code, found = sampled(vault, capsys, "0.1")
    assert code == 0 and found["checked"] == NOTES
    assert ASKED["scan"] == []  # not listed
    assert len(ASKED["read"]) == len(set(ASKED["read"])) == NOTES // 10  # 4 of 40, once each
    assert "4 of 40 documents" in found["sampled"]
    assert "the ledger does not know" in found["sample_cannot_see"]
    assert "include and ignore rules" in found["sample_cannot_see"]  # reads are not scoped
    capsys.readouterr()
    code = main(["verify", "--sample", "0.1", "--config", str(vault.config_file)])
    out = capsys.readouterr().out
    assert code == 0 and "sampled: 4 of 40 documents" in out
    assert "a sample cannot see: documents the ledger does not know" in out


def test_a_sample_compares_its_documents_with_the_source_as_it_is_now(vault, capsys):
    (vault.vault / "n03.md").write_text("# Note 3\n\nRewritten since the sync.\n")
    (vault.vault / "n07.md").unlink()
    vault.note("new.md", "# New\n\nNot synced yet: the ledger does not know it.\n")
    code, found = sampled(vault, capsys, "1.0")
    assert code == 1 and found["stale"] == 1 and found["orphans"] == 1
    assert {(o["problem"], o["doc_id"]) for o in found["offenders"]} >= {
        ("stale", "n03.md"), ("orphan", "n07.md")}
    assert sorted(ASKED["read"]) == sorted(f"n{i:02}.md" for i in range(NOTES))  # not new.md
    # the points the sample found gone are not expected; new.md's are never seen
    assert found["points_expected"] == found["points"] - 1

