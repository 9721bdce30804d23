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
    monkeypatch.setattr("reconciler.live.sources.open_backend",
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
    assert not make_plan(repo.root).plan.has_changes
    state = json.loads((repo.root / ".reconciler/state/contoso.json").read_text())
    assert state["locations"]["support-london@contoso.com"] == "contoso/paris"
