"""Shared paths and helpers for the GitOps tests: the workflow files, and running a workflow's
steps outside GitHub (its github-script steps under node, its run steps under bash)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXAMPLE = ROOT / "examples" / "desired-state"
TEMPLATES = EXAMPLE / ".github" / "workflows"
# The context actions/github-script gives a script, for a run on pull request 7.
CONTEXT: dict[str, Any] = {
    "repo": {"owner": "msp", "repo": "desired-state"},
    "serverUrl": "https://github.com",
    "runId": 42,
    "payload": {"pull_request": {"number": 7, "head": {"sha": "0123456789abcdef"}}},
}
ACTION = ROOT / "action.yml"
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


def step_script(workflow: Path, job: str, name: str) -> str:
    """The `run:` script of the step called ``name`` in ``job``."""
    steps = load_workflow(workflow)["jobs"][job]["steps"]
    [script] = [s["run"] for s in steps if s.get("name") == name]
    assert "${{" not in script, "a script takes expressions through env:, never inline"
    return str(script)


def action_step(name: str) -> str:
    """The `run:` script of the step called ``name`` in the composite action."""
    steps = yaml.safe_load(ACTION.read_text(encoding="utf-8"))["runs"]["steps"]
    [script] = [s["run"] for s in steps if s.get("name") == name]
    assert "${{" not in script, "a script takes expressions through env:, never inline"
    return str(script)


def action_use(workflow: Path, job: str, name: str) -> tuple[str, dict[str, str]]:
    """The action's command script run by the step ``name`` of ``job``, with the environment
    its `with:` inputs (and the inputs' defaults) give that script, as the runner gives it."""
    steps = load_workflow(workflow)["jobs"][job]["steps"]
    [step] = [s for s in steps if s.get("name") == name]
    assert "/exchange-reconciler@" in step["uses"], f"{name} does not use the action"
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    given = {k: str(v) for k, v in step.get("with", {}).items()}
    values = {k: given.get(k, str(v.get("default", ""))) for k, v in action["inputs"].items()}
    [run] = [s for s in action["runs"]["steps"] if s["name"] == "Run the reconciler"]
    env = {var: values[ref.removeprefix("${{ inputs.").removesuffix(" }}")]
           for var, ref in run["env"].items()}
    return action_step("Run the reconciler"), env


def venv_env() -> dict[str, str]:
    """The environment with this venv's reconciler and python first on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path}


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a step's script as GitHub's runner does (bash -eo pipefail)."""
    outputs = cwd.parent / f"{cwd.name}-step-files"
    outputs.mkdir(exist_ok=True)
    full = {**{k: v for k, v in venv_env().items() if k != "GITHUB_ACTIONS"},
            "GITHUB_OUTPUT": str(outputs / "output"),
            "GITHUB_STEP_SUMMARY": str(outputs / "summary"),
            **env}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=cwd, env=full, capture_output=True, text=True, timeout=600,
                          check=False)
