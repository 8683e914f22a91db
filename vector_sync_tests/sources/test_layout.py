"""How the source kinds are laid out, so a contributor finds a kind in one place: one package
per kind whose face (`__init__.py`) the registry names, helpers beside it that never import
it back, no module that imports itself in a loop, and nothing from the core but its contract
(never a pipeline stage, the store, the ledger, the text tools or the consistency checks)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import vector_sync.sources
from vector_sync.sources import REGISTRY

SOURCES = Path(vector_sync.sources.__file__).parent
# the core's packages behind the contract: a source that imported them would reach into a
# sync's machinery instead of offering documents to it
NOT_FOR_SOURCES = ("vector_sync.core.pipeline", "vector_sync.core.store",
                   "vector_sync.core.ledger", "vector_sync.core.text",
                   "vector_sync.core.consistency", "vector_sync.defs", "vector_sync.cli",
                   "vector_sync.definitions")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(SOURCES.rglob("*.py")):
        parts = path.relative_to(SOURCES.parent.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: Path) -> set[str]:
    """Every vector_sync module `name` names in an import, at any depth (inside functions and
    under TYPE_CHECKING too): `from a import b` names `a`, and `a.b` when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names
                         if f"{base}.{alias.name}" in _modules())
    return {m for m in found if m.startswith("vector_sync.")}


def test_each_kind_is_a_package_whose_face_the_registry_names():
    for kind in REGISTRY.names():
        model = REGISTRY.config_model(kind)
        assert model.__module__ == f"vector_sync.sources.{kind}", kind
        assert Path(sys.modules[model.__module__].__file__ or "").name == "__init__.py", kind


def test_helpers_never_import_their_kinds_face():
    for name, path in _modules().items():
        kind = name.split(".")[2] if name.count(".") >= 3 else None
        if kind is None:
            continue
        face = f"vector_sync.sources.{kind}"
        assert face not in _imports(name, path), f"{name} imports its face {face}"


def test_no_source_module_imports_itself_in_a_loop():
    modules = _modules()
    graph = {name: {m for m in _imports(name, path) if m in modules}
             for name, path in modules.items()}

    def loop_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return [*trail, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    loops = [loop for name in graph if (loop := loop_from(name))]
    assert not loops, " ; ".join(" -> ".join(loop) for loop in loops)


def test_sources_import_only_the_cores_contract():
    for name, path in _modules().items():
        reached = sorted(m for m in _imports(name, path) if m.startswith(NOT_FOR_SOURCES))
        assert not reached, f"{name} imports {reached}"


@pytest.mark.parametrize("path", sorted(SOURCES.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(SOURCES)))
def test_every_module_stays_readable_in_one_sitting(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 400, f"{path.relative_to(SOURCES)} has {lines} lines"
