"""The fast paths change nothing but time: the plan JSON is the same, byte for byte, as the one
the plain paths make (the emulator copying and checking every call, Python's own garbage
collection), on the example repository and on a generated one."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.emulator.snapshot_schema import load_snapshot
from reconciler.plan.planner import plan_desired


def reference_json(root: Path, live: Path) -> str:
    """The plan made the plain way: a checking, copying emulator per customer."""
    desired = load(root)
    result = plan_desired(desired, lambda state: Emulator(
        load_snapshot(live / f"{state.customer.id}.json")))
    return result.plan.to_json()


def cli_json(root: Path, live: Path, *extra: str) -> str:
    result = CliRunner().invoke(cli, ["plan", str(root), "--live", f"snapshot:{live}",
                                      "--format", "json", *extra])
    assert result.exit_code in (0, 2), result.output
    return result.stdout


@pytest.mark.parametrize("policy", ["freeze", "pause", "normal"])
def test_example_plan_is_byte_identical(example_copy: tuple[Path, Path], policy: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, live = example_copy
    monkeypatch.setenv("RECONCILER_GC", policy)
    expected = reference_json(root, live)
    assert '"changes"' in expected and '"update"' in expected
    assert cli_json(root, live) == expected


@pytest.mark.parametrize("policy", ["freeze", "pause"])
def test_generated_plan_is_byte_identical(generated_copy: tuple[Path, Path], policy: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root, live = generated_copy
    monkeypatch.setenv("RECONCILER_GC", policy)
    expected = reference_json(root, live)
    assert expected.count('"action": "update"') == 8  # the 2% drift
    assert cli_json(root, live) == expected
