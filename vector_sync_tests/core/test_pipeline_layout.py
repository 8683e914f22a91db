"""The pipeline package reads as a newcomer expects: the change actions and their named sets
are spelled in one module (rows.py), the source contract does not depend on the ledger (no
import circle ledger -> settings -> source -> ledger), and every module is short enough to
read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import vector_sync
from vector_sync.core.pipeline.rows import Action

ROOT = Path(vector_sync.__file__).parent
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The vector_sync modules a file imports anywhere: at the top, in a function, or for
    type checking only (each still ties the two modules together)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found |= {submodule} if submodule in known else \
                    {node.module} if node.module in known else set()
    return found


def test_the_change_actions_are_spelled_out_in_rows_only() -> None:
    actions = set(get_args(Action))
    spelled = []
    for path in ROOT.rglob("*.py"):
        if path == ROOT / "core" / "pipeline" / "rows.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                names = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                if len(names) == len(node.elts) >= 2 and set(names) <= actions:
                    spelled.append(f"{path.relative_to(ROOT)}:{node.lineno} {names}")
    assert spelled == []  # use OUTCOMES, EMBEDS, WRITES_QDRANT, ... from rows.py


def test_the_source_contract_does_not_reach_the_ledger() -> None:
    known = _modules()
    seen, todo = set(), ["vector_sync.core.source"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_imports(known[module], known))
    assert not {m for m in seen if m.startswith("vector_sync.core.ledger")}


def test_every_pipeline_module_is_short_enough_to_read() -> None:
    too_long = {path.name: lines for path in (ROOT / "core" / "pipeline").glob("*.py")
                if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}
