"""Reading back settles an ambiguous write only if each cmdlet's check is right: for every
operation a plan makes, the check says "not there" before the call and "there" after it."""

from __future__ import annotations

from reconciler.apply.confirm import CHECKS, Recipients, confirm
from reconciler.apply.executor import build_graph
from reconciler.plan.plan import Operation
from reconciler.plan.planner import make_plan
from tests.apply.conftest import LONDON, Repo

EVERYTHING = """\
    shared_mailboxes:
      - name: Team A
        alias: team-a
        retention_policy: Contoso 2y
        archive: true
        custom_attributes: {3: sales}
        forwarding: {external: sales@partner.example, deliver_to_mailbox: true}
        permissions:
          - {user: alice@contoso.com, access: [FullAccess, SendAs, SendOnBehalf],
             automapping: false}
        calendar_permissions:
          - {user: carol@contoso.com, role: Editor, delegate: true}
          - {user: Default, role: LimitedDetails}
        auto_reply:
          state: Scheduled
          start: 2026-12-20T00:00:00Z
          end: 2027-01-04T00:00:00Z
          internal_message: Out until 4 January.
          external_audience: Known
          external_message: Out until 4 January.
      - name: Support London
        alias: support-london
        archive: false
        forwarding: {internal: bob@contoso.com, deliver_to_mailbox: false}
        permissions:
          - {user: bob@contoso.com, access: [SendAs]}
        calendar_permissions:
          - {user: Default, role: Reviewer}
    room_mailboxes:
      - name: Board Room 3
        alias: board-room-3
        booking:
          automate: AutoAccept
          delegates: [alice@contoso.com, bob@contoso.com]
          all_book_in_policy: false
    distribution_groups:
      - name: London All Staff
        alias: london-all
        owners: [bob@contoso.com]
        members: [carol@contoso.com]
        permissions:
          - {user: alice@contoso.com, access: [SendOnBehalf]}
      - name: Team A Friends
        alias: team-a-friends
        owners: [alice@contoso.com]
        members: [team-a@contoso.com, bob@contoso.com]
"""


def test_each_check_sees_the_write_only_after_it(repo: Repo):
    # Give the tenant something for the plan to remove and change.
    repo.live("Add-RecipientPermission", Identity="support-london@contoso.com",
              Trustee="carol@contoso.com", AccessRights=["SendAs"], Confirm=False)
    repo.live("Add-MailboxFolderPermission", Identity="support-london@contoso.com:\\Calendar",
              User="sam@contoso.com", AccessRights=["Reviewer"])
    repo.live("Enable-Mailbox", Identity="support-london@contoso.com", Archive=True)
    repo.yaml(LONDON, EVERYTHING)
    plan = make_plan(repo.root).plan
    emulator = repo.backend.emulator
    recipients = Recipients(emulator)
    seen: set[str] = set()
    refs, preds = build_graph(plan.actionable)
    done: set[tuple[str, int]] = set()
    while len(done) < len(refs):  # dependency order, as apply runs them
        ref = next(r for r in refs if r.key not in done and preds[r.key] <= done)
        done.add(ref.key)
        change, op = ref.change, ref.op
        assert confirm(op, emulator, recipients) is False, (change.address, op)
        emulator.invoke(op.cmdlet, dict(op.parameters))
        assert confirm(op, emulator, recipients) is True, (change.address, op)
        seen.add(op.cmdlet)
    assert not make_plan(repo.root).plan.has_changes
    # Every check but the deletes' and the recovery's (next test) was exercised.
    assert set(CHECKS) - seen == {"Remove-Mailbox", "Remove-DistributionGroup",
                                  "Undo-SoftDeletedMailbox"}


def test_delete_and_recovery_checks(repo: Repo):
    emulator = repo.backend.emulator
    recipients = Recipients(emulator)
    guid = emulator.invoke("Get-Mailbox", {"Identity": "old-projects@contoso.com"}).value[0][
        "Guid"]
    for op in (Operation("Remove-Mailbox", {"Identity": "old-projects@contoso.com",
                                            "Confirm": False}),
               Operation("Remove-DistributionGroup", {"Identity": "london-all@contoso.com",
                                                      "BypassSecurityGroupManagerCheck": True,
                                                      "Confirm": False})):
        assert confirm(op, emulator, recipients) is False
        emulator.invoke(op.cmdlet, dict(op.parameters))
        assert confirm(op, emulator, recipients) is True
    undo = Operation("Undo-SoftDeletedMailbox", {"SoftDeletedObject": guid})
    assert confirm(undo, emulator, recipients) is False
    emulator.invoke(undo.cmdlet, dict(undo.parameters))
    assert confirm(undo, emulator, recipients) is True
