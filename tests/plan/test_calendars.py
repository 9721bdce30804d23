"""Scenarios: calendars as Exchange Online has them, through the real emulator. A localised
calendar folder, grantees named by a display name two recipients share, and a delegate demoted
to another role."""

from __future__ import annotations

import copy

import pytest

from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.plan.planner import plan_desired
from tests.plan.conftest import BASE_SNAPSHOT, Scenario, _Unclosable, by_address, cmdlets
from tests.snapshots import add_user

JONAS = "contoso/london/user_mailbox/jonas@contoso.com"
FOLDER_CMDLETS = ("Add-MailboxFolderPermission", "Set-MailboxFolderPermission",
                  "Remove-MailboxFolderPermission")


@pytest.fixture
def tenant(scenario: Scenario) -> Scenario:
    snap = copy.deepcopy(BASE_SNAPSHOT)
    add_user(snap, "jonas", "Jonas Weber", calendar="Kalender")
    add_user(snap, "alex.chen", "Alex Chen")
    add_user(snap, "alex.chen2", "Alex Chen")
    scenario.emulator = Emulator(snap)
    return scenario


def folder_ops(change: object) -> list[tuple[str, str, str]]:
    return [(op.cmdlet, op.parameters["Identity"], op.parameters["User"])
            for op in change.operations if op.cmdlet in FOLDER_CMDLETS]  # type: ignore[attr-defined]


def test_a_localised_calendar_is_addressed_by_its_own_name(tenant: Scenario) -> None:
    tenant.yaml("sites/london/mailboxes.yaml", """\
        user_mailboxes:
          - user: jonas@contoso.com
            calendar_permissions:
              - {user: alice@contoso.com, role: Reviewer}
          - user: bob@contoso.com
            display_name: Bob Jones
        """)
    plan = tenant.converge()
    assert folder_ops(by_address(plan)[JONAS]) == [
        ("Add-MailboxFolderPermission", "jonas@contoso.com:\\Kalender", "alice@contoso.com")]
    # The folder is looked up once per mailbox whose calendar the plan reads, and for no other.
    calls = tenant.emulator.calls
    before = calls["Get-MailboxFolderStatistics"]
    tenant.plan()
    assert calls["Get-MailboxFolderStatistics"] - before == 1
    rows = tenant.emulator.invoke("Get-MailboxFolderPermission",
                                  {"Identity": "jonas@contoso.com:\\Kalender"}).value
    assert ("Alice Smith", ["Reviewer"]) in [(r["User"], r["AccessRights"]) for r in rows]


def test_grantees_sharing_a_display_name_are_told_apart_and_named_by_address(
        tenant: Scenario) -> None:
    for user, role in (("alex.chen@contoso.com", "Reviewer"), ("alex.chen2@contoso.com", "Editor")):
        tenant.live("Add-MailboxFolderPermission", Identity="jonas:\\Kalender", User=user,
                    AccessRights=[role])
    tenant.yaml("sites/london/mailboxes.yaml", """\
        user_mailboxes:
          - user: jonas@contoso.com
            calendar_permissions:
              - {user: alex.chen2@contoso.com, role: Reviewer}
        """)
    plan = tenant.converge()
    change = by_address(plan)[JONAS]
    assert folder_ops(change) == [
        ("Remove-MailboxFolderPermission", "jonas@contoso.com:\\Kalender",
         "alex.chen@contoso.com"),
        ("Set-MailboxFolderPermission", "jonas@contoso.com:\\Kalender",
         "alex.chen2@contoso.com")]
    assert change.before["calendar_permissions"] == [
        {"user": "alex.chen2@contoso.com", "role": "Editor"},
        {"user": "alex.chen@contoso.com", "role": "Reviewer"}]
    rows = tenant.emulator.invoke("Get-MailboxFolderPermission", {
        "Identity": "jonas:\\Kalender", "User": "alex.chen2@contoso.com"}).value
    assert [r["AccessRights"] for r in rows] == [["Reviewer"]]


