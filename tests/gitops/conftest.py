"""Shared paths and helpers for the GitOps tests: the workflow files, and running a workflow's
actions/github-script step under node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXAMPLE = ROOT / "examples" / "desired-state"
TEMPLATES = EXAMPLE / ".github" / "workflows"
WORKFLOWS = sorted([*(ROOT / ".github" / "workflows").glob("*.yml"), *TEMPLATES.glob("*.yml")])


def node() -> str:
    found = shutil.which("node")
    # A missing node must fail the tests, not skip them: the workflows would go unlinted.
    assert found, "node is not installed; the GitOps tests need it (see .ci/run)"
    return found


def load_workflow(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def script_of(workflow: Path, job: str) -> str:
    """The `script:` of the one actions/github-script step of ``job``."""
    steps = load_workflow(workflow)["jobs"][job]["steps"]
    scripts = [s["with"]["script"] for s in steps
               if str(s.get("uses", "")).startswith("actions/github-script@")]
    assert len(scripts) == 1, f"{workflow.name}: job {job} should have one github-script step"
    return scripts[0]


def run_github_script(script: str, cwd: Path, *, env: dict[str, str],
                      context: dict[str, Any], comments: list[dict[str, Any]] | None = None,
                      issues: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run ``script`` as actions/github-script would, against a recording GitHub client."""
    payload = {"script": script, "cwd": str(cwd), "env": env, "context": context,
               "comments": comments or [], "issues": issues or []}
    done = subprocess.run([node(), str(HERE / "github_script.cjs")], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result
