"""Exactly once: idempotency answers, ambiguous writes settled by reading back, throttling,
a crash mid-apply resumed from the journal, and dependency order under parallelism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.apply.executor import ExecutionOptions, build_graph
from reconciler.apply.runner import ApplyOptions, ApplyReport, apply_plan
from reconciler.cli.apply_cmd import render_report
from reconciler.desired import load
from reconciler.live.backend import AmbiguousWriteError, Throttled, TransientError
from reconciler.plan.plan import Plan
from reconciler.plan.planner import make_plan
from tests.apply.conftest import LONDON, Repo, key
from tests.apply.test_apply import TEAM


class Crash(BaseException):
    """The process dying mid-call: nothing in apply may catch it."""


def _apply(repo: Repo, plan: Plan, sleeps: list[float] | None = None) -> ApplyReport:
    sleeps = sleeps if sleeps is not None else []
    options = ApplyOptions(execution=ExecutionOptions(sleep=sleeps.append), verify_attempts=0,
                           sleep=sleeps.append)
    return apply_plan(plan, load(repo.root), repo.backend_for, root=repo.root, options=options)


def _detail(report: ApplyReport, cmdlet: str, naming: str = "") -> str:
    return next(r.detail for r in report.succeeded
                if r.ref.op.cmdlet == cmdlet and naming in r.ref.describe())


def test_already_present_and_not_present_count_as_done(repo: Repo):
    repo.yaml(LONDON, """\
        distribution_groups:
          - name: London All
            alias: london-all
            owners: [alice@contoso.com]
            members: [alice@contoso.com, carol@contoso.com]
        """)
    plan = make_plan(repo.root).plan
    cmdlets = [op.cmdlet for c in plan.actionable for op in c.operations]
    assert sorted(cmdlets) == ["Add-DistributionGroupMember", "Remove-DistributionGroupMember"]
    # Someone makes the same change by hand between plan and apply.
    repo.live("Add-DistributionGroupMember", Identity="london-all@contoso.com",
              Member="carol@contoso.com")
    repo.live("Remove-DistributionGroupMember", Identity="london-all@contoso.com",
              Member="bob@contoso.com")
    report = _apply(repo, plan)
    assert report.ok
    assert _detail(report, "Add-DistributionGroupMember") == "already present"
    assert _detail(report, "Remove-DistributionGroupMember") == "not present"
    assert "2 succeeded (2 already in place)" in render_report(report)
    assert "(already present)" in render_report(report)


@pytest.mark.parametrize("error", [AmbiguousWriteError, TransientError])
def test_ambiguous_write_that_committed_is_not_repeated(repo: Repo, error: type):
    repo.yaml(LONDON, TEAM)
    plan = make_plan(repo.root).plan
    for cmdlet, where in (("New-Mailbox", {"Name": "Team A"}),
                          ("Add-MailboxPermission", {"Identity": "team-a@contoso.com"}),
                          ("Add-DistributionGroupMember", {"Member": "team-a@contoso.com"})):
        repo.fail(cmdlet, lambda: error("connection dropped after the request was sent"),
                  after_commit=True, **where)
    report = _apply(repo, plan)
    assert report.ok, render_report(report)
    assert all(n == 1 for n in repo.backend.writes.values()), repo.backend.writes
    assert repo.backend.write_count == plan.operation_count
    for cmdlet in ("New-Mailbox", "Add-MailboxPermission", "Add-DistributionGroupMember"):
        assert "read back" in _detail(report, cmdlet, "team-a@contoso.com")
    assert not make_plan(repo.root).plan.has_changes


def test_ambiguous_write_that_did_not_commit_is_retried_once(repo: Repo):
    repo.yaml(LONDON, TEAM)
    plan = make_plan(repo.root).plan
    for cmdlet in ("New-Mailbox", "Add-RecipientPermission", "New-DistributionGroup"):
        repo.fail(cmdlet, lambda: AmbiguousWriteError("timed out"))
    sleeps: list[float] = []
    report = _apply(repo, plan, sleeps)
    assert report.ok, render_report(report)
    assert all(n == 1 for n in repo.backend.writes.values()), repo.backend.writes
    assert repo.backend.write_count == plan.operation_count
    # Each looked for its effect for the whole lag allowance before being sent again.
    assert sum(sleeps) >= 3 * ExecutionOptions().confirm_wait
    assert not make_plan(repo.root).plan.has_changes


def test_ambiguous_write_fails_after_bounded_attempts(repo: Repo):
    repo.yaml(LONDON, TEAM)
    plan = make_plan(repo.root).plan
    repo.fail("New-Mailbox", lambda: AmbiguousWriteError("timed out"), times=100,
              Name="Team A")
    report = _apply(repo, plan)
    failed = [r for r in report.failed]
    assert [r.ref.op.cmdlet for r in failed] == ["New-Mailbox"]
    assert "not committed after 4 attempts" in (failed[0].message or "")
    assert not any("Team A" in k for k in repo.backend.writes)


def test_throttling_is_waited_out_not_counted_as_failure(repo: Repo):
    repo.yaml(LONDON, TEAM)
    plan = make_plan(repo.root).plan
    repo.fail("New-Mailbox", lambda: Throttled("Too many requests", retry_after=7.5), times=2,
              Name="Team A")
    sleeps: list[float] = []
    report = _apply(repo, plan, sleeps)
    assert report.ok
    assert sleeps == [7.5, 7.5]
    assert all(n == 1 for n in repo.backend.writes.values())


@pytest.mark.parametrize("after_commit", [False, True])
def test_crashed_apply_resumes_from_the_journal(cli, repo: Repo, tmp_path: Path,
                                                after_commit: bool):
    repo.concurrency = 1  # a deterministic point of death
    repo.yaml(LONDON, TEAM)
    out = tmp_path / "plan.json"
    assert cli("plan", repo.root, "--out", out).code == 0
    plan = json.loads(out.read_text())
    repo.fail("Add-MailboxPermission", Crash, after_commit=after_commit,
              Identity="team-a@contoso.com")
    with pytest.raises(Crash):
        cli("apply", out, "--path", repo.root)
    ran_before = dict(repo.backend.writes)
    journal = (repo.root / ".reconciler/journal/contoso.jsonl").read_text().splitlines()
    last = json.loads(journal[-1])
    assert last["event"] == "start" and last["cmdlet"] == "Add-MailboxPermission"

    # The same saved plan again: still current for what remains, so it is accepted.
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 0, run.out + run.err
    assert "done by an earlier run" in run.out
    planned = sum(len(c["operations"]) for c in plan["changes"])
    assert repo.backend.write_count == planned  # no operation twice, none lost
    assert all(n == 1 for n in repo.backend.writes.values()), repo.backend.writes
    # Operations finished before the crash were not sent again.
    assert all(repo.backend.writes[k] == 1 for k in ran_before)
    add = next(r for r in run.out.splitlines() if "Add-MailboxPermission team-a" in r)
    assert ("committed by an earlier run" in add) == after_commit
    assert "No changes." in cli("plan", repo.root).out


def test_creation_before_use_and_revoke_before_delete(repo: Repo):
    repo.customer_extra = ("  policy:\n    prune: true\n    protect: [old-room@contoso.com, "
          "ceo-office@contoso.com, accueil-paris@contoso.com, paris-all@contoso.com]\n")
    repo.live("Add-DistributionGroupMember", Identity="london-all@contoso.com",
              Member="old-projects@contoso.com")
    repo.live("Add-MailboxPermission", Identity="support-london@contoso.com",
              User="old-projects@contoso.com", AccessRights=["FullAccess"],
              InheritanceType="All")
    repo.yaml(LONDON, TEAM)
    repo.yaml("sites/london/support.yaml", """\
        shared_mailboxes:
          - name: Support London
            alias: support-london
            permissions: []
        """)
    plan = make_plan(repo.root).plan
    refs, preds = build_graph(plan.actionable)
    assert refs and preds
    assert any(c.action == "delete" and c.id == "old-projects@contoso.com" for c in plan.changes)
    report = _apply(repo, plan)
    assert report.ok, render_report(report)
    order = repo.backend.order
    new_team = order.index(next(k for k in order if k.startswith("New-Mailbox")))
    for k in order:
        if "team-a@contoso.com" in k and not k.startswith("New-Mailbox"):
            assert order.index(k) > new_team, k
    delete = order.index(key("Remove-Mailbox", {"Confirm": False,
                                                "Identity": "old-projects@contoso.com"}))
    revokes = [i for i, k in enumerate(order) if k.startswith("Remove-") and
               "old-projects@contoso.com" in k and i != delete]
    assert len(revokes) == 2 and max(revokes) < delete
    assert not make_plan(repo.root).plan.has_changes
