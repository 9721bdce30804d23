"""Outcomes classified by proof, not by wording: a create refused because its address is taken
counts as done only when the object at the address is the one the plan creates; a write answered
"not found" is a failure unless it is a removal."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.executor import ExecutionOptions
from reconciler.apply.runner import ApplyOptions, apply_plan
from reconciler.cli.apply_cmd import render_report
from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.emulator.faults import ErrorShape, Fault, FaultKind
from reconciler.live.backend import AmbiguousWriteError, CmdletResult, NotFound
from reconciler.live.exchange import ExchangeBackend, ExchangeSettings
from reconciler.plan.planner import make_plan, plan_desired
from tests.apply.conftest import BASE_SNAPSHOT, LONDON, FaultyBackend, Repo
from tests.apply.test_exactly_once import _apply
from tests.exchange.conftest import FAST_RETRY, AppCertificate, Pki, serve_customer

SALES = """\
    shared_mailboxes:
      - name: Sales London
        alias: sales-london
        forwarding: {external: orders@partner.example, deliver_to_mailbox: true}
        permissions:
          - {user: alice@contoso.com, access: [SendAs]}
    """
ADDRESS = "sales-london@contoso.com"


def _tenant(repo: Repo, snapshot: dict[str, Any], **kw: Any) -> None:
    repo.backend = FaultyBackend(Emulator(snapshot, **kw))


def _holding(address: str, holder: str) -> dict[str, Any]:
    """The test tenant with ``holder`` carrying ``address`` as an smtp: secondary address."""
    snapshot = copy.deepcopy(BASE_SNAPSHOT)
    for row in snapshot["recipients"] + snapshot["mailboxes"]:
        if row.get("PrimarySmtpAddress") == holder:
            row["EmailAddresses"] = [f"SMTP:{holder}", f"smtp:{address}"]
    return snapshot


def _mailbox(repo: Repo, address: str) -> dict[str, Any]:
    return repo.backend.emulator.invoke("Get-Mailbox", {"Identity": address}).value[0]


def _send_as(repo: Repo, address: str) -> list[str]:
    rows = repo.backend.emulator.invoke("Get-RecipientPermission", {"Identity": address}).value
    return sorted(str(r["Trustee"]) for r in rows if r["Trustee"] != "NT AUTHORITY\\SELF")


@dataclass
class _TakenBeforeCreate(FaultyBackend):
    """The tenant changes between the plan and the create: just before New-Mailbox reaches
    it, ``take`` gives the address to someone else. The planner, which refuses an address it
    sees held, could not have seen this; apply's own proof is what stands."""

    take: Callable[[Emulator], Emulator] | None = None

    def invoke(self, cmdlet: str, parameters: Any = None, select: Any = None) -> CmdletResult:
        if cmdlet == "New-Mailbox" and self.take is not None:
            self.emulator, self.take = self.take(self.emulator), None
        return super().invoke(cmdlet, parameters, select)


def _taken_before_create(repo: Repo, take: Callable[[Emulator], Emulator]) -> None:
    repo.backend = _TakenBeforeCreate(repo.backend.emulator, take=take)


def _soft_deleted_sales(em: Emulator) -> Emulator:
    em.invoke("New-Mailbox", {"Shared": True, "Name": "Old Sales", "Alias": "sales-london",
                              "PrimarySmtpAddress": ADDRESS})
    em.invoke("Remove-Mailbox", {"Identity": ADDRESS})
    return em


def test_an_address_held_as_someone_elses_secondary_is_not_already_present(cli, repo: Repo):
    holder = Emulator(_holding(ADDRESS, "bob@contoso.com"))
    before = holder.invoke("Get-Mailbox", {"Identity": "bob@contoso.com"}).value[0]
    _taken_before_create(repo, lambda em: holder)
    repo.yaml(LONDON, SALES)
    run = cli("apply", repo.root, "--auto-approve")
    assert run.code == 1, run.out
    # The create failed, naming the holder; what depends on it did not run.
    assert f"{ADDRESS} is a secondary address of bob@contoso.com" in run.out
    assert [k.split()[0] for k in repo.backend.writes] == ["New-Mailbox"]
    assert "Skipped" in run.out and "Set-Mailbox" in run.out.split("Skipped")[1]
    assert "Add-RecipientPermission" in run.out.split("Skipped")[1]
    # Bob is untouched: no forwarding to the partner, no SendAs for alice.
    assert _mailbox(repo, "bob@contoso.com") == before
    assert _send_as(repo, "bob@contoso.com") == []
    assert "not yet visible" not in run.out
    # Nothing is remembered as pending; the next plan sees the holder and refuses the create.
    again = cli("plan", repo.root)
    assert "pending propagation" not in again.out + again.err
    assert again.code == 1 and "already held by bob@contoso.com" in again.out + again.err


