"""The product as a user installs it: a wheel built from this checkout installs in a fresh venv
and `reconciler init`, `validate`, `sandbox reset` and `plan` work from it, templates and
schemas included (package data, not files of this checkout).

About 15 s: pip builds the wheel in an isolated environment and installs the dependencies into
the new venv from the configured package index."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_a_built_wheel_installs_and_runs_in_a_fresh_venv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT,
         cwd=tmp_path)
    [wheel] = wheels.glob("exchange_reconciler-*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    bin_dir = env / ("Scripts" if sys.platform == "win32" else "bin")
    _run(bin_dir / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    reconciler = bin_dir / "reconciler"
    _run(reconciler, "init", "provider", cwd=tmp_path)
    repo = tmp_path / "provider"
    assert (repo / "schemas" / "resources.schema.json").is_file()
    assert (repo / ".github" / "workflows" / "plan.yml").is_file()
    assert "valid (1 customer, 3 resources)" in _run(reconciler, "validate", cwd=repo)
    _run(reconciler, "sandbox", "reset", cwd=repo)
    assert "Plan: 1 to add" in _run(reconciler, "plan", cwd=repo)
