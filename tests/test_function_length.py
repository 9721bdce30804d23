"""Every function in reconciler/ is short enough to read at once: at most 60 lines, counted
from its ``def`` to its last line (docstring included), as ``ast`` sees it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "reconciler"
LIMIT = 60


def _too_long() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > LIMIT:
                    found.append(f"{relative}:{node.lineno} {node.name} is {length} lines")
    return found


def test_no_function_is_longer_than_the_limit() -> None:
    assert _too_long() == []
