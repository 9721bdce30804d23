"""The pre-commit hooks (.pre-commit-hooks.yaml) on a copy of the example repository.

pre-commit installs a hook's package from a commit of the hook's repository, so these tests
use a clone of this repository's HEAD: the hooks and code they check are the committed ones.
Installing the package into pre-commit's environment reaches the package registry; nothing
else here uses the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitops.conftest import EXAMPLE, ROOT

PRE_COMMIT = Path(sys.executable).parent / "pre-commit"


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t",
                           "-c", "init.defaultBranch=main", *args],
                          cwd=cwd, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip()


class Workspace:
    def __init__(self, base: Path) -> None:
        self.hooks = base / "reconciler"
        _git(base, "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(self.hooks))
        self.rev = _git(self.hooks, "rev-parse", "HEAD")
        self.env = {**os.environ, "PRE_COMMIT_HOME": str(base / "pre-commit-home")}
        self.env.pop("GITHUB_ACTIONS", None)
        self.base = base

    def repository(self, name: str) -> Path:
        """A fresh copy of the example repository, with its files staged in a new git repo."""
        repo = self.base / name
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".reconciler"))
        _git(repo, "init", "--quiet")
        _git(repo, "add", "-A")
        return repo

    def pre_commit(self, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
        assert PRE_COMMIT.is_file(), f"pre-commit is not installed in {PRE_COMMIT.parent}"
        return subprocess.run([str(PRE_COMMIT), *args], cwd=repo, env=self.env,
                              capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    # One clone and one hook environment for the module: installing it is the slow part.
    return Workspace(tmp_path_factory.mktemp("pre-commit"))


def test_try_repo_validates_the_example_repository(workspace: Workspace) -> None:
    repo = workspace.repository("valid")
    done = workspace.pre_commit(repo, "try-repo", str(workspace.hooks), "reconciler-validate",
                                "--all-files")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reconciler validate" in done.stdout and "Passed" in done.stdout


def test_the_hook_fails_on_a_broken_file(workspace: Workspace) -> None:
    repo = workspace.repository("broken")
    site = repo / "customers/contoso/sites/paris/site.yaml"
    site.write_text(site.read_text().replace("  name: Paris\n",
                                             "  name: Paris\n  colour: blue\n"))
    _git(repo, "add", "-A")
    done = workspace.pre_commit(repo, "try-repo", str(workspace.hooks), "reconciler-validate",
                                "--all-files")
    assert done.returncode == 1
    assert "Failed" in done.stdout
    assert "customers/contoso/sites/paris/site.yaml:5:3: error: unknown key 'colour'" in done.stdout


def test_the_codeowners_hook_with_the_providers_owner(workspace: Workspace) -> None:
    repo = workspace.repository("owners")
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n"
        f"  - repo: {workspace.hooks}\n"
        f"    rev: {workspace.rev}\n"
        f"    hooks:\n"
        f"      - id: reconciler-codeowners\n"
        f"        args: [--default-owner, '@your-org/platform']\n")
    _git(repo, "add", "-A")
    assert workspace.pre_commit(repo, "run", "--all-files").returncode == 0
    site = repo / "customers/contoso/sites/paris/site.yaml"
    site.write_text(site.read_text().replace("  name: Paris\n",
                                             "  name: Paris\n  owners: ['@contoso/paris']\n"))
    _git(repo, "add", "-A")
    done = workspace.pre_commit(repo, "run", "--all-files")
    assert done.returncode == 1, done.stdout
    assert "out of date" in done.stdout
