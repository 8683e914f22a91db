"""The Dagster layer reads top down: the CLI may import the definitions, the definitions put
together what `vector_sync.defs` makes, and no module of `defs` imports back up the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import vector_sync

ROOT = Path(vector_sync.__file__).parent
ABOVE_DEFS = ("vector_sync.definitions", "vector_sync.cli")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or deferred inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_no_module_of_defs_imports_the_definitions_or_the_cli():
    upward = {str(path.relative_to(ROOT)): sorted(
                  name for name in _imports(path) if name.startswith(ABOVE_DEFS))
              for path in (ROOT / "defs").rglob("*.py")}
    assert {path: names for path, names in upward.items() if names} == {}


def test_the_definitions_module_only_builds_the_definitions():
    tree = ast.parse((ROOT / "definitions.py").read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert functions == {"build_definitions", "defs"}
