"""The reusable action (action.yml): its scripts rehearsed as GitHub's runner runs them, with the
real reconciler for the commands, and a recording `python` for the install (building wheels
would need the network)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.gitops.conftest import EXAMPLE, action_step, run_step

RECORDER = """#!/bin/sh
echo "$*" >> "$CALLS"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "desired-state"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".reconciler"))
    return repo


def _run(repo: Path, command: str, customer: str = "", args: str = "", path: str = "."):
    return run_step(action_step("Run the reconciler"), repo,
                    {"COMMAND": command, "WORKDIR": path, "CUSTOMER": customer, "ARGS": args})


def test_validate_runs_in_the_folder_given(repo: Path) -> None:
    done = _run(repo.parent, "validate", path=repo.name)
    assert done.returncode == 0, done.stdout + done.stderr
    # Another folder is not a desired-state repository: the path input is really used.
    other = repo.parent / "elsewhere"
    other.mkdir()
    assert _run(other, "validate").returncode == 1


def test_plan_takes_the_customer_and_the_arguments(repo: Path) -> None:
    done = _run(repo, "plan", "fabrikam", "--live snapshot:snapshots/  --format json")
    assert done.returncode == 0, done.stdout + done.stderr
    plan = json.loads(done.stdout)
    assert plan["customers"] == ["fabrikam"]
    assert plan["changes"] and {c["address"].split("/")[0] for c in plan["changes"]} == \
        {"fabrikam"}
    unknown = _run(repo, "plan", "nosuch", "--live snapshot:snapshots/")
    assert unknown.returncode == 1 and "nosuch" in unknown.stderr


def test_arguments_are_words_never_shell(repo: Path) -> None:
    done = _run(repo, "plan", "fabrikam", "--live $(touch${IFS}pwned) ;touch${IFS}pwned2")
    assert done.returncode == 1
    assert not (repo / "pwned").exists() and not (repo / "pwned2").exists()


def test_only_the_four_commands_run(repo: Path) -> None:
    done = _run(repo, "sandbox", args="reset")
    assert done.returncode == 1
    assert "command must be install, validate, plan, apply or drift, not sandbox" in done.stdout


def _install(tmp_path: Path, digest: str):
    work = tmp_path / "job"
    (work / "wheels").mkdir(parents=True, exist_ok=True)
    (work / "wheels" / "exchange_reconciler-0-py3-none-any.whl").write_bytes(b"wheel")
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "python").write_text(RECORDER)
    (fake / "python").chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    done = run_step(action_step("Install the reconciler"), work,
                    {"PATH": f"{fake}:/usr/bin:/bin", "CALLS": str(calls),
                     "ACTION_PATH": "/the/action", "WHEELS": "wheels", "DIGEST": digest})
    return done, calls.read_text().splitlines(), work


def _digest() -> str:
    line = f"{hashlib.sha256(b'wheel').hexdigest()}  exchange_reconciler-0-py3-none-any.whl\n"
    return hashlib.sha256(line.encode()).hexdigest()


def test_without_a_digest_the_wheels_are_built_from_the_actions_own_checkout(
        tmp_path: Path) -> None:
    done, calls, work = _install(tmp_path, "")
    assert done.returncode == 0, done.stderr
    assert calls == ["-m pip wheel --quiet --wheel-dir wheels /the/action",
                     "-m pip install --quiet --no-index --find-links wheels exchange-reconciler"]
    output = (work.parent / "job-step-files" / "output").read_text()
    assert output == f"digest={_digest()}\n"


def test_with_the_digest_only_those_wheels_are_installed(tmp_path: Path) -> None:
    done, calls, _ = _install(tmp_path, _digest())
    assert done.returncode == 0, done.stderr
    # Nothing is built and no index is asked: a job holding a key runs only checked code.
    assert calls == ["-m pip install --quiet --no-index --find-links wheels exchange-reconciler"]


def test_other_wheels_are_refused_and_nothing_is_installed(tmp_path: Path) -> None:
    done, calls, _ = _install(tmp_path, "0" * 64)
    assert done.returncode == 1
    assert calls == []
    assert "differ from those the job without a key built; nothing was installed" in done.stdout