def test_an_address_held_by_a_soft_deleted_mailbox_fails_and_is_not_pending(cli, repo: Repo):
    repo.yaml(LONDON, SALES)
    _taken_before_create(repo, _soft_deleted_sales)
    run = cli("apply", repo.root, "--auto-approve")
    assert run.code == 1, run.out
    assert f"{ADDRESS} is held by the soft-deleted mailbox {ADDRESS}" in run.out
    assert "Undo-SoftDeletedMailbox" in run.out
    assert sorted(k.split()[0] for k in repo.backend.writes) == ["New-Mailbox"]
    assert "succeeded (already present)" not in run.out and "not yet visible" not in run.out
    state = repo.root / ".reconciler/state/contoso.json"
    assert not state.exists() or json.loads(state.read_text())["pending"] == []
    again = cli("plan", repo.root)
    assert "pending propagation" not in again.out
    # The next plan recovers the soft-deleted shared mailbox instead of creating one.
    assert "Undo-SoftDeletedMailbox" in again.out


def test_an_address_that_is_another_kind_of_recipient_fails(repo: Repo):
    snapshot = copy.deepcopy(BASE_SNAPSHOT)
    snapshot["recipients"].append({
        "Name": "Sales London (contact)", "Guid": "0b4f7c39-9b0e-4b8e-9d2f-6f5f6d1f0c11",
        "PrimarySmtpAddress": ADDRESS, "Alias": "sales-london-contact",
        "DisplayName": "Sales London contact", "RecipientTypeDetails": "MailUser"})
    repo.yaml(LONDON, SALES)
    plan = make_plan(repo.root).plan
    assert [c.action for c in plan.actionable] == ["create"]
    _tenant(repo, snapshot)  # the mail user appears after the plan was made
    report = _apply(repo, plan)
    failed = report.failed
    assert [r.ref.op.cmdlet for r in failed] == ["New-Mailbox"]
    assert failed[0].message == (f"{ADDRESS} is already the address of a mail user, not the "
                                 f"shared mailbox this plan creates; plan again")
    assert {r.ref.op.cmdlet for r in report.skipped} == {"Set-Mailbox",
                                                          "Add-RecipientPermission"}


def test_a_read_back_finding_someone_else_is_not_a_committed_create(repo: Repo):
    """A create whose answer was lost is read back by its address; finding bob there (by his
    secondary address) is not proof that it committed."""
    repo.yaml(LONDON, SALES)
    plan = make_plan(repo.root).plan
    _tenant(repo, _holding(ADDRESS, "bob@contoso.com"))  # bob gained it after the plan
    repo.fail("New-Mailbox", lambda: AmbiguousWriteError("timed out"))
    report = _apply(repo, plan)
    assert not report.ok
    assert [r.ref.op.cmdlet for r in report.failed] == ["New-Mailbox"]
    assert "secondary address of bob@contoso.com" in (report.failed[0].message or "")
    assert not any(k.startswith(("Set-", "Add-")) for k in repo.backend.writes)


