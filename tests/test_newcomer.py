"""A newcomer's first day, as a script: `reconciler init` a repository in a new folder,
validate it from a subfolder, plan against the sandbox, apply, plan "No changes.", then each
way a first hour goes wrong, asserting the answer the newcomer gets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.desired import SCHEMA_DIR

RECONCILER = [sys.executable, "-m", "reconciler"]
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.M)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=n@example.com", "-c", "user.name=n", *args],
                   cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    root = tmp_path / "provider"
    made = CliRunner().invoke(cli, ["init", str(root)])
    assert made.exit_code == 0, made.output
    assert "Next, in that folder: reconciler validate" in made.stdout
    return root


def test_first_day_init_validate_plan_apply_no_changes(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(repo / "customers" / "example" / "sites" / "hq")
    valid = runner.invoke(cli, ["validate"])
    assert valid.exit_code == 0
    assert valid.stderr == "../../../..: valid (1 customer, 3 resources).\n"
    assert runner.invoke(cli, ["sandbox", "reset"]).exit_code == 0
    plan = runner.invoke(cli, ["plan", "--detailed-exitcode"])
    assert plan.exit_code == 2, plan.output
    assert plan.stdout.startswith("Symbols:\n  + create\n")
    assert ("  + shared_mailbox support@example.com  will be created  "
            "[customers/example/sites/hq/mailboxes.yaml:8]") in plan.stdout
    assert "      +   alice@example.com: access FullAccess, SendAs\n" in plan.stdout
    assert "      3 Exchange calls:\n" in plan.stdout
    assert plan.stdout.rstrip().endswith("Plan: 1 to add, 0 to change, 0 to destroy, 0 to move; "
                                         "1 unmanaged.")
    applied = runner.invoke(cli, ["apply", "--auto-approve"])
    assert applied.exit_code == 0, applied.output
    again = runner.invoke(cli, ["plan", "--detailed-exitcode"])
    assert again.exit_code == 0
    assert again.stdout.startswith("No changes. The live mailboxes match the desired state.\n")
    assert "Plan:" not in again.stdout  # nothing after "No changes." but what helps
    assert "? example / customer level: shared_mailbox info@example.com" in again.stdout


def test_the_scaffold_is_a_repository_to_keep(repo: Path) -> None:
    # Every modeline points at a schema the repository holds, the same one the editor
    # settings map, and `schemas --write` refreshes them.
    for yaml_file in repo.rglob("*.yaml"):
        for target in MODELINE.findall(yaml_file.read_text()):
            assert (yaml_file.parent / target).resolve().is_file(), (yaml_file, target)
    settings = (repo / ".vscode" / "settings.json").read_text()
    for name in ("customer", "site", "reconciler", "resources"):
        assert f"./schemas/{name}.schema.json" in settings
    (repo / "schemas" / "site.schema.json").unlink()
    assert CliRunner().invoke(cli, ["schemas", "--write", str(repo)]).exit_code == 0
    assert (repo / "schemas" / "site.schema.json").read_bytes() == (
        SCHEMA_DIR / "site.schema.json").read_bytes()
    assert {p.name for p in (repo / ".github" / "workflows").iterdir()} == {
        "plan.yml", "apply.yml", "drift.yml"}
    assert "reconciler-validate" in (repo / ".pre-commit-config.yaml").read_text()
    assert CliRunner().invoke(cli, ["codeowners", str(repo), "--check"]).exit_code == 0
    _git(repo, "init", "-q")
    for ignored in (".reconciler/sandbox/example.json", "plan.json", "plan/plan.json"):
        assert subprocess.run(["git", "check-ignore", "-q", ignored], cwd=repo).returncode == 0
    again = CliRunner().invoke(cli, ["init", str(repo)])
    assert again.exit_code == 1 and "is not empty" in again.stderr


def test_first_hour_errors_are_clear_answers(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    runner = CliRunner()
    monkeypatch.chdir(repo)
    assert runner.invoke(cli, ["sandbox", "reset"]).exit_code == 0
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")

    bad_ref = runner.invoke(cli, ["plan", "--changed-since", "nosuchref"])
    assert bad_ref.exit_code == 1
    assert bad_ref.stderr.startswith(
        "error: --changed-since nosuchref: git knows no commit named 'nosuchref'")
    assert "unknown error" not in bad_ref.stderr

    nothing = runner.invoke(cli, ["plan", "--changed-since", "HEAD"])
    assert nothing.exit_code == 0
    assert nothing.stdout.startswith("No changes. No YAML changed since HEAD")
    assert "match the desired state" not in nothing.stdout

    unknown = runner.invoke(cli, ["sandbox", "reset", "--customer", "exampel"])
    assert unknown.exit_code == 1
    assert "no seed snapshot for customer 'exampel' (did you mean 'example'?)" in unknown.stderr

    verbose = subprocess.run([*RECONCILER, "plan", "-v"], cwd=repo, capture_output=True,
                             text=True)
    assert verbose.returncode == 0
    assert "INFO reconciler.calls: sandbox example: Get-Mailbox: 4 objects" in verbose.stderr

    mailboxes = repo / "customers" / "example" / "sites" / "hq" / "mailboxes.yaml"
    mailboxes.write_text(mailboxes.read_text() + (
        "  - name: Sales\n    template: nosuch\n    permissions:\n"
        "      - {user: alice.example.com, access: [FullAccess]}\n"
        "      - {user: bob@example, access: [SendAs]}\n"
        "      - {user: aliec@example.com, access: [SendAs]}\n"))
    monkeypatch.chdir(repo / "customers")
    invalid = runner.invoke(cli, ["validate"])
    assert invalid.exit_code == 1
    where = "example/sites/hq/mailboxes.yaml"  # relative to the current folder
    assert invalid.stderr.splitlines() == [
        f"{where}:31:9: warning: the grantee aliec@example.com is declared nowhere in this "
        "repository; did you mean alice@example.com? (plan checks that it exists in the tenant)",
        f"{where}:27:15: error: unknown template 'nosuch'; known templates: leaver",
        f"{where}:29:9: error: the grantee 'alice.example.com' is not an email address "
        "(name@domain.tld); did you mean alice@example.com?",
        f"{where}:30:9: error: the grantee 'bob@example' is not an email address "
        "(name@domain.tld); did you mean bob@example.com?",
        "3 problems found in ..."]

    monkeypatch.chdir(tmp_path)
    outside = runner.invoke(cli, ["validate"])
    assert outside.exit_code == 1
    assert "the current folder is not in a provider repository" in outside.stderr
    assert "reconciler init DIR" in outside.stderr
