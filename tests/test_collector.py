"""The garbage collection policy of a command (reconciler.collector): paused while a plan is
built, running again for the phases that may last long, restored when the command ends."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler import collector
from reconciler.apply import runner
from reconciler.cli import cli

EXAMPLE = Path(__file__).parents[1] / "examples" / "desired-state"


@pytest.fixture(autouse=True)
def collector_on() -> None:
    assert gc.isenabled()


def test_pause_is_the_default_and_ends_with_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(collector.VARIABLE, raising=False)
    with collector.whole_run():
        assert not gc.isenabled()
        with collector.resumed():
            assert gc.isenabled()
            assert gc.get_freeze_count() > 0  # what was built is not rescanned
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.parametrize("policy", ["freeze", "normal"])
def test_other_policies_keep_the_collector_running(policy: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(collector.VARIABLE, policy)
    with collector.whole_run():
        assert gc.isenabled()
        collector.settled()
        assert (gc.get_freeze_count() > 0) == (policy == "freeze")
        with collector.resumed():
            assert gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_outside_a_command_nothing_changes() -> None:
    with collector.resumed():
        assert gc.isenabled()
    collector.settled()
    assert gc.get_freeze_count() == 0


def test_apply_carries_out_its_operations_with_the_collector_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(collector.VARIABLE, raising=False)
    repo = tmp_path / "desired-state"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".reconciler"))
    seen: list[bool] = []
    original = runner.Executor.run

    def spy(self: runner.Executor, changes: list) -> list:
        seen.append(gc.isenabled())
        return original(self, changes)

    monkeypatch.setattr(runner.Executor, "run", spy)
    cli_runner = CliRunner()
    assert cli_runner.invoke(cli, ["sandbox", "reset", str(repo)]).exit_code == 0
    planned: list[bool] = []
    from reconciler.plan import planner

    original_diff = planner.diff_customer

    def diff_spy(*args: object, **kwargs: object) -> object:
        planned.append(gc.isenabled())
        return original_diff(*args, **kwargs)

    monkeypatch.setattr(planner, "diff_customer", diff_spy)
    result = cli_runner.invoke(cli, ["apply", str(repo), "--auto-approve"])
    assert result.exit_code == 0, result.output
    assert seen and all(seen)  # carried out with the collector on
    assert planned and not any(planned)  # planned with it paused
    assert gc.isenabled()


def test_a_served_sandbox_runs_with_the_collector_on(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.cli import sandbox_serve_cmd
    from reconciler.emulator import service as served

    monkeypatch.delenv(collector.VARIABLE, raising=False)
    seen: list[bool] = []

    class Stopped:
        def wait(self) -> None:
            seen.append(gc.isenabled())
            raise KeyboardInterrupt  # Ctrl+C

    class Service:
        url = "https://127.0.0.1:1"
        stopped = False

        def start(self, **_: object) -> None:
            pass

        def stop(self) -> None:
            Service.stopped = True

    monkeypatch.setattr(sandbox_serve_cmd.threading, "Event", Stopped)
    monkeypatch.setattr(served, "self_signed_tls", lambda _: (None, tmp_path / "ca.pem"))
    with collector.whole_run():
        assert not gc.isenabled()
        sandbox_serve_cmd._run(Service(), [], 0, tmp_path / "sandbox", True)
        assert not gc.isenabled()
    assert seen == [True] and Service.stopped
