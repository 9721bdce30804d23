"""A rehearsal of the templates' own scripts, with the real reconciler, on a copy of the example
repository: a pull request from a fork is planned against the committed snapshot, merged, and
its reviewed plan is applied to the sandbox tenant only while a fresh plan still equals it.

The steps run as GitHub's runner runs them (bash -eo pipefail, inputs through environment
variables); GitHub's own parts (checkout, artifacts, the API) are played by the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.gitops.conftest import (
    CONTEXT,
    EXAMPLE,
    TEMPLATES,
    action_use,
    run_github_script,
    run_step,
    script_of,
    step_script,
    venv_env,
)

NEW_MAILBOX = """\
  - name: Einkauf Berlin
    alias: einkauf-berlin
    permissions:
      - {user: greta@fabrikam.de, access: [FullAccess]}
"""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t",
                           "-c", "init.defaultBranch=main", *args], cwd=repo,
                          capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example repository on main, with a snapshot equal to the sandbox's live state."""
    repo = tmp_path / "desired-state"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".reconciler"))
    # The premise of a fork's plan: the committed snapshot is what the tenant holds.
    shutil.rmtree(repo / "snapshots")
    shutil.copytree(repo / "sandbox", repo / "snapshots")
    _git(repo, "init", "--quiet")
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "base")
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    return repo


def _open_pull_request(repo: Path) -> None:
    berlin = repo / "customers/fabrikam/sites/berlin/mailboxes.yaml"
    berlin.write_text(berlin.read_text().replace("\ndistribution_groups:",
                                                 NEW_MAILBOX + "\ndistribution_groups:"))
    _git(repo, "commit", "--quiet", "-am", "Einkauf Berlin")


def _plan_on_the_pull_request(repo: Path) -> subprocess.CompletedProcess[str]:
    return run_step(step_script(TEMPLATES / "plan.yml", "plan", "Plan"), repo,
                    {"CUSTOMER": "fabrikam", "BASE_REF": "main", "EXO_CERTIFICATE_KEY": ""})


def _apply(repo: Path, before: str) -> subprocess.CompletedProcess[str]:
    return run_step(step_script(TEMPLATES / "apply.yml", "apply", "Check and apply"), repo,
                    {"CUSTOMER": "fabrikam", "BEFORE": before, "LARGE": "",
                     "EXO_CERTIFICATE_KEY": "", "GITHUB_SHA": _git(repo, "rev-parse", "HEAD")})


