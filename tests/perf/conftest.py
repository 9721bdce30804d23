"""Repositories for the checks that the fast paths give the same answers as the plain ones."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"
EXAMPLE = Path(__file__).parents[2] / "examples" / "desired-state"


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=root, check=True, capture_output=True)


def commit_all(root: Path, message: str = "base") -> None:
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
        (root / ".gitignore").write_text(".reconciler/\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def generated_case(base: Path, mailboxes: int, files: int, users_per_site: int,
                   drift: float) -> tuple[Path, Path]:
    """The benchmark's repository (10 grants a mailbox) under ``base``, and the directory of its
    tenant snapshot: the repository's own plan carried out, then ``drift`` of it changed."""
    sys.path.insert(0, str(BENCH))
    try:
        from bench_plan import build_live
        from gen_repo import generate
    finally:
        sys.path.remove(str(BENCH))
    root = base / "repo"
    generate(root, mailboxes, 10 * mailboxes, files, users_per_site=users_per_site)
    live = base / "live"
    live.mkdir()
    (live / "customer-0.json").write_text(json.dumps(
        build_live(root, users_per_site, drift, 1)))
    return root, live


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated repository of 400 mailboxes (the benchmark's generator, 2% drift) and the
    directory of its tenant snapshot, built once per session; tests copy it."""
    return generated_case(tmp_path_factory.mktemp("generated"), 400, 8, 20, 0.02)


@pytest.fixture
def generated_copy(generated: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    root, live = generated
    shutil.copytree(root, tmp_path / "repo")
    return tmp_path / "repo", live


@pytest.fixture
def example_copy(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(EXAMPLE, tmp_path / "repo", ignore=shutil.ignore_patterns(".reconciler"))
    return tmp_path / "repo", tmp_path / "repo" / "snapshots"
