"""The README's main job, end to end on a copy of the example repository: reset the sandbox,
plan, apply, plan again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
from click.testing import CliRunner

from reconciler.cli import cli

EXAMPLE = Path(__file__).parents[1] / "examples" / "desired-state"
PLAN_SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "plan.schema.json").read_text())


def _plan(runner: CliRunner, repo: Path) -> dict:
    result = runner.invoke(cli, ["plan", str(repo), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_plan_apply_plan_against_the_sandbox(tmp_path: Path) -> None:
    repo = tmp_path / "desired-state"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".reconciler"))
    runner = CliRunner()
    assert runner.invoke(cli, ["sandbox", "reset", str(repo)]).exit_code == 0

    first = _plan(runner, repo)
    jsonschema.validate(first, PLAN_SCHEMA)
    summary = first["summary"]
    # The seeds give a newcomer every kind of change.
    assert summary["create"] >= 1 and summary["update"] >= 1 and summary["move"] == 1
    assert summary["delete"] >= 1 and summary["unmanaged"] >= 1

    applied = runner.invoke(cli, ["apply", str(repo), "--auto-approve"])
    assert applied.exit_code == 0, applied.output

    second = _plan(runner, repo)
    assert {c["action"] for c in second["changes"]} == {"unmanaged"}
    text = runner.invoke(cli, ["plan", str(repo), "--detailed-exitcode"])
    assert text.exit_code == 0 and text.stdout.startswith("No changes.")

    # Resetting the simulated tenant forgets what was applied to it: the move is back.
    assert runner.invoke(cli, ["sandbox", "reset", str(repo)]).exit_code == 0
    assert _plan(runner, repo)["summary"] == summary
