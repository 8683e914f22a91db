"""The store, ledger and text packages read as a newcomer expects: no module of a package
imports, directly or through others of the package, the module that imports it; modules stay
short enough to read in one sitting; and a shared definition is made in one place."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import vector_sync

ROOT = Path(vector_sync.__file__).parent
PACKAGES = ("core/store", "core/ledger", "core/text")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The vector_sync modules `module` imports anywhere in its file: at the top, inside a
    function (a deferred import still ties the two) or for type checking only."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:  # a submodule
                    yield f"{base}.{alias.name}"
                elif base in known:
                    yield base


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(group)

    for node in graph:
        if node not in index:
            visit(node)
    return circles


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_of_the_package_is_in_an_import_circle_with_another(package: str) -> None:
    prefix = "vector_sync." + package.replace("/", ".")
    known = {name: path for name, path in _modules().items()
             if name == prefix or name.startswith(prefix + ".")}
    graph = {name: set(_imported(name, path, known)) - {name} for name, path in known.items()}
    assert _circles(graph) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_of_the_package_is_short_enough_to_read(package: str) -> None:
    too_long = {str(path.relative_to(ROOT)): lines
                for path in (ROOT / package).rglob("*.py")
                if "versions" not in path.parts  # migrations are written once, never edited
                and (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}


@pytest.mark.parametrize("name", ["TokenCounter", "FACET_LIMIT"])
def test_a_shared_name_is_defined_in_one_module(name: str) -> None:
    defining = []
    for path in ROOT.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                defining.append(str(path.relative_to(ROOT)))
    assert len(defining) == 1, defining
