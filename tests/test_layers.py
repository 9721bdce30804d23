"""No import reaches up a layer (docs/design.md): each package imports only those below it.

The layers, lowest first: the model and the shared modules at the top of the package, desired/,
live/, emulator/, sources/ (which of the two serves a customer), plan/, apply/, render/, drift/,
adopt/, scaffold/, cli/, and `python -m reconciler` on top. No exceptions; `from
reconciler.emulator import x` counts as importing the emulator.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "reconciler"
ORDER = ("desired", "live", "emulator", "sources", "plan", "apply", "render", "drift", "adopt",
         "scaffold", "cli")


def _layer(module: str) -> int:
    parts = module.split(".")
    return ORDER.index(parts[1]) + 1 if len(parts) >= 2 and parts[1] in ORDER else 0


def test_no_import_reaches_up_a_layer() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        # `python -m reconciler` starts the command line: the entry point sits on top.
        own = len(ORDER) + 1 if relative == "reconciler/__main__.py" else \
            _layer(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("reconciler.") and _layer(name) > own:
                    upward.append(f"{relative}:{node.lineno} imports {name}")
    assert upward == []
