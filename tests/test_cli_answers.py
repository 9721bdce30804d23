"""Clear answers from any folder of a repository: the repository is found as git finds its
own, advice names commands that work from where they are printed, unknown customers get a
did-you-mean and exit 1, and -v/-vv work on either side of the subcommand."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli

EXAMPLE = Path(__file__).parents[1] / "examples" / "desired-state"
RECONCILER = [sys.executable, "-m", "reconciler"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "provider"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".reconciler"))
    return root


def test_every_command_finds_the_repository_from_a_site_folder(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = repo / "customers" / "contoso" / "sites" / "london"
    monkeypatch.chdir(site)
    runner = CliRunner()
    valid = runner.invoke(cli, ["validate"])
    assert valid.exit_code == 0, valid.output
    assert valid.stderr.startswith("../../../..: valid (2 customers")
    # The advice printed from the site folder is a command that works there.
    shown = runner.invoke(cli, ["sandbox", "show"])
    assert shown.exit_code == 1
    advice = shown.stderr.split("`")[1]
    assert advice == "reconciler sandbox init ../../../.."
    assert runner.invoke(cli, shlex.split(advice)[1:]).exit_code == 0
    assert runner.invoke(cli, ["sandbox", "show", "--customer", "contoso"]).exit_code == 0
    plan = runner.invoke(cli, ["plan", "--detailed-exitcode"])
    assert plan.exit_code == 2 and "Plan: 4 to add" in plan.stdout


def test_outside_any_repository_the_error_says_where_and_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["plan"])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: the current folder is not in a provider repository: neither it nor any folder "
        "above it holds customers/ or reconciler.yaml.")
    assert "reconciler init DIR" in result.stderr and ".:1:1" not in result.stderr


def test_unknown_customer_exits_1_with_did_you_mean(repo: Path) -> None:
    runner = CliRunner()
    reset = runner.invoke(cli, ["sandbox", "reset", str(repo), "--customer", "contso"])
    assert reset.exit_code == 1
    assert "no seed snapshot for customer 'contso' (did you mean 'contoso'?)" in reset.stderr
    nosuch = runner.invoke(cli, ["sandbox", "reset", str(repo), "--customer", "nosuch"])
    assert nosuch.exit_code == 1 and "seeded customers: contoso, fabrikam" in nosuch.stderr
    assert not (repo / ".reconciler" / "sandbox").exists()  # nothing was reset
    plan = runner.invoke(cli, ["plan", str(repo), "--customer", "fabrikan"])
    assert plan.exit_code == 1 and "(did you mean 'fabrikam'?)" in plan.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_either_side_of_the_subcommand_logs_reads_and_calls(
        repo: Path, where: str) -> None:
    subprocess.run([*RECONCILER, "sandbox", "reset", str(repo)], check=True,
                   capture_output=True)
    args = ["-v", "plan", str(repo)] if where == "before" else ["plan", str(repo), "-v"]
    done = subprocess.run([*RECONCILER, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "INFO reconciler.calls: sandbox contoso: Get-Mailbox: " in done.stderr
    assert "Get-MailboxPermission ceo-office@contoso.com: 3 objects" in done.stderr
    quiet = subprocess.run([*RECONCILER, "plan", str(repo)], capture_output=True, text=True)
    assert "INFO" not in quiet.stderr


def test_shell_completion_through_clicks_mechanism(tmp_path: Path) -> None:
    import os

    script = subprocess.run(RECONCILER, env={**os.environ, "_RECONCILER_COMPLETE": "bash_source"},
                            capture_output=True, text=True)
    assert script.returncode == 0 and "_reconciler_completion()" in script.stdout
    env = {**os.environ, "_RECONCILER_COMPLETE": "bash_complete",
           "COMP_WORDS": "reconciler pl", "COMP_CWORD": "1"}
    words = subprocess.run(RECONCILER, env=env, capture_output=True, text=True)
    assert "plain,plan" in words.stdout.splitlines()
    env.update(COMP_WORDS="reconciler plan --for", COMP_CWORD="2")
    options = subprocess.run(RECONCILER, env=env, capture_output=True, text=True)
    assert "plain,--format" in options.stdout.splitlines()
