"""A new provider repository that works at once (``reconciler init DIR``), and the JSON Schemas
its editor settings and modelines point at (``reconciler schemas --write DIR``).

The repository holds one customer on the embedded sandbox tenant with one site, a shared
mailbox and a few commented entries to copy; the workflows are the ones the example repository
ships (``examples/desired-state/.github/workflows``), so the two never drift apart.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from reconciler.desired.schema import SCHEMA_DIR
from reconciler.errors import ReconcilerError

TEMPLATE = Path(__file__).resolve().parent / "template"
WORKFLOWS = Path(__file__).resolve().parent / "workflows"
CUSTOMER = "example"
# Schemas the YAML's modelines and the editor settings name, written to DIR/schemas/.
EDITOR_SCHEMAS = ("reconciler.schema.json", "customer.schema.json", "site.schema.json",
                  "resources.schema.json")
# Template files stored without their leading dot (package data skips hidden files).
DOTTED = {"gitignore": ".gitignore", "pre-commit-config.yaml": ".pre-commit-config.yaml",
          "vscode-settings.json": ".vscode/settings.json",
          "sandbox-seed.json": f"sandbox/{CUSTOMER}.json"}


def write_schemas(repository: Path) -> list[Path]:
    """Write (or refresh) the editor schemas into ``repository/schemas/``."""
    target = repository / "schemas"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EDITOR_SCHEMAS:
        shutil.copyfile(SCHEMA_DIR / name, target / name)
        written.append(target / name)
    return written


def init_repository(target: Path) -> list[Path]:
    """Scaffold a provider repository in ``target`` (absent or empty); the files written."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ReconcilerError(f"{target} is not empty: `reconciler init` writes a new "
                              "repository only into an empty or new folder")
    files: list[tuple[Path, Path]] = []
    for source in sorted(TEMPLATE.rglob("*")):
        if source.is_file():
            relative = source.relative_to(TEMPLATE).as_posix()
            files.append((source, target / DOTTED.get(relative, relative)))
    files += [(wf, target / ".github" / "workflows" / wf.name)
              for wf in sorted(WORKFLOWS.glob("*.yml"))]
    for source, dest in files:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    written = [dest for _, dest in files] + write_schemas(target)
    written.append(_write_codeowners(target))
    return written


def _write_codeowners(target: Path) -> Path:
    """CODEOWNERS as `reconciler codeowners` writes it, so the plan workflow's check passes."""
    from reconciler.desired import load
    from reconciler.desired.codeowners import DEFAULT_LOCATION, render_codeowners

    path = target / DEFAULT_LOCATION
    path.write_text(render_codeowners(load(target)), encoding="utf-8")
    return path
