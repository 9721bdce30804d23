"""The emulator's calendars as Exchange Online has them: localised folder names, grantees shown
by display name, delegate flags as Set-MailboxFolderPermission's reference describes them, and
a room's calendar processing."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.emulator.reference import check_call
from reconciler.live.backend import BadParameter, NotFound
from tests.emulator.conftest import seed
from tests.snapshots import add_user

KALENDER = "jonas@contoso.com:\\Kalender"


@pytest.fixture
def tenant() -> Emulator:
    snap = seed()
    add_user(snap, "jonas", "Jonas Weber", calendar="Kalender")
    add_user(snap, "alex.chen", "Alex Chen")
    add_user(snap, "alex.chen2", "Alex Chen", office="Paris")
    return Emulator(snap)


def entries(em: Emulator, folder: str, **extra: Any) -> list[tuple[str, list[str], str]]:
    rows = em.invoke("Get-MailboxFolderPermission", {"Identity": folder, **extra}).value
    return [(r["User"], r["AccessRights"], r["SharingPermissionFlags"]) for r in rows]


def test_a_localised_calendar_is_found_only_under_its_own_name(tenant: Emulator) -> None:
    with pytest.raises(NotFound):
        tenant.invoke("Get-MailboxFolderPermission", {"Identity": "jonas@contoso.com:\\Calendar"})
    assert ("Default", ["AvailabilityOnly"], "None") in entries(tenant, KALENDER)
    folders = tenant.invoke("Get-MailboxFolderStatistics", {
        "Identity": "jonas@contoso.com", "FolderScope": "Calendar"}).value
    # More than one calendar-scoped folder: only FolderType tells the default one.
    assert [(f["Name"], f["FolderType"]) for f in folders] == [
        ("Kalender", "Calendar"), ("Birthdays", "Birthdays")]
    check_call("Get-MailboxFolderStatistics", {"Identity": "x", "FolderScope": "Calendar"})
    with pytest.raises(BadParameter):
        tenant.invoke("Get-MailboxFolderStatistics", {"Identity": "jonas@contoso.com",
                                                      "FolderScope": "Kalendar"})


def test_grantees_are_shown_by_display_name_whatever_form_wrote_them(tenant: Emulator) -> None:
    for user in ("carol", "bob@contoso.com"):
        tenant.invoke("Add-MailboxFolderPermission", {"Identity": KALENDER, "User": user,
                                                      "AccessRights": "Reviewer"})
    shown = [u for u, _, _ in entries(tenant, KALENDER)]
    assert {"Carol White", "Bob Jones"} <= set(shown)
    assert "carol" not in shown and "bob@contoso.com" not in shown


def test_two_grantees_sharing_a_display_name_stay_apart(tenant: Emulator) -> None:
    for user, role in (("alex.chen@contoso.com", "Reviewer"),
                       ("alex.chen2@contoso.com", "Editor")):
        tenant.invoke("Add-MailboxFolderPermission", {"Identity": KALENDER, "User": user,
                                                      "AccessRights": role})
    named = [(u, r) for u, r, _ in entries(tenant, KALENDER) if u == "Alex Chen"]
    assert sorted(named) == [("Alex Chen", ["Editor"]), ("Alex Chen", ["Reviewer"])]
    # -User with an address picks that principal's entry, and only it.
    assert entries(tenant, KALENDER, User="alex.chen2@contoso.com") == [
        ("Alex Chen", ["Editor"], "None")]
    with pytest.raises(BadParameter, match="multiple"):
        tenant.invoke("Remove-MailboxFolderPermission", {"Identity": KALENDER,
                                                         "User": "Alex Chen"})
    tenant.invoke("Remove-MailboxFolderPermission", {"Identity": KALENDER,
                                                     "User": "alex.chen@contoso.com"})
    assert [(u, r) for u, r, _ in entries(tenant, KALENDER) if u == "Alex Chen"] == [
        ("Alex Chen", ["Editor"])]
    # A saved tenant still knows whose entry it is.
    reloaded = Emulator(tenant.to_snapshot())
    assert entries(reloaded, KALENDER, User="alex.chen2@contoso.com") == [
        ("Alex Chen", ["Editor"], "None")]
    with pytest.raises(NotFound):
        reloaded.invoke("Get-MailboxFolderPermission", {"Identity": KALENDER,
                                                        "User": "alex.chen@contoso.com"})


# Set-MailboxFolderPermission's reference (office-docs-powershell, Set-MailboxFolderPermission.md,
# DESCRIPTION, Examples 4 and 5, -SharingPermissionFlags): the flags go only with Editor; a Set
# that leaves them out keeps a delegate a delegate; None removes delegate permissions and
# takes the user out of the meeting message rule.


def _delegate(em: Emulator) -> str:
    folder = "alice:\\Calendar"
    assert ("Bob Jones", ["Editor"], "Delegate,CanViewPrivateItems") in entries(em, folder)
    assert em.meeting_message_rule("alice@contoso.com") == ["Bob Jones"]
    return folder


def test_set_without_flags_keeps_the_delegate(em: Emulator) -> None:
    folder = _delegate(em)
    em.invoke("Set-MailboxFolderPermission", {"Identity": folder, "User": "bob",
                                              "AccessRights": ["Editor"]})
    assert ("Bob Jones", ["Editor"], "Delegate,CanViewPrivateItems") in entries(em, folder)
    assert em.meeting_message_rule("alice@contoso.com") == ["Bob Jones"]


def test_a_demotion_without_flags_leaves_the_meeting_message_rule(em: Emulator) -> None:
    folder = _delegate(em)
    em.invoke("Set-MailboxFolderPermission", {"Identity": folder, "User": "bob",
                                              "AccessRights": ["Reviewer"]})
    assert em.meeting_message_rule("alice@contoso.com") == ["Bob Jones"]


def test_flags_none_with_editor_removes_the_delegate(em: Emulator) -> None:
    folder = _delegate(em)
    em.invoke("Set-MailboxFolderPermission", {"Identity": folder, "User": "bob",
                                              "AccessRights": ["Editor"],
                                              "SharingPermissionFlags": "None"})
    assert ("Bob Jones", ["Editor"], "None") in entries(em, folder)
    assert em.meeting_message_rule("alice@contoso.com") == []


def test_flags_are_refused_with_any_role_but_editor_none_included(em: Emulator) -> None:
    folder = _delegate(em)
    for flags in ("None", "Delegate"):
        with pytest.raises(BadParameter, match="only be used when the AccessRights"):
            em.invoke("Set-MailboxFolderPermission", {"Identity": folder, "User": "bob",
                                                      "AccessRights": ["Reviewer"],
                                                      "SharingPermissionFlags": flags})
    assert em.meeting_message_rule("alice@contoso.com") == ["Bob Jones"]


def test_a_room_has_default_calendar_processing_and_takes_delegates(em: Emulator) -> None:
    room = "old-room@contoso.com"  # a room nothing has set calendar processing on
    (row,) = em.invoke("Get-CalendarProcessing", {"Identity": room}).value
    assert (row["AutomateProcessing"], row["AllBookInPolicy"], row["AllRequestInPolicy"],
            row["ForwardRequestsToDelegates"], row["ResourceDelegates"]) == (
        "AutoAccept", True, False, True, [])
    em.invoke("Set-CalendarProcessing", {"Identity": room, "AutomateProcessing": "AutoAccept",
                                         "ResourceDelegates": ["alice@contoso.com"],
                                         "AllBookInPolicy": False, "AllRequestInPolicy": True})
    reloaded = Emulator(em.to_snapshot())
    (row,) = reloaded.invoke("Get-CalendarProcessing", {"Identity": room}).value
    assert row["ResourceDelegates"] == ["alice"] and row["AllBookInPolicy"] is False
    with pytest.raises(NotFound):
        em.invoke("Set-CalendarProcessing", {"Identity": room,
                                             "ResourceDelegates": ["nobody@contoso.com"]})
    with pytest.raises(BadParameter):
        em.invoke("Set-CalendarProcessing", {"Identity": room, "AutomateProcessing": "Auto"})
    warned = em.invoke("Set-CalendarProcessing", {"Identity": room, "AllBookInPolicy": False})
    assert warned.warnings and "no settings" in warned.warnings[0]


def test_a_calendar_is_shared_with_security_principals_only(tenant: Emulator) -> None:
    # Add-MailboxFolderPermission -User: "mail-enabled security principals" (GATEWAY-FACTS §j).
    tenant.invoke("New-DistributionGroup", {"Name": "Sales", "Alias": "sales",
                                            "PrimarySmtpAddress": "sales@contoso.com",
                                            "ManagedBy": ["alice@contoso.com"]})
    with pytest.raises(BadParameter, match="not a security principal"):
        tenant.invoke("Add-MailboxFolderPermission", {"Identity": KALENDER,
                                                      "User": "sales@contoso.com",
                                                      "AccessRights": "Reviewer"})
    assert "Sales" not in [u for u, _, _ in entries(tenant, KALENDER)]
    tenant.invoke("Add-MailboxFolderPermission", {"Identity": KALENDER, "User": "carol",
                                                  "AccessRights": "Reviewer"})
