"""Each emulated cmdlet, with the Exchange behaviour the reconciler must live with."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.live.backend import AlreadyExists, BadParameter, NotFound, NotPresent
from reconciler.live.reader import NO_ARCHIVE_GUID
from tests.emulator.conftest import WallClock, seed

HASH = "#Exchange.GenericHashTable"
SELF = "NT AUTHORITY\\SELF"


def rows(em: Emulator, cmdlet: str, **params: Any) -> list[dict[str, Any]]:
    return em.invoke(cmdlet, params).value


def explicit_users(em: Emulator, identity: str) -> list[str]:
    return [r["User"] for r in rows(em, "Get-MailboxPermission", Identity=identity)
            if not r["IsInherited"] and r["User"] != SELF]


def new_shared(em: Emulator, alias: str, **extra: Any) -> dict[str, Any]:
    return em.invoke("New-Mailbox", {"Shared": True, "Name": alias.title(), "Alias": alias,
                                     "PrimarySmtpAddress": f"{alias}@contoso.com",
                                     **extra}).value[0]


# --- identities and principals -----------------------------------------------------------------


def test_identity_resolves_through_every_form(em: Emulator) -> None:
    dave = rows(em, "Get-Recipient", Identity="dave@contoso.com")[0]
    forms = [dave["Name"], dave["Guid"], dave["ExternalDirectoryObjectId"],
             "dave@contoso.com", "DAVE@contoso.com", "smtp:dave@contoso.com", "dave",
             "Dave Brown"]
    found = {rows(em, "Get-Mailbox", Identity=f)[0]["PrimarySmtpAddress"] for f in forms}
    assert found == {"dave@contoso.com"}
    # Post-2022 objects are named by their Entra object id.
    assert dave["Name"] == dave["ExternalDirectoryObjectId"]


def test_principals_come_back_as_stored_in_whatever_form(em: Emulator) -> None:
    assert explicit_users(em, "support-london@contoso.com") == ["Alice Smith"]
    carol = rows(em, "Get-Recipient", Identity="carol@contoso.com")[0]
    assert explicit_users(em, "ceo-office@contoso.com") == [carol["ExternalDirectoryObjectId"]]
    send_as = rows(em, "Get-RecipientPermission", Identity="support-london@contoso.com")
    assert [r["Trustee"] for r in send_as if r["Trustee"] != SELF] == ["alice@contoso.com"]


def test_new_entries_store_the_recipient_name(em: Emulator) -> None:
    dave = rows(em, "Get-Recipient", Identity="dave@contoso.com")[0]
    em.invoke("Add-MailboxPermission", {"Identity": "finance@contoso.com", "User": "Dave Brown",
                                        "AccessRights": ["FullAccess"]})
    em.invoke("Add-MailboxPermission", {"Identity": "finance@contoso.com",
                                        "User": "bob@contoso.com", "AccessRights": "FullAccess"})
    assert sorted(explicit_users(em, "finance")) == sorted(["alice", dave["Name"], "bob"])


def test_display_name_shared_by_two_recipients_is_ambiguous(em: Emulator) -> None:
    new_shared(em, "alice-team", DisplayName="Alice Smith")
    with pytest.raises(BadParameter) as e:
        em.invoke("Get-Mailbox", {"Identity": "Alice Smith"})
    assert e.value.exception_type == "ManagementObjectAmbiguousException"
    # A stronger key still resolves each of them.
    assert rows(em, "Get-Mailbox", Identity="alice")[0]["PrimarySmtpAddress"] == \
        "alice@contoso.com"


def test_unknown_principal_is_not_found(em: Emulator) -> None:
    with pytest.raises(NotFound, match="wasn't found") as e:
        em.invoke("Add-MailboxPermission", {"Identity": "finance", "User": "zoe@contoso.com",
                                            "AccessRights": "FullAccess"})
    assert e.value.exception_type == "ManagementObjectNotFoundException"


@pytest.mark.parametrize("cmdlet,params", [
    ("Get-Mailbox", {"Identity": "nobody@contoso.com"}),
    ("Get-MailboxPermission", {"Identity": "nobody@contoso.com"}),
    ("Get-MailboxAutoReplyConfiguration", {"Identity": "nobody@contoso.com"}),
    ("Get-DistributionGroupMember", {"Identity": "nobody@contoso.com"}),
    ("Set-Mailbox", {"Identity": "nobody@contoso.com", "Office": "x"}),
    ("Remove-Mailbox", {"Identity": "nobody@contoso.com"}),
    ("Get-MailboxFolderPermission", {"Identity": "nobody@contoso.com:\\Calendar"}),
])
def test_not_found_carries_exchange_exception_type(em: Emulator, cmdlet: str,
                                                   params: dict[str, Any]) -> None:
    with pytest.raises(NotFound, match="couldn't be found") as e:
        em.invoke(cmdlet, params)
    assert e.value.exception_type == "ManagementObjectNotFoundException"


def test_a_group_is_not_a_mailbox(em: Emulator) -> None:
    with pytest.raises(NotFound):
        em.invoke("Get-Mailbox", {"Identity": "london-all@contoso.com"})
    assert rows(em, "Get-Recipient", Identity="london-all@contoso.com")


# --- bulk reads, select, counters --------------------------------------------------------------


def test_empty_identity_returns_everything_as_exchange_does(em: Emulator) -> None:
    every = rows(em, "Get-Mailbox", ResultSize="Unlimited")
    assert len(rows(em, "Get-Mailbox", Identity="", ResultSize="Unlimited")) == len(every)
    assert len(rows(em, "Get-Mailbox", Identity=None, ResultSize="Unlimited")) == len(every)
    assert len(every) == 16


def test_default_result_size_is_1000_with_a_warning() -> None:
    snap = seed()
    for i in range(1001):
        address = f"bulk{i}@contoso.com"
        snap["recipients"].append({"Name": f"bulk{i}", "PrimarySmtpAddress": address,
                                   "RecipientTypeDetails": "SharedMailbox"})
        snap["mailboxes"].append({"Identity": f"bulk{i}", "PrimarySmtpAddress": address,
                                  "RecipientTypeDetails": "SharedMailbox"})
    em = Emulator(snap)
    result = em.invoke("Get-Mailbox")
    assert len(result.value) == 1000 and "ResultSize" in result.warnings[0]
    assert len(em.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}).value) == 1017
    assert len(em.invoke("Get-Mailbox", {"ResultSize": 10}).value) == 10


def test_bulk_reads_filter_by_type(em: Emulator) -> None:
    shared = rows(em, "Get-Mailbox", RecipientTypeDetails="SharedMailbox", ResultSize="Unlimited")
    assert {m["RecipientTypeDetails"] for m in shared} == {"SharedMailbox"} and len(shared) == 5
    users = rows(em, "Get-User", ResultSize="Unlimited")
    assert "london-all@contoso.com" not in {u["PrimarySmtpAddress"] for u in users}
    recipients = rows(em, "Get-Recipient", ResultSize="Unlimited")
    assert len(recipients) == len(users) + 2
    groups = rows(em, "Get-DistributionGroup", ResultSize="Unlimited")
    assert {g["PrimarySmtpAddress"] for g in groups} == {"london-all@contoso.com",
                                                         "paris-all@contoso.com"}
    send_as = rows(em, "Get-RecipientPermission", ResultSize="Unlimited")
    assert sum(r["Trustee"] == SELF for r in send_as) == 16


def test_select_trims_properties(em: Emulator) -> None:
    result = em.invoke("Get-Mailbox", {"Identity": "alice"}, select=["Alias", "Office", "Nope"])
    assert result.value == [{"Alias": "alice", "Office": "London"}]


def test_calls_are_counted_per_cmdlet_including_refused_ones(em: Emulator) -> None:
    rows(em, "Get-Mailbox", Identity="alice")
    rows(em, "get-mailbox", Identity="bob")
    with pytest.raises(BadParameter):
        em.invoke("Get-Mailbox", {"Bogus": 1})
    assert em.calls["Get-Mailbox"] == 3 and sum(em.calls.values()) == 3


def test_what_if_changes_nothing(em: Emulator) -> None:
    em.invoke("Remove-Mailbox", {"Identity": "finance", "WhatIf": True})
    assert rows(em, "Get-Mailbox", Identity="finance")


def test_returned_rows_are_copies(em: Emulator) -> None:
    rows(em, "Get-Mailbox", Identity="alice")[0]["Office"] = "Mars"
    assert rows(em, "Get-Mailbox", Identity="alice")[0]["Office"] == "London"
    for row in rows(em, "Get-MailboxPermission", Identity="finance"):
        row["AccessRights"].append("ChangeOwner")
    em.invoke("Get-Mailbox", {"Identity": "bob"}, select=["GrantSendOnBehalfTo"]).value[0][
        "GrantSendOnBehalfTo"].append("x")
    for row in em.to_snapshot()["mailbox_permissions"]:
        row["AccessRights"].append("DeleteItem")
    snap = em.to_snapshot()
    assert all(p["AccessRights"] in (["FullAccess"], ["FullAccess", "ReadPermission"])
               for p in snap["mailbox_permissions"])
    assert all(m["GrantSendOnBehalfTo"] == [] for m in snap["mailboxes"]
               if m["Alias"] != "info-berlin")


def test_concurrent_writes_are_serialised(em: Emulator) -> None:
    def add() -> None:
        em.invoke("Add-MailboxPermission", {"Identity": "finance", "User": "bob",
                                            "AccessRights": "FullAccess"})
    threads = [threading.Thread(target=add) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert explicit_users(em, "finance").count("bob") == 1


# --- mailboxes ---------------------------------------------------------------------------------


def test_new_shared_mailbox_has_every_system_entry(em: Emulator) -> None:
    row = new_shared(em, "sales-london", DisplayName="Sales London")
    assert row["RecipientTypeDetails"] == "SharedMailbox" and row["Identity"] == "Sales-London"
    perms = rows(em, "Get-MailboxPermission", Identity="sales-london@contoso.com")
    assert [(p["User"], p["IsInherited"], p["Deny"]) for p in perms] == [
        (SELF, False, False), ("NAMPR01A001\\Administrator", True, True)]
    calendar = rows(em, "Get-MailboxFolderPermission", Identity="sales-london:\\Calendar")
    assert [(c["User"], c["AccessRights"]) for c in calendar] == [
        ("Default", ["AvailabilityOnly"]), ("Anonymous", ["None"])]
    reply = rows(em, "Get-MailboxAutoReplyConfiguration", Identity="sales-london@contoso.com")
    assert reply[0]["AutoReplyState"] == "Disabled"
    assert rows(em, "Get-Recipient", Identity="sales-london@contoso.com")[0][
        "RecipientTypeDetails"] == "SharedMailbox"


def test_every_seed_mailbox_has_system_entries(em: Emulator) -> None:
    for m in rows(em, "Get-Mailbox", ResultSize="Unlimited"):
        perms = rows(em, "Get-MailboxPermission", Identity=m["Identity"])
        assert any(p["User"] == SELF for p in perms)
        assert any(p["IsInherited"] and p["Deny"] for p in perms)
        calendar = rows(em, "Get-MailboxFolderPermission",
                        Identity=em.calendar_identity(m["Identity"]))
        assert {"Default", "Anonymous"} <= {c["User"] for c in calendar}


def _with_secondary(holder: str, address: str) -> Emulator:
    snapshot = seed()
    for row in snapshot["recipients"] + snapshot["mailboxes"]:
        if row.get("PrimarySmtpAddress") == holder:
            row["EmailAddresses"] = [f"SMTP:{holder}", f"smtp:{address}"]
    return Emulator(snapshot)


@pytest.mark.parametrize("cmdlet", ["New-Mailbox", "New-DistributionGroup"])
def test_an_address_held_as_a_secondary_or_by_a_soft_deleted_mailbox_is_refused(cmdlet: str):
    em = _with_secondary("bob@contoso.com", "sales-london@contoso.com")
    kind = {"Shared": True} if cmdlet == "New-Mailbox" else {}
    new = {**kind, "Name": "Sales London", "Alias": "sales-london",
           "PrimarySmtpAddress": "sales-london@contoso.com"}
    with pytest.raises(AlreadyExists) as refused:
        em.invoke(cmdlet, new)
    assert refused.value.exception_type == "ProxyAddressExistsException"
    # The documented text (GATEWAY-FACTS §i), naming the holder's path.
    assert str(refused.value) == (
        'The proxy address "SMTP:sales-london@contoso.com" is already being used by '
        '"EURPR01A001.prod.outlook.com/Microsoft Exchange Hosted Organizations/'
        'contoso.onmicrosoft.com/bob". Choose another proxy address.')
    assert not [r for r in rows(em, "Get-Recipient") if r["Name"] == "Sales London"]
    # Soft-deleted, bob still holds the secondary address until purged.
    em.invoke("Remove-Mailbox", {"Identity": "bob@contoso.com"})
    with pytest.raises(AlreadyExists, match="Soft Deleted Objects/bob"):
        em.invoke(cmdlet, new)


def test_new_room_with_capacity_and_derived_alias_and_address(em: Emulator) -> None:
    row = em.invoke("New-Mailbox", {"Room": True, "Name": "Salle Lumière",
                                    "ResourceCapacity": 8, "Office": "Paris"}).value[0]
    assert row["RecipientTypeDetails"] == "RoomMailbox" and row["ResourceCapacity"] == 8
    assert row["Alias"] == "SalleLumire" and row["PrimarySmtpAddress"] == \
        "SalleLumire@contoso.com"


def test_new_mailbox_refuses_a_taken_address_name_or_foreign_domain(em: Emulator) -> None:
    with pytest.raises(AlreadyExists, match="proxy address"):
        new_shared(em, "finance")
    with pytest.raises(AlreadyExists, match="already being used"):
        em.invoke("New-Mailbox", {"Shared": True, "Name": "alice", "Alias": "alice2"})
    with pytest.raises(BadParameter, match="accepted domain"):
        em.invoke("New-Mailbox", {"Shared": True, "Name": "X", "PrimarySmtpAddress":
                                  "x@fabrikam.de"})
    with pytest.raises(BadParameter, match="-Shared"):
        em.invoke("New-Mailbox", {"Name": "Y"})


def test_remove_mailbox_soft_deletes_and_undo_restores(em: Emulator, wall: WallClock) -> None:
    em.invoke("Remove-Mailbox", {"Identity": "old-projects@contoso.com", "Confirm": False})
    with pytest.raises(NotFound):
        em.invoke("Get-Mailbox", {"Identity": "old-projects@contoso.com"})
    soft = rows(em, "Get-Mailbox", SoftDeletedMailbox=True)
    assert [m["PrimarySmtpAddress"] for m in soft] == ["old-projects@contoso.com"]
    assert soft[0]["WhenSoftDeleted"] == "2026-11-01T12:00:00Z"
    with pytest.raises(AlreadyExists, match="Soft Deleted Objects/old-projects"):
        new_shared(em, "old-projects")
    restored = em.invoke("Undo-SoftDeletedMailbox",
                         {"SoftDeletedObject": "old-projects@contoso.com"}).value[0]
    assert restored["RecipientTypeDetails"] == "SharedMailbox"
    assert rows(em, "Get-Mailbox", Identity="old-projects@contoso.com")
    assert rows(em, "Get-Mailbox", SoftDeletedMailbox=True) == []


def test_soft_deleted_mailbox_is_purged_after_30_days(em: Emulator, wall: WallClock) -> None:
    em.invoke("Remove-Mailbox", {"Identity": "old-projects"})
    wall.now += timedelta(days=29)
    assert rows(em, "Get-Mailbox", SoftDeletedMailbox=True)
    wall.now += timedelta(days=2)
    assert rows(em, "Get-Mailbox", SoftDeletedMailbox=True) == []
    with pytest.raises(NotFound):
        em.invoke("Undo-SoftDeletedMailbox", {"SoftDeletedObject": "old-projects"})
    new_shared(em, "old-projects")


def test_soft_deleted_mailboxes_survive_a_snapshot_round_trip(em: Emulator,
                                                              wall: WallClock) -> None:
    em.invoke("Remove-Mailbox", {"Identity": "old-room@contoso.com"})
    # The same wall clock: with the real one, the mailbox soft-deleted on the fixture's date is
    # purged once 30 days have passed since (the test failed from 2026-12-01 12:00 UTC).
    again = Emulator(em.to_snapshot(), wall_clock=wall)
    assert [m["PrimarySmtpAddress"] for m in again.invoke(
        "Get-Mailbox", {"SoftDeletedMailbox": True}).value] == ["old-room@contoso.com"]


@pytest.mark.parametrize("target,expected", [("Shared", "SharedMailbox"),
                                             ("Room", "RoomMailbox"),
                                             ("Regular", "UserMailbox")])
def test_set_mailbox_type_converts(em: Emulator, target: str, expected: str) -> None:
    identity = "bob" if target != "Regular" else "finance"
    em.invoke("Set-Mailbox", {"Identity": identity, "Type": target})
    assert rows(em, "Get-Mailbox", Identity=identity)[0]["RecipientTypeDetails"] == expected
    assert rows(em, "Get-Recipient", Identity=identity)[0]["RecipientTypeDetails"] == expected


def test_grant_send_on_behalf_replace_and_add_remove(em: Emulator) -> None:
    em.invoke("Set-Mailbox", {"Identity": "finance", "GrantSendOnBehalfTo":
                              ["bob@contoso.com", "Carol White"]})
    assert rows(em, "Get-Mailbox", Identity="finance")[0]["GrantSendOnBehalfTo"] == [
        "bob", "carol"]
    em.invoke("Set-Mailbox", {"Identity": "finance", "GrantSendOnBehalfTo": {
        "@odata.type": HASH, "add": ["alice@contoso.com"], "remove": ["Bob Jones"]}})
    assert rows(em, "Get-Mailbox", Identity="finance")[0]["GrantSendOnBehalfTo"] == [
        "carol", "alice"]
    em.invoke("Set-Mailbox", {"Identity": "finance", "GrantSendOnBehalfTo": None})
    assert rows(em, "Get-Mailbox", Identity="finance")[0]["GrantSendOnBehalfTo"] == []


def test_forwarding_both_kinds_are_stored(em: Emulator) -> None:
    em.invoke("Set-Mailbox", {"Identity": "alice", "ForwardingSmtpAddress":
                              "help@partner.example", "DeliverToMailboxAndForward": True})
    em.invoke("Set-Mailbox", {"Identity": "alice", "ForwardingAddress": "bob@contoso.com"})
    row = rows(em, "Get-Mailbox", Identity="alice")[0]
    # Both are kept; Exchange delivers to ForwardingAddress when both are set.
    assert row["ForwardingAddress"] == "bob"
    assert row["ForwardingSmtpAddress"] == "smtp:help@partner.example"
    assert row["DeliverToMailboxAndForward"] is True
    em.invoke("Set-Mailbox", {"Identity": "alice", "ForwardingAddress": None,
                              "ForwardingSmtpAddress": None})
    row = rows(em, "Get-Mailbox", Identity="alice")[0]
    assert row["ForwardingAddress"] is None and row["ForwardingSmtpAddress"] is None


def test_set_mailbox_settings(em: Emulator) -> None:
    em.invoke("Set-Mailbox", {"Identity": "board-room-3@contoso.com", "ResourceCapacity": 12,
                              "Office": "London HQ, floor 4", "DisplayName": "Board Room 3 (big)",
                              "CustomAttribute1": "cost-centre-42",
                              "RetentionPolicy": "contoso 2Y"})
    row = rows(em, "Get-Mailbox", Identity="board-room-3@contoso.com")[0]
    assert (row["ResourceCapacity"], row["Office"], row["DisplayName"], row["CustomAttribute1"],
            row["RetentionPolicy"]) == (12, "London HQ, floor 4", "Board Room 3 (big)",
                                        "cost-centre-42", "Contoso 2y")
    assert rows(em, "Get-Mailbox", Identity="Board Room 3 (big)")


def test_set_mailbox_refusals_and_no_op_warning(em: Emulator) -> None:
    with pytest.raises(NotFound):
        em.invoke("Set-Mailbox", {"Identity": "alice", "RetentionPolicy": "Forever"})
    with pytest.raises(BadParameter, match="1024"):
        em.invoke("Set-Mailbox", {"Identity": "alice", "CustomAttribute3": "x" * 1025})
    result = em.invoke("Set-Mailbox", {"Identity": "alice", "Office": "London"})
    assert "no settings" in result.warnings[0]


def test_archive_enable_and_disable(em: Emulator) -> None:
    em.invoke("Enable-Mailbox", {"Identity": "carol", "Archive": True})
    row = rows(em, "Get-Mailbox", Identity="carol")[0]
    # The archive exists at once (its GUID), while ArchiveStatus still says None: provisioning.
    assert row["ArchiveGuid"] != NO_ARCHIVE_GUID and row["ArchiveState"] == "HostedPending"
    assert row["ArchiveStatus"] == "None"
    with pytest.raises(AlreadyExists):
        em.invoke("Enable-Mailbox", {"Identity": "carol", "Archive": True})
    em.invoke("Disable-Mailbox", {"Identity": "carol", "Archive": True, "Confirm": False})
    row = rows(em, "Get-Mailbox", Identity="carol")[0]
    assert (row["ArchiveStatus"], row["ArchiveGuid"]) == ("None", NO_ARCHIVE_GUID)
    assert row["DisabledArchiveGuid"] != NO_ARCHIVE_GUID
    with pytest.raises(NotPresent):
        em.invoke("Disable-Mailbox", {"Identity": "carol", "Archive": True})


# --- FullAccess and SendAs ---------------------------------------------------------------------


def test_add_mailbox_permission_already_present_is_a_warning(em: Emulator) -> None:
    result = em.invoke("Add-MailboxPermission", {"Identity": "support-london@contoso.com",
                                                 "User": "alice@contoso.com",
                                                 "AccessRights": ["FullAccess"],
                                                 "InheritanceType": "All"})
    assert "already present" in result.warnings[0]
    assert explicit_users(em, "support-london@contoso.com") == ["Alice Smith"]


def test_add_and_remove_mailbox_permission(em: Emulator) -> None:
    em.invoke("Add-MailboxPermission", {"Identity": "support-london@contoso.com",
                                        "User": "bob@contoso.com", "AccessRights": "FullAccess",
                                        "AutoMapping": False})
    perms = rows(em, "Get-MailboxPermission", Identity="support-london@contoso.com",
                 User="bob@contoso.com")
    assert perms == [{"Identity": perms[0]["Identity"], "User": "bob",
                      "AccessRights": ["FullAccess"], "IsInherited": False, "Deny": False,
                      "AutoMapping": False}]
    em.invoke("Remove-MailboxPermission", {"Identity": "support-london@contoso.com",
                                           "User": "Bob Jones", "AccessRights": "FullAccess",
                                           "Confirm": False})
    em.invoke("Remove-MailboxPermission", {"Identity": "ceo-office@contoso.com",
                                           "User": "carol@contoso.com",
                                           "AccessRights": "FullAccess"})
    assert explicit_users(em, "support-london@contoso.com") == ["Alice Smith"]
    assert explicit_users(em, "ceo-office@contoso.com") == []


def test_automapping_is_returned_only_where_recorded(em: Emulator) -> None:
    perms = rows(em, "Get-MailboxPermission", Identity="finance")
    assert all("AutoMapping" not in p for p in perms)


def test_removing_an_absent_or_inherited_entry_warns(em: Emulator) -> None:
    result = em.invoke("Remove-MailboxPermission", {"Identity": "finance", "User": "bob",
                                                    "AccessRights": "FullAccess"})
    assert "doesn't exist" in result.warnings[0]
    result = em.invoke("Remove-MailboxPermission", {"Identity": "finance",
                                                    "User": "carol", "AccessRights": "FullAccess",
                                                    "Deny": True})
    assert result.warnings
    assert len(rows(em, "Get-MailboxPermission", Identity="finance")) == 3


def test_partial_rights_removal_keeps_the_rest(em: Emulator) -> None:
    em.invoke("Add-MailboxPermission", {"Identity": "finance", "User": "bob",
                                        "AccessRights": ["FullAccess", "ReadPermission"]})
    em.invoke("Remove-MailboxPermission", {"Identity": "finance", "User": "bob",
                                           "AccessRights": "ReadPermission"})
    perms = rows(em, "Get-MailboxPermission", Identity="finance", User="bob")
    assert perms[0]["AccessRights"] == ["FullAccess"]


def test_send_as_add_present_remove(em: Emulator) -> None:
    result = em.invoke("Add-RecipientPermission", {"Identity": "support-london@contoso.com",
                                                   "Trustee": "Alice Smith",
                                                   "AccessRights": "SendAs", "Confirm": False})
    assert "already present" in result.warnings[0]
    em.invoke("Add-RecipientPermission", {"Identity": "london-all@contoso.com",
                                          "Trustee": "bob", "AccessRights": ["SendAs"]})
    assert [r["Trustee"] for r in rows(em, "Get-RecipientPermission",
                                       Identity="london-all@contoso.com")] == ["bob"]
    em.invoke("Remove-RecipientPermission", {"Identity": "support-london@contoso.com",
                                             "Trustee": "alice@contoso.com",
                                             "AccessRights": "SendAs", "Confirm": False})
    left = rows(em, "Get-RecipientPermission", Identity="support-london@contoso.com")
    assert [r["Trustee"] for r in left] == [SELF]
    by_trustee = rows(em, "Get-RecipientPermission", Trustee="bob", ResultSize="Unlimited")
    assert [r["Identity"] for r in by_trustee] == ["london-all"]


# --- calendar ----------------------------------------------------------------------------------


def calendar(em: Emulator, identity: str) -> dict[str, tuple[list[str], str]]:
    return {r["User"]: (r["AccessRights"], r["SharingPermissionFlags"])
            for r in rows(em, "Get-MailboxFolderPermission", Identity=identity)}


def test_calendar_add_stores_display_name_and_refuses_existing(em: Emulator) -> None:
    em.invoke("Add-MailboxFolderPermission", {"Identity": "finance@contoso.com:\\Calendar",
                                              "User": "carol@contoso.com",
                                              "AccessRights": ["Reviewer"]})
    assert calendar(em, "finance:\\Calendar")["Carol White"] == (["Reviewer"], "None")
    with pytest.raises(AlreadyExists, match="existing permission entry"):
        em.invoke("Add-MailboxFolderPermission", {"Identity": "finance:\\Calendar",
                                                  "User": "carol", "AccessRights": "Editor"})
    for builtin in ("Default", "Anonymous"):
        with pytest.raises(AlreadyExists):
            em.invoke("Add-MailboxFolderPermission", {"Identity": "finance:\\Calendar",
                                                      "User": builtin,
                                                      "AccessRights": "Reviewer"})


def test_default_and_anonymous_are_settable_not_removable(em: Emulator) -> None:
    em.invoke("Set-MailboxFolderPermission", {"Identity": "support-london:\\Calendar",
                                              "User": "Default", "AccessRights": "Reviewer"})
    assert calendar(em, "support-london:\\Calendar")["Default"] == (["Reviewer"], "None")
    for builtin in ("Default", "Anonymous"):
        with pytest.raises(BadParameter, match="can't be removed"):
            em.invoke("Remove-MailboxFolderPermission",
                      {"Identity": "support-london:\\Calendar", "User": builtin})


def test_sharing_flags_need_editor_and_private_items_need_delegate(em: Emulator) -> None:
    base = {"Identity": "finance:\\Calendar", "User": "bob"}
    with pytest.raises(BadParameter, match="Editor"):
        em.invoke("Add-MailboxFolderPermission", {**base, "AccessRights": "Reviewer",
                                                  "SharingPermissionFlags": "Delegate"})
    with pytest.raises(BadParameter, match="Delegate"):
        em.invoke("Add-MailboxFolderPermission", {**base, "AccessRights": "Editor",
                                                  "SharingPermissionFlags":
                                                      "CanViewPrivateItems"})
    with pytest.raises(BadParameter, match="combined"):
        em.invoke("Add-MailboxFolderPermission", {**base, "AccessRights":
                                                  ["Reviewer", "CreateItems"]})
    em.invoke("Add-MailboxFolderPermission", {**base, "AccessRights":
                                              ["ReadItems", "CreateItems"]})
    assert calendar(em, "finance:\\Calendar")["Bob Jones"][0] == ["ReadItems", "CreateItems"]


def test_set_or_remove_of_a_missing_entry_fails(em: Emulator) -> None:
    with pytest.raises(NotPresent, match="no existing permission entry"):
        em.invoke("Set-MailboxFolderPermission", {"Identity": "finance:\\Calendar",
                                                  "User": "bob", "AccessRights": "Reviewer"})
    with pytest.raises(NotPresent):
        em.invoke("Remove-MailboxFolderPermission", {"Identity": "finance:\\Calendar",
                                                     "User": "bob"})
    em.invoke("Remove-MailboxFolderPermission", {"Identity": "board-room-3:\\Calendar",
                                                 "User": "Bob Jones", "Confirm": False})
    assert "Bob Jones" not in calendar(em, "board-room-3:\\Calendar")


def test_localised_calendar_folder_name(em: Emulator) -> None:
    assert em.calendar_identity("lena@contoso.com").endswith(":\\Kalender")
    assert calendar(em, "lena@contoso.com:\\Kalender")["Default"]
    with pytest.raises(NotFound):
        em.invoke("Get-MailboxFolderPermission", {"Identity": "lena@contoso.com:\\Calendar"})


# --- auto-reply --------------------------------------------------------------------------------


def test_auto_reply_messages_come_back_wrapped_in_html(em: Emulator) -> None:
    em.invoke("Set-MailboxAutoReplyConfiguration", {
        "Identity": "carol@contoso.com", "AutoReplyState": "scheduled",
        "ExternalAudience": "Known", "InternalMessage": "Out until 4 January.",
        "ExternalMessage": "<html><body>Away</body></html>",
        "StartTime": "2026-12-20T00:00:00Z", "EndTime": "2027-01-04T00:00:00+00:00"})
    config = rows(em, "Get-MailboxAutoReplyConfiguration", Identity="carol")[0]
    assert config == {"Identity": "carol", "AutoReplyState": "Scheduled",
                      "ExternalAudience": "Known",
                      "InternalMessage": "<html><body>Out until 4 January.</body></html>",
                      "ExternalMessage": "<html><body>Away</body></html>",
                      "StartTime": "2026-12-20T00:00:00Z", "EndTime": "2027-01-04T00:00:00Z"}
    with pytest.raises(BadParameter, match="end time"):
        em.invoke("Set-MailboxAutoReplyConfiguration", {"Identity": "carol",
                                                        "EndTime": "2026-12-01T00:00:00Z"})


# --- distribution groups -----------------------------------------------------------------------


def members(em: Emulator, group: str) -> list[str]:
    return [m["PrimarySmtpAddress"] for m in rows(em, "Get-DistributionGroupMember",
                                                   Identity=group)]


def test_new_distribution_group_with_owners_and_members(em: Emulator) -> None:
    row = em.invoke("New-DistributionGroup", {
        "Name": "Team Paris", "Alias": "team-paris", "PrimarySmtpAddress":
        "team-paris@contoso.com", "ManagedBy": ["pierre@contoso.com"],
        "Members": ["Marie Dubois", "pierre"]}).value[0]
    assert row["ManagedBy"] == ["pierre"]
    assert members(em, "team-paris@contoso.com") == ["marie@contoso.com", "pierre@contoso.com"]


def test_new_distribution_group_without_owner_is_owned_by_the_caller(em: Emulator) -> None:
    row = em.invoke("New-DistributionGroup", {"Name": "Orphans"}).value[0]
    assert row["ManagedBy"] == ["Reconciler App"]
    assert row["PrimarySmtpAddress"] == "Orphans@contoso.com"


def test_member_already_present_and_absent_errors(em: Emulator) -> None:
    with pytest.raises(AlreadyExists, match="is already a member of the group"):
        em.invoke("Add-DistributionGroupMember", {"Identity": "london-all",
                                                  "Member": "bob@contoso.com"})
    with pytest.raises(NotPresent, match="isn't a member of the group"):
        em.invoke("Remove-DistributionGroupMember", {"Identity": "london-all",
                                                     "Member": "dave@contoso.com"})
    em.invoke("Add-DistributionGroupMember", {"Identity": "london-all",
                                              "Member": "dave@contoso.com",
                                              "BypassSecurityGroupManagerCheck": True})
    em.invoke("Remove-DistributionGroupMember", {"Identity": "london-all@contoso.com",
                                                 "Member": "Alice Smith", "Confirm": False})
    assert members(em, "london-all") == ["bob@contoso.com", "dave@contoso.com"]


def test_update_distribution_group_member_replaces(em: Emulator) -> None:
    em.invoke("Update-DistributionGroupMember", {"Identity": "london-all",
                                                 "Members": ["carol", "bob@contoso.com"],
                                                 "Confirm": False})
    assert sorted(members(em, "london-all")) == ["bob@contoso.com", "carol@contoso.com"]


def test_set_distribution_group_managed_by(em: Emulator) -> None:
    em.invoke("Set-DistributionGroup", {"Identity": "london-all", "ManagedBy": {
        "@odata.type": HASH, "add": ["bob@contoso.com"], "remove": ["alice"]}})
    assert rows(em, "Get-DistributionGroup", Identity="london-all")[0]["ManagedBy"] == ["bob"]
    em.invoke("Set-DistributionGroup", {"Identity": "london-all",
                                        "ManagedBy": ["alice", "carol"]})
    assert rows(em, "Get-DistributionGroup", Identity="london-all")[0]["ManagedBy"] == [
        "alice", "carol"]


def test_remove_distribution_group(em: Emulator) -> None:
    em.invoke("Remove-DistributionGroup", {"Identity": "paris-all@contoso.com",
                                           "Confirm": False})
    with pytest.raises(NotFound):
        em.invoke("Get-DistributionGroup", {"Identity": "paris-all@contoso.com"})
    assert "paris-all@contoso.com" not in {
        r["PrimarySmtpAddress"] for r in rows(em, "Get-Recipient", ResultSize="Unlimited")}


# --- tenant configuration ----------------------------------------------------------------------


def test_accepted_domains_and_retention_policies(em: Emulator) -> None:
    domains = rows(em, "Get-AcceptedDomain")
    assert [d["DomainName"] for d in domains] == ["contoso.com", "contoso.co.uk",
                                                  "contoso.onmicrosoft.com"]
    assert [d["DomainName"] for d in domains if d["Default"]] == ["contoso.com"]
    assert [d["DomainName"] for d in domains if d["InitialDomain"]] == [
        "contoso.onmicrosoft.com"]
    assert [p["Name"] for p in rows(em, "Get-RetentionPolicy")] == ["Default MRM Policy",
                                                                   "Contoso 2y"]
    with pytest.raises(NotFound):
        em.invoke("Get-RetentionPolicy", {"Identity": "Nope"})


# --- more reads and renames --------------------------------------------------------------------


def test_get_user_and_get_recipient_by_identity_and_type(em: Emulator) -> None:
    user = rows(em, "Get-User", Identity="Pierre Martin")[0]
    assert (user["UserPrincipalName"], user["Office"], user["CountryOrRegion"]) == (
        "pierre@contoso.com", "Paris", "FR")
    with pytest.raises(NotFound):
        em.invoke("Get-User", {"Identity": "london-all@contoso.com"})
    groups = rows(em, "Get-Recipient", RecipientType="MailUniversalDistributionGroup",
                  ResultSize="Unlimited")
    assert {g["PrimarySmtpAddress"] for g in groups} == {"london-all@contoso.com",
                                                         "paris-all@contoso.com"}
    rooms = rows(em, "Get-Recipient", RecipientTypeDetails=["RoomMailbox"],
                 ResultSize="Unlimited")
    assert {r["PrimarySmtpAddress"] for r in rooms} == {"board-room-3@contoso.com",
                                                        "old-room@contoso.com"}


def test_rename_moves_the_identity_and_keeps_the_grants(em: Emulator) -> None:
    em.invoke("Set-Mailbox", {"Identity": "old-projects@contoso.com", "Name": "archive-2019"})
    row = rows(em, "Get-Mailbox", Identity="archive-2019")[0]
    assert row["Identity"] == row["Name"] == "archive-2019"
    perms = rows(em, "Get-MailboxPermission", Identity="archive-2019")
    assert {p["Identity"] for p in perms} == {"archive-2019"}
    assert "bob" in {p["User"] for p in perms}
    with pytest.raises(AlreadyExists):
        em.invoke("Set-Mailbox", {"Identity": "archive-2019", "Name": "alice"})


def test_equipment_mailbox(em: Emulator) -> None:
    row = em.invoke("New-Mailbox", {"Equipment": True, "Name": "Projector 1",
                                    "Alias": "projector-1"}).value[0]
    assert row["RecipientTypeDetails"] == "EquipmentMailbox"


def test_refused_group_set_changes_nothing_and_no_op_warns(em: Emulator) -> None:
    before = em.to_snapshot()
    with pytest.raises(NotFound):
        em.invoke("Set-DistributionGroup", {"Identity": "london-all", "DisplayName": "X",
                                            "ManagedBy": ["nobody@contoso.com"]})
    assert em.to_snapshot() == before
    result = em.invoke("Set-DistributionGroup", {"Identity": "london-all",
                                                 "DisplayName": "London All"})
    assert "no settings" in result.warnings[0]


def test_unmodelled_parameter_is_refused_not_ignored(em: Emulator) -> None:
    with pytest.raises(BadParameter, match="does not implement -MaxSendSize"):
        em.invoke("Set-Mailbox", {"Identity": "alice", "MaxSendSize": "35MB"})


# --- proxy addresses (docs/format.md §9) ---------------------------------------------------


def test_every_recipient_mailbox_and_group_lists_its_proxy_addresses(em: Emulator) -> None:
    # The seed predates EmailAddresses: each object gets its primary address, as SMTP:.
    for cmdlet in ("Get-Recipient", "Get-Mailbox", "Get-DistributionGroup"):
        for row in rows(em, cmdlet, ResultSize="Unlimited"):
            assert f"SMTP:{row['PrimarySmtpAddress']}" in row["EmailAddresses"], (cmdlet, row)
    created = em.invoke("New-Mailbox", {"Shared": True, "Name": "Help", "Alias": "help",
                                        "PrimarySmtpAddress": "help@contoso.com"}).value[0]
    assert created["EmailAddresses"] == ["SMTP:help@contoso.com"]
    recipient = rows(em, "Get-Recipient", Identity="help@contoso.com")[0]
    assert recipient["EmailAddresses"] == ["SMTP:help@contoso.com"]


def test_proxy_addresses_survive_soft_delete_and_select(em: Emulator) -> None:
    em.invoke("Remove-Mailbox", {"Identity": "old-projects@contoso.com", "Confirm": False})
    soft = em.invoke("Get-Mailbox", {"SoftDeletedMailbox": True, "ResultSize": "Unlimited"},
                     ["PrimarySmtpAddress", "EmailAddresses"]).value
    assert soft == [{"PrimarySmtpAddress": "old-projects@contoso.com",
                     "EmailAddresses": ["SMTP:old-projects@contoso.com"]}]
    assert em.to_snapshot()["soft_deleted_mailboxes"][0]["EmailAddresses"] == [
        "SMTP:old-projects@contoso.com"]


def test_a_secondary_proxy_address_is_held_and_resolves(clock: Any, wall: Any) -> None:
    snap = seed()
    carol = next(r for r in snap["recipients"] if r["PrimarySmtpAddress"].startswith("carol"))
    carol["EmailAddresses"] = [f"SMTP:{carol['PrimarySmtpAddress']}", "smtp:help@contoso.com"]
    em = Emulator(snap, clock=clock, wall_clock=wall)
    assert rows(em, "Get-Recipient", Identity="help@contoso.com")[0]["Name"] == carol["Name"]
    with pytest.raises(AlreadyExists) as refused:
        em.invoke("New-Mailbox", {"Shared": True, "Name": "Help", "Alias": "help",
                                  "PrimarySmtpAddress": "help@contoso.com"})
    assert refused.value.exception_type == "ProxyAddressExistsException"


# --- grantee kinds (GATEWAY-FACTS §j) -----------------------------------------------------------


def test_a_plain_distribution_group_is_refused_as_grantee(em: Emulator) -> None:
    em.invoke("New-DistributionGroup", {"Name": "Sales", "Alias": "sales",
                                        "PrimarySmtpAddress": "sales@contoso.com",
                                        "ManagedBy": ["alice@contoso.com"]})
    em.invoke("New-DistributionGroup", {"Name": "Sec", "Alias": "sec", "Type": "Security",
                                        "PrimarySmtpAddress": "sec@contoso.com",
                                        "ManagedBy": ["alice@contoso.com"]})
    def calls(group: str) -> list[tuple[str, dict[str, Any]]]:
        target = "support-london@contoso.com"
        return [
            ("Add-MailboxPermission", {"Identity": target, "User": group,
                                       "AccessRights": ["FullAccess"]}),
            ("Add-RecipientPermission", {"Identity": target, "Trustee": group,
                                         "AccessRights": ["SendAs"]}),
            ("Set-Mailbox", {"Identity": target, "GrantSendOnBehalfTo": {
                "@odata.type": "#Exchange.GenericHashTable", "add": [group]}}),
        ]

    for cmdlet, params in calls("sales@contoso.com"):
        with pytest.raises(BadParameter, match="not a security principal"):
            em.invoke(cmdlet, params)
    # A mail-enabled security group is a security principal.
    for cmdlet, params in calls("sec@contoso.com"):
        em.invoke(cmdlet, params)
    full = rows(em, "Get-MailboxPermission", Identity="support-london@contoso.com")
    assert any(r["User"] == "Sec" for r in full)


@pytest.mark.parametrize("kind", ["MailContact", "DynamicDistributionGroup"])
def test_a_contact_or_dynamic_group_is_no_grantee(kind: str) -> None:
    snap = seed()
    snap["recipients"].append({"Name": "outsider", "PrimarySmtpAddress": "outsider@contoso.com",
                               "DisplayName": "Outsider", "RecipientTypeDetails": kind,
                               "Guid": "0c0c0c0c-0000-4000-8000-00000000abcd"})
    em = Emulator(snap)
    with pytest.raises(BadParameter, match="not a security principal"):
        em.invoke("Add-MailboxPermission", {"Identity": "support-london@contoso.com",
                                            "User": "outsider@contoso.com",
                                            "AccessRights": ["FullAccess"]})


def test_new_distribution_group_makes_a_room_list(em: Emulator) -> None:
    em.invoke("New-DistributionGroup", {"Name": "Rooms", "RoomList": True,
                                        "PrimarySmtpAddress": "rooms@contoso.com",
                                        "ManagedBy": ["alice@contoso.com"]})
    row = rows(em, "Get-DistributionGroup", Identity="rooms@contoso.com")[0]
    assert row["RecipientTypeDetails"] == "RoomList"