def test_a_forks_pull_request_is_planned_against_the_snapshot(repo: Path) -> None:
    _open_pull_request(repo)
    done = _plan_on_the_pull_request(repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "planning against snapshots/fabrikam.json" in done.stdout
    assert (repo / "plan/exit-code").read_text().strip() == "0"
    plan = json.loads((repo / "plan/plan.json").read_text())
    # Only what the pull request changed, not everything pending in the example.
    assert [c["address"] for c in plan["changes"]] == [
        "fabrikam/berlin/shared_mailbox/einkauf-berlin@fabrikam.de"]
    assert "einkauf-berlin@fabrikam.de" in (repo / "plan/plan.md").read_text()


def test_the_reviewed_plan_is_applied_once_and_only_while_it_is_current(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    _open_pull_request(repo)
    assert _plan_on_the_pull_request(repo).returncode == 0
    # Merged: the reviewed plan is the pull request's artifact.
    shutil.copytree(repo / "plan", repo / "reviewed")

    done = _apply(repo, base)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo / "applied/commit").read_text().strip() == _git(repo, "rev-parse", "HEAD")
    shown = subprocess.run(["reconciler", "plan", "--customer", "fabrikam",
                            "--changed-since", base, "--detailed-exitcode"], cwd=repo,
                           capture_output=True, text=True, timeout=300, check=False,
                           env=venv_env())
    assert shown.returncode == 0, shown.stdout  # the sandbox now holds the new mailbox

    # The same reviewed plan again (a re-run): live state has moved, so nothing is applied.
    (repo / "applied/commit").unlink()
    again = _apply(repo, base)
    assert again.returncode == 1
    assert "differs from the reviewed plan" in again.stdout
    assert not (repo / "applied/commit").exists()


def test_changes_without_a_reviewed_plan_are_not_applied(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    _open_pull_request(repo)
    done = _apply(repo, base)
    assert done.returncode == 1
    assert "no reviewed plan; nothing was applied" in done.stdout
    # A push that changes nothing for this customer succeeds (and its tag moves)...
    head = _git(repo, "rev-parse", "HEAD")
    assert _apply(repo, head).returncode == 0
    # ...but not while an earlier change was never applied: the plan starts from the tag.
    _git(repo, "tag", "reconciler/applied/fabrikam", base)
    behind = _apply(repo, head)
    assert behind.returncode == 1 and "no reviewed plan" in behind.stdout



def test_drift_opens_an_issue_for_the_customer(repo: Path) -> None:
    drift = TEMPLATES / "drift.yml"
    done = run_step(step_script(drift, "drift", "Drift"), repo,
                    {"CUSTOMER": "fabrikam", "EXO_CERTIFICATE_KEY": ""})
    assert done.returncode == 0, done.stderr
    # The example's sandbox differs from its YAML: drift, which is not a failure of the job.
    assert (repo / "drift/exit-code").read_text().strip() == "2"
    gate = step_script(drift, "drift", "Fail on error (exit 1); drift itself (exit 2) is "
                                        "reported in an issue")
    assert run_step(gate, repo, {}).returncode == 0
    result = run_github_script(script_of(drift, "issue"), repo, env={"CUSTOMER": "fabrikam"},
                               context=CONTEXT)
    [call] = result["calls"]
    assert call["name"] == "create" and call["params"]["labels"] == ["drift:fabrikam"]
    assert "### Drift report" in call["params"]["body"]


def test_the_pull_requests_checks_and_customer_list(repo: Path) -> None:
    plan = TEMPLATES / "plan.yml"
    env = {"GITHUB_ACTIONS": "true"}
    # Validate runs through the reusable action (its command step, with the step's inputs).
    script, inputs = action_use(plan, "validate", "Validate")
    assert inputs["COMMAND"] == "validate"
    done = run_step(script, repo, {**env, **inputs})
    assert done.returncode == 0, f"Validate: {done.stdout}{done.stderr}"
    for name in ("CODEOWNERS is up to date", "List the customers"):
        done = run_step(step_script(plan, "validate", name), repo, env)
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    output = (repo.parent / f"{repo.name}-step-files" / "output").read_text()
    assert output == 'customers=["contoso", "fabrikam"]\n'

    # A mistake is an annotation on the pull request's diff and fails the check.
    site = repo / "customers/contoso/sites/paris/site.yaml"
    site.write_text(site.read_text().replace("  name: Paris\n", "  name: Paris\n  colour: x\n"))
    done = run_step(script, repo, {**env, **inputs})
    assert done.returncode == 1
    assert "::error file=customers/contoso/sites/paris/site.yaml,line=5,col=3::" in done.stdout


def test_the_committed_snapshots_serve_a_plan_of_every_customer() -> None:
    # What a fork's pull request plans against: one valid snapshot per customer.
    done = subprocess.run(["reconciler", "plan", str(EXAMPLE), "--live",
                           f"snapshot:{EXAMPLE / 'snapshots'}", "--format", "json",
                           "--allow-large-changes"], capture_output=True, text=True,
                          timeout=300, check=False, env=venv_env())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["customers"] == ["contoso", "fabrikam"]


def test_the_key_reaches_the_variable_the_customer_names_and_nothing_else(
        repo: Path, tmp_path: Path) -> None:
    # A stand-in in front of the real reconciler notes which variables hold the key.
    real = shutil.which("reconciler", path=venv_env()["PATH"])
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "reconciler").write_text(
        "#!/bin/sh\n"
        f'env | cut -d= -f1 | sort > "{tmp_path}/variables"\n'
        f'exec "{real}" "$@"\n')
    (spy / "reconciler").chmod(0o755)
    key = "-----BEGIN PRIVATE KEY-----not-a-real-key"
    done = run_step(step_script(TEMPLATES / "plan.yml", "plan", "Plan"), repo,
                    {"CUSTOMER": "contoso", "BASE_REF": "main", "EXO_CERTIFICATE_KEY": key,
                     "PATH": f"{spy}:{venv_env()['PATH']}"})
    assert done.returncode == 0, done.stdout + done.stderr
    variables = (tmp_path / "variables").read_text().split()
    # contoso's customer.yaml says certificate_key: env:CONTOSO_EXO_KEY.
    assert "CONTOSO_EXO_KEY" in variables and "EXO_CERTIFICATE_KEY" not in variables
    assert "snapshots" not in done.stdout  # with a key, the live tenant is read
    kept = [done.stdout, done.stderr, *(p.read_text() for p in (repo / "plan").iterdir())]
    assert not any("not-a-real-key" in text for text in kept)


def test_the_templates_ask_the_reconciler_for_the_key_variable() -> None:
    # Each job that signs in learns the variable from the customer's own certificate_key.
    calls = 0
    for path in TEMPLATES.glob("*.yml"):
        text = path.read_text()
        assert "<<'PY'" not in text, path
        calls += text.count('key_var=$(reconciler customers --key-variable "$CUSTOMER")')
    assert calls == 4  # plan, review, apply, drift
