"""Repositories to import into: the example repository's customers and sites with no
resources (and a fresh copy of its sandbox seeds as the live tenants), or the whole example
repository with its comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli

EXAMPLE = Path(__file__).parents[2] / "examples" / "desired-state"
SEED_CUSTOMERS = ("contoso", "fabrikam")


def fresh_live(tmp_path: Path) -> Path:
    """A fresh copy of the seed tenants, as `reconciler sandbox reset` would make."""
    live = tmp_path / "live"
    shutil.copytree(EXAMPLE / "sandbox", live)
    return live


@pytest.fixture
def bare_repo(tmp_path: Path) -> Path:
    """customer.yaml and site.yaml files only (and the provider's reconciler.yaml)."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(EXAMPLE / "reconciler.yaml", root / "reconciler.yaml")
    for path in EXAMPLE.glob("customers/**/*.yaml"):
        if path.name in ("customer.yaml", "site.yaml"):
            target = root / path.relative_to(EXAMPLE)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    return root


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".reconciler", "sandbox"))
    return root


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*.yaml"))}
