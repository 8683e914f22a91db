"""The package reads as a newcomer expects: imports run down the floors (cli, definitions ->
defs -> sources -> core) with no circle anywhere; a source kind is one package whose face the
registry names and whose helpers never import it back; sources use only the core's contract;
every module is short enough to read in one sitting; a shared name is defined once."""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path
from typing import get_args

import pytest

import vector_sync
from vector_sync.core.pipeline.rows import Action
from vector_sync.sources import REGISTRY

ROOT = Path(vector_sync.__file__).parent
MAX_LINES = 400
# what each floor must never import: nothing above it, and for sources, nothing of the core
# behind its contract (they offer documents to a sync; they do not reach into its machinery)
NEVER = {
    "vector_sync.core": ("vector_sync.sources", "vector_sync.defs", "vector_sync.cli",
                         "vector_sync.definitions", "vector_sync.config"),
    "vector_sync.sources": ("vector_sync.core.pipeline", "vector_sync.core.store",
                            "vector_sync.core.ledger", "vector_sync.core.text",
                            "vector_sync.core.consistency", "vector_sync.defs",
                            "vector_sync.cli", "vector_sync.definitions"),
    "vector_sync.defs": ("vector_sync.cli", "vector_sync.definitions"),
}


@cache
def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@cache
def _imports(name: str) -> frozenset[str]:
    """The vector_sync modules `name` imports anywhere in its file: at the top, inside a
    function (a deferred import still ties the two) or for type checking only."""
    path, known = _modules()[name], _modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known.keys()
            found.update(submodules or {base})
    return frozenset(m for m in found if m in known and m != name)


def _circle_through(start: str) -> list[str] | None:
    stack, seen = [(start, [start])], set()
    while stack:
        node, trail = stack.pop()
        for target in _imports(node):
            if target == start:
                return [*trail, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*trail, target]))
    return None


def test_no_module_imports_itself_through_others():
    circles = [circle for name in _modules() if (circle := _circle_through(name))]
    assert not circles, " ; ".join(" -> ".join(circle) for circle in circles)


def test_imports_run_down_the_floors():
    upward = {name: sorted(m for m in _imports(name) if m.startswith(never))
              for floor, never in NEVER.items() for name in _modules()
              if name.startswith(floor)}
    assert {name: found for name, found in upward.items() if found} == {}


def test_every_module_is_short_enough_to_read_in_one_sitting():
    too_long = {str(path.relative_to(ROOT)): lines for path in _modules().values()
                if "versions" not in path.parts  # migrations are written once, never edited
                and (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}


def test_each_source_kind_is_a_package_whose_face_the_registry_names():
    for kind in REGISTRY.names():
        model = REGISTRY.config_model(kind)
        assert model.__module__ == f"vector_sync.sources.{kind}", kind
        assert Path(sys.modules[model.__module__].__file__ or "").name == "__init__.py", kind


def test_a_kinds_helpers_never_import_its_face():
    faces = {f"vector_sync.sources.{kind}" for kind in REGISTRY.names()}
    back = {name: sorted(_imports(name) & faces) for name in _modules()
            if name.rpartition(".")[0] in faces}
    assert {name: found for name, found in back.items() if found} == {}


def test_the_definitions_module_only_puts_the_definitions_together():
    tree = ast.parse((ROOT / "definitions.py").read_text())
    assert {node.name for node in tree.body if isinstance(node, ast.FunctionDef)} == {
        "build_definitions", "defs"}


def test_the_change_actions_are_spelled_out_in_rows_only():
    actions, spelled = set(get_args(Action)), []
    for path in _modules().values():
        if path == ROOT / "core" / "pipeline" / "rows.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                names = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                if len(names) == len(node.elts) >= 2 and set(names) <= actions:
                    spelled.append(f"{path.relative_to(ROOT)}:{node.lineno} {names}")
    assert spelled == []  # use OUTCOMES, EMBEDS, WRITES_QDRANT, ... from rows.py


@pytest.mark.parametrize("name", ["TokenCounter", "FACET_LIMIT"])
def test_a_shared_name_is_defined_in_one_module(name: str):
    defining = []
    for path in _modules().values():
        for node in ast.parse(path.read_text()).body:
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                defining.append(str(path.relative_to(ROOT)))
    assert len(defining) == 1, defining