ALICE = "contoso/london/user_mailbox/alice@contoso.com"


def demote_bob(scenario: Scenario, role: str) -> object:
    """Bob is Alice's calendar delegate live; the YAML gives him ``role``. Converges."""
    scenario.live("Add-MailboxFolderPermission", Identity="alice:\\Calendar", User="bob",
                  AccessRights=["Editor"], SharingPermissionFlags="Delegate")
    assert scenario.emulator.meeting_message_rule("alice@contoso.com") == ["Bob Jones"]
    scenario.yaml("sites/london/mailboxes.yaml", f"""\
        user_mailboxes:
          - user: alice@contoso.com
            calendar_permissions:
              - {{user: bob@contoso.com, role: {role}}}
        """)
    return by_address(scenario.converge())[ALICE]


def test_demoting_a_delegate_sends_flags_none_with_editor_first(scenario: Scenario) -> None:
    ops = demote_bob(scenario, "Reviewer").operations  # type: ignore[attr-defined]
    assert [(o.cmdlet, o.parameters["AccessRights"], o.parameters.get("SharingPermissionFlags"))
            for o in ops] == [("Set-MailboxFolderPermission", ["Editor"], "None"),
                              ("Set-MailboxFolderPermission", ["Reviewer"], None)]
    # Bob no longer receives Alice's meeting requests.
    assert scenario.emulator.meeting_message_rule("alice@contoso.com") == []


def test_a_delegate_kept_as_editor_is_one_set_with_flags_none(scenario: Scenario) -> None:
    change = demote_bob(scenario, "Editor")
    assert cmdlets(change) == ["Set-MailboxFolderPermission"]
    assert change.operations[0].parameters["SharingPermissionFlags"] == "None"  # type: ignore[attr-defined]
    assert scenario.emulator.meeting_message_rule("alice@contoso.com") == []


def test_a_pull_requests_plan_tells_shared_display_names_apart_too(tenant: Scenario) -> None:
    """Scoped to one mailbox (``--changed-since``), recipients are fetched as they are met:
    a display name two of them share is still never guessed."""
    for user in ("alex.chen@contoso.com", "alex.chen2@contoso.com"):
        tenant.live("Add-MailboxFolderPermission", Identity="jonas:\\Kalender", User=user,
                    AccessRights=["Reviewer"])
    tenant.yaml("sites/london/mailboxes.yaml", """\
        user_mailboxes:
          - user: jonas@contoso.com
            calendar_permissions:
              - {user: alex.chen2@contoso.com, role: Reviewer}
          - user: alice@contoso.com
            display_name: Alice Smith
        """)
    backend = _Unclosable(tenant.emulator)
    plan = plan_desired(load(tenant.write()), lambda state: backend,
                        scope={"contoso": {"jonas@contoso.com"}}).plan
    assert [folder_ops(c) for c in plan.changes] == [[
        ("Remove-MailboxFolderPermission", "jonas@contoso.com:\\Kalender",
         "alex.chen@contoso.com")]]


class _BirthdaysFirst(_Unclosable):
    """The tenant, listing a mailbox's calendar folders in the other order."""

    def invoke(self, cmdlet: str, parameters: object = None, select: object = None):  # type: ignore[no-untyped-def]
        result = super().invoke(cmdlet, parameters, select)
        if cmdlet == "Get-MailboxFolderStatistics":
            result.value = result.value[::-1]
        return result


def test_the_default_calendar_is_the_folder_of_type_calendar_not_the_first(
        tenant: Scenario) -> None:
    tenant.yaml("sites/london/mailboxes.yaml", """\
        user_mailboxes:
          - user: jonas@contoso.com
            calendar_permissions:
              - {user: alice@contoso.com, role: Reviewer}
        """)
    backend = _BirthdaysFirst(tenant.emulator)
    plan = plan_desired(load(tenant.write()), lambda state: backend).plan
    assert folder_ops(by_address(plan)[JONAS]) == [
        ("Add-MailboxFolderPermission", "jonas@contoso.com:\\Kalender", "alice@contoso.com")]
