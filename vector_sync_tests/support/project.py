"""A vault plus config in a temporary folder, driven through the real CLI, and readers of
what embedded Qdrant actually holds after a run."""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import yaml

from vector_sync.cli import main
from vector_sync.config import QdrantConfig, StateConfig
from vector_sync.core.store import QdrantStore, open_store


def write_note(vault: Path, rel: str, text: str) -> Path:
    path = vault / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def long_note(title: str, sections: int = 4, words: int = 180) -> str:
    """A note long enough for several 256-token chunks."""
    parts = [f"---\ntitle: {title}\ntags: [long]\n---\n# {title}\n"]
    for s in range(sections):
        sentence = f"Section {s} of {title} explains topic {s} in detail with example {s}. "
        parts.append(f"## Part {s}\n\n" + sentence * (words // 12) + "\n")
    return "\n".join(parts)


class Project:
    """A vault plus config in a temp folder, driven through the real CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.vault = root / "vault"
        self.vault.mkdir()
        self.config_file = root / "vector_sync.yaml"
        self.config: dict[str, Any] = {
            "state": {"dir": "state"},
            "sources": {"notes": {"kind": "markdown", "path": "vault",
                                  "collections": ["notes"]}},
            "collections": {"notes": {"embed": ["title", "body"],
                                      "payload": ["tags", "path"]}},
        }
        self.save()

    @classmethod
    def at(cls, root: Path) -> Project:
        """A project already on disk, e.g. a copy of another one taken after a sync."""
        project = cls.__new__(cls)
        project.root, project.vault = root, root / "vault"
        project.config_file = root / "vector_sync.yaml"
        project.config = yaml.safe_load(project.config_file.read_text())
        return project

    def save(self) -> None:
        self.config_file.write_text(yaml.safe_dump(self.config))

    def note(self, rel: str, text: str) -> Path:
        return write_note(self.vault, rel, text)

    def cli(self, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
        capsys.readouterr()
        code = main([*args, "--config", str(self.config_file), "--json"])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else None

    def points(self, collection: str = "notes") -> dict[str, list[dict[str, Any]]]:
        """doc_id -> payloads of its points, sorted by chunk_index, read from Qdrant."""
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with self.qdrant() as store:
            for point in store.scroll(collection, None):
                found[point.payload["doc_id"]].append(point.payload)
        return {d: sorted(p, key=lambda x: x["chunk_index"]) for d, p in found.items()}

    def held(self, collection: str = "notes") -> dict[str, Any]:
        """Point id -> (payload without synced_at, vector rounded): what Qdrant holds, to
        compare with another sync of the same data."""
        with self.qdrant() as store:
            return {p.id: ({k: v for k, v in p.payload.items() if k != "synced_at"},
                           [round(x, 4) for x in p.vector or []])
                    for p in store.scroll(collection, None, with_vectors=True)}

    def qdrant(self) -> AbstractContextManager[QdrantStore]:
        """The project's embedded Qdrant, opened the way a run opens it."""
        return open_store(QdrantConfig(), StateConfig(dir=self.root / self.config["state"]["dir"]))


def counts(report: dict[str, Any], source: str = "notes",
           collection: str = "notes") -> dict[str, int]:
    return report["sources"][source]["collections"][collection]


def listed(caplog: pytest.LogCaptureFixture) -> bool:
    """The last sync listed its source (else the source's change history alone named what
    to read), as the snapshot's log says; clears the captured log for the next sync."""
    messages = [r.getMessage() for r in caplog.records if r.name.endswith(".snapshot")]
    caplog.clear()
    assert any("to read" in m for m in messages), messages
    return not any("not listed" in m for m in messages)
