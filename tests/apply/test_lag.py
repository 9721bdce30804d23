"""Exchange's read-after-write lag: verification reports writes it cannot see yet, and a plan
made inside the pending window shows them as pending propagation instead of planning them
again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.apply.executor import ExecutionOptions
from reconciler.apply.runner import ApplyOptions, apply_plan
from reconciler.cli.apply_cmd import render_report
from reconciler.desired import load
from reconciler.plan.planner import make_plan
from tests.apply.conftest import LONDON, Repo
from tests.apply.test_apply import TEAM


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


@pytest.fixture
def lagging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: list[float]) -> Repo:
    repo = Repo(tmp_path / "repo", lag_seconds=60, clock=lambda: clock[0])
    repo.write()
    monkeypatch.setattr("reconciler.sources.backends.open_backend",
                        lambda source, customer, root: repo.backend)
    return repo


def test_verification_reports_not_yet_visible_and_next_plan_marks_pending(
        lagging: Repo, clock: list[float], cli):
    lagging.yaml(LONDON, TEAM)
    plan = make_plan(lagging.root).plan
    sleeps: list[float] = []
    options = ApplyOptions(execution=ExecutionOptions(sleep=sleeps.append), verify_attempts=2,
                           verify_delay=2.0, sleep=sleeps.append)
    report = apply_plan(plan, load(lagging.root), lagging.backend_for, root=lagging.root,
                        options=options)
    assert report.ok
    assert sleeps == [2.0, 4.0]  # read back twice more with backoff, then gave up waiting
    lagging_ops = {r.ref.op.cmdlet for r in report.not_visible}
    assert "New-Mailbox" in lagging_ops and "New-DistributionGroup" in lagging_ops
    text = render_report(report)
    assert "Applied, not yet visible" in text
    assert "contoso/london/shared_mailbox/team-a@contoso.com: New-Mailbox" in text

    state = json.loads((lagging.root / ".reconciler/state/contoso.json").read_text())
    assert {p["cmdlet"] for p in state["pending"]} == lagging_ops
    assert all("parameters" not in p for p in state["pending"])  # fingerprints only

    writes = lagging.backend.write_count
    run = cli("plan", lagging.root, "--detailed-exitcode")
    assert run.code == 0, run.out
    assert "No changes." in run.out
    assert "team-a@contoso.com: pending propagation" in run.out
    # Applying now does nothing again.
    again = cli("apply", lagging.root, "--auto-approve")
    assert again.code == 0 and lagging.backend.write_count == writes

    clock[0] += 61  # Exchange catches up
    caught_up = cli("plan", lagging.root, "--detailed-exitcode")
    assert caught_up.code == 0 and "pending propagation" not in caught_up.out


def test_pending_window_is_bounded(lagging: Repo, monkeypatch: pytest.MonkeyPatch):
    lagging.yaml(LONDON, TEAM)
    plan = make_plan(lagging.root).plan
    options = ApplyOptions(execution=ExecutionOptions(sleep=lambda s: None), verify_attempts=0)
    apply_plan(plan, load(lagging.root), lagging.backend_for, root=lagging.root,
               options=options)
    assert not make_plan(lagging.root).plan.has_changes
    # A write still not visible after the window is drift again: it is planned normally.
    monkeypatch.setenv("RECONCILER_PENDING_MINUTES", "0")
    replanned = make_plan(lagging.root).plan
    assert replanned.has_changes
    assert not any("pending propagation" in w for w in replanned.warnings)


def test_move_is_remembered_so_the_next_plan_shows_none(repo: Repo, cli):
    repo.yaml("sites/paris/mailboxes.yaml", """\
        shared_mailboxes:
          - name: Support London
            alias: support-london
        """)
    plan = make_plan(repo.root).plan
    assert [c.action for c in plan.actionable] == ["move"]
    run = cli("apply", repo.root, "--auto-approve")
    assert run.code == 0, run.out + run.err
    assert repo.backend.write_count == 0  # a move has no Exchange call
    # Apply says what it did, though Exchange was not called.
    assert "Apply complete: 0 succeeded, 0 failed, 0 skipped; 1 move recorded." in run.out
    assert ("Moved (no Exchange call; the new location is recorded for the next plan):\n"
            "  contoso/paris/shared_mailbox/support-london@contoso.com: from contoso / london"
            ) in run.out
    assert not make_plan(repo.root).plan.has_changes
    state = json.loads((repo.root / ".reconciler/state/contoso.json").read_text())
    assert state["locations"]["support-london@contoso.com"] == "contoso/paris"


@pytest.fixture
def slow_to_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: list[float]) -> Repo:
    """A tenant where a new object is not found, by reads or writes, for 20 s after its
    creation, on a clock that moves only when apply waits."""
    repo = Repo(tmp_path / "repo", lag_seconds=20, clock=lambda: clock[0],
                lag_applies_to_writes=True)
    repo.write()
    monkeypatch.setattr("reconciler.sources.backends.open_backend",
                        lambda source, customer, root: repo.backend)
    return repo


def _waits_move_the_clock(monkeypatch: pytest.MonkeyPatch, clock: list[float]) -> list[float]:
    waits: list[float] = []

    def pause(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds
    monkeypatch.setattr("reconciler.apply.executor.pause", pause)
    return waits


def test_writes_right_after_a_create_wait_out_not_found(
        cli, slow_to_show: Repo, clock: list[float], monkeypatch: pytest.MonkeyPatch):
    slow_to_show.yaml(LONDON, TEAM)
    waits = _waits_move_the_clock(monkeypatch, clock)
    run = cli("apply", slow_to_show.root, "--auto-approve", "--verify-wait", "60")
    assert run.code == 0, run.out + run.err
    assert "Apply complete" in run.out and "0 failed, 0 skipped" in run.out
    assert waits and sum(waits) < 120  # waited, within bounds
    # Each mailbox was created once; only writes refused as "not found" (which did nothing)
    # were sent again, a group's create naming the new mailbox as a member among them.
    creates = [k for k in slow_to_show.backend.writes if k.startswith("New-Mailbox")]
    assert len(creates) == 2 and all(slow_to_show.backend.writes[k] == 1 for k in creates)
    clock[0] += 60
    assert "No changes." in cli("plan", slow_to_show.root).out


def test_not_found_after_a_create_is_waited_out_only_within_verify_wait(
        cli, slow_to_show: Repo, clock: list[float], monkeypatch: pytest.MonkeyPatch):
    slow_to_show.yaml(LONDON, TEAM)
    _waits_move_the_clock(monkeypatch, clock)
    run = cli("apply", slow_to_show.root, "--auto-approve", "--verify-wait", "5")
    assert run.code == 1
    assert "still not found 5 s after it was created in this run" in run.out
    assert "--verify-wait allows longer" in run.out