def test_a_create_refused_after_its_own_lost_answer_is_proven_and_done(tmp_path: Path,
                                                                       monkeypatch):
    """The legitimate case: the first New-Mailbox committed but its answer was lost, the
    read-back could not see it yet (lag), the retry is refused as "address taken", and the
    object then read at the address is the one this plan creates: done, and the rest runs."""
    clock = [1000.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    repo = Repo(tmp_path / "repo", lag_seconds=45, clock=lambda: clock[0])
    monkeypatch.setattr("reconciler.sources.backends.open_backend",
                        lambda source, customer, root: repo.backend)
    repo.yaml(LONDON, SALES)
    plan = make_plan(repo.root).plan
    repo.fail("New-Mailbox", lambda: AmbiguousWriteError("connection dropped"),
              after_commit=True)
    options = ApplyOptions(execution=ExecutionOptions(sleep=sleep), verify_attempts=3,
                           sleep=sleep)
    report = apply_plan(plan, load(repo.root), repo.backend_for, root=repo.root,
                        options=options)
    assert report.ok, render_report(report)
    new = next(r for r in report.succeeded if r.ref.op.cmdlet == "New-Mailbox")
    assert new.detail.startswith("already present (read back")
    assert _mailbox(repo, ADDRESS)["RecipientTypeDetails"] == "SharedMailbox"
    assert _send_as(repo, ADDRESS) == ["alice"]
    assert "already in place" in render_report(report)


@pytest.mark.parametrize(("cmdlet", "where"), [
    ("Add-RecipientPermission", {"Identity": "support-london@contoso.com"}),
    ("Set-Mailbox", {"Identity": "support-london@contoso.com"}),
    ("Enable-Mailbox", {"Identity": "support-london@contoso.com"}),
    ("Disable-Mailbox", {"Identity": "alice@contoso.com"}),
])
def test_not_found_on_a_write_other_than_a_removal_is_a_failure(repo: Repo, cmdlet: str,
                                                                where: dict[str, str]):
    repo.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support London
            alias: support-london
            archive: true
            forwarding: {external: help@partner.example}
            permissions:
              - {user: alice@contoso.com, access: [FullAccess, SendAs]}
              - {user: bob@contoso.com, access: [SendAs]}
        """)
    repo.yaml("sites/london/users.yaml", """\
        user_mailboxes:
          - user: alice@contoso.com
            archive: false
        """)
    plan = make_plan(repo.root).plan
    assert any(op.cmdlet == cmdlet for c in plan.actionable for op in c.operations), cmdlet
    repo.fail(cmdlet, lambda: NotFound(f"{cmdlet}: The operation couldn't be performed because "
                                       f"object couldn't be found."), **where)
    sleeps: list[float] = []
    report = _apply(repo, plan, sleeps)
    assert [r.ref.op.cmdlet for r in report.failed] == [cmdlet], render_report(report)
    assert sleeps == []  # it names no object created in this run: nothing to wait out
    assert not report.ok and not report.not_visible
    assert "couldn't be found" in (report.failed[0].message or "")


@pytest.mark.parametrize("shape", [ErrorShape.STANDARD, ErrorShape.HEADER, ErrorShape.PROXY])
def test_not_found_on_a_write_over_tls_fails_is_not_retried_and_is_not_pending(
        tmp_path: Path, start_service, pki: Pki, app_cert: AppCertificate, key_env: str,
        shape: ErrorShape):
    """The same through the real connector: Exchange's not-found, in its plain, header and
    proxied (500 holding a CmdletProxyException) shapes, on a Set-Mailbox."""
    repo = Repo(tmp_path / "repo")
    repo.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support London
            alias: support-london
            forwarding: {external: help@partner.example}
            permissions:
              - {user: alice@contoso.com, access: [FullAccess, SendAs]}
              - {user: bob@contoso.com, access: [SendAs]}
        """)
    emulator = repo.backend.emulator
    tenant_id = BASE_SNAPSHOT["tenant"]["id"]
    service = start_service({tenant_id: emulator})
    service.schedule.force(Fault(FaultKind.EXCHANGE_ERROR, exception_type=(
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"),
        shape=shape, message="The operation couldn't be performed because object "
        "'support-london@contoso.com' couldn't be found."), cmdlet="Set-Mailbox", times=None)
    desired = load(repo.root)
    state = desired.customers["contoso"]
    serve_customer(state, service, tenant_id, app_cert, key_env)

    def backend_for(state: Any) -> ExchangeBackend:
        return ExchangeBackend(state.customer, settings=ExchangeSettings.for_tenant(
            state.customer.tenant, verify=pki.client_context, retry=FAST_RETRY))

    plan = plan_desired(desired, backend_for).plan
    sleeps: list[float] = []
    report = apply_plan(plan, desired, backend_for, root=repo.root, options=ApplyOptions(
        execution=ExecutionOptions(sleep=sleeps.append), sleep=sleeps.append))
    assert [r.ref.op.cmdlet for r in report.failed] == ["Set-Mailbox"], render_report(report)
    assert "couldn't be found" in (report.failed[0].message or "")
    assert service.calls["Set-Mailbox"] == 1  # a permanent answer, whatever its status
    assert not report.not_visible
    assert json.loads((repo.root / ".reconciler/state/contoso.json").read_text())["pending"] == []
    # The operations after it in the same change wait for it, so they are skipped.
    assert {r.ref.op.cmdlet for r in report.skipped} == {"Add-RecipientPermission"}
