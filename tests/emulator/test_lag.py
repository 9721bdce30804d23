"""Read-after-write lag on an injected clock: nothing sleeps."""

from __future__ import annotations

import pytest

from reconciler.emulator import Emulator
from reconciler.live.backend import NotFound
from tests.emulator.conftest import FakeClock, seed

SELF = "NT AUTHORITY\\SELF"


@pytest.fixture
def lagged(clock: FakeClock) -> Emulator:
    return Emulator(seed(), lag_seconds=30, clock=clock)


def addresses(em: Emulator) -> set[str]:
    return {m["PrimarySmtpAddress"] for m in em.invoke(
        "Get-Mailbox", {"ResultSize": "Unlimited"}).value}


def test_new_mailbox_is_not_found_until_the_lag_has_passed(lagged: Emulator,
                                                           clock: FakeClock) -> None:
    lagged.invoke("New-Mailbox", {"Shared": True, "Name": "Sales London",
                                  "Alias": "sales-london"})
    with pytest.raises(NotFound) as e:
        lagged.invoke("Get-Mailbox", {"Identity": "sales-london@contoso.com"})
    assert e.value.exception_type == "ManagementObjectNotFoundException"
    assert "sales-london@contoso.com" not in addresses(lagged)
    # Writes see the truth: granting on the new mailbox works at once.
    lagged.invoke("Add-MailboxPermission", {"Identity": "sales-london@contoso.com",
                                            "User": "bob", "AccessRights": "FullAccess"})
    clock.advance(29.9)
    with pytest.raises(NotFound):
        lagged.invoke("Get-MailboxPermission", {"Identity": "sales-london@contoso.com"})
    clock.advance(0.1)
    assert lagged.invoke("Get-Mailbox", {"Identity": "sales-london@contoso.com"}).value
    assert "sales-london@contoso.com" in addresses(lagged)


def test_writes_can_be_made_to_lag_too(clock: FakeClock) -> None:
    em = Emulator(seed(), lag_seconds=5, clock=clock, lag_applies_to_writes=True)
    em.invoke("New-Mailbox", {"Shared": True, "Name": "Sales London", "Alias": "sales-london"})
    with pytest.raises(NotFound):
        em.invoke("Add-MailboxPermission", {"Identity": "sales-london@contoso.com",
                                            "User": "bob", "AccessRights": "FullAccess"})
    clock.advance(5)
    em.invoke("Add-MailboxPermission", {"Identity": "sales-london@contoso.com",
                                        "User": "bob", "AccessRights": "FullAccess"})


def test_removed_grant_is_still_listed_until_the_lag_has_passed(lagged: Emulator,
                                                                clock: FakeClock) -> None:
    def full_access() -> list[str]:
        return [p["User"] for p in lagged.invoke(
            "Get-MailboxPermission", {"Identity": "finance@contoso.com"}).value
            if not p["IsInherited"] and p["User"] != SELF]

    def send_as() -> list[str]:
        return [p["Trustee"] for p in lagged.invoke(
            "Get-RecipientPermission", {"Identity": "support-london@contoso.com"}).value
            if p["Trustee"] != SELF]

    lagged.invoke("Remove-MailboxPermission", {"Identity": "finance@contoso.com",
                                               "User": "alice", "AccessRights": "FullAccess"})
    lagged.invoke("Remove-RecipientPermission", {"Identity": "support-london@contoso.com",
                                                 "Trustee": "alice", "AccessRights": "SendAs"})
    assert full_access() == ["alice"] and send_as() == ["alice@contoso.com"]
    # The truth has changed already: a snapshot written now holds no such grant.
    snap = lagged.to_snapshot()
    assert not any(p["User"] == "alice" for p in snap["mailbox_permissions"])
    clock.advance(30)
    assert full_access() == [] and send_as() == []


def test_removed_calendar_entry_and_member_linger(lagged: Emulator, clock: FakeClock) -> None:
    lagged.invoke("Remove-MailboxFolderPermission", {"Identity": "board-room-3:\\Calendar",
                                                     "User": "bob"})
    lagged.invoke("Remove-DistributionGroupMember", {"Identity": "london-all",
                                                     "Member": "bob"})
    users = [p["User"] for p in lagged.invoke("Get-MailboxFolderPermission",
                                              {"Identity": "board-room-3:\\Calendar"}).value]
    assert "Bob Jones" in users
    assert "bob@contoso.com" in [m["PrimarySmtpAddress"] for m in lagged.invoke(
        "Get-DistributionGroupMember", {"Identity": "london-all"}).value]
    clock.advance(31)
    assert "bob@contoso.com" not in [m["PrimarySmtpAddress"] for m in lagged.invoke(
        "Get-DistributionGroupMember", {"Identity": "london-all"}).value]


def test_removed_mailbox_is_still_listed_until_the_lag_has_passed(lagged: Emulator,
                                                                  clock: FakeClock) -> None:
    lagged.invoke("Remove-Mailbox", {"Identity": "old-room@contoso.com"})
    assert "old-room@contoso.com" in addresses(lagged)
    assert lagged.invoke("Get-Mailbox", {"Identity": "old-room@contoso.com"}).value
    clock.advance(30)
    assert "old-room@contoso.com" not in addresses(lagged)
    with pytest.raises(NotFound):
        lagged.invoke("Get-Mailbox", {"Identity": "old-room@contoso.com"})


def test_no_lag_by_default(em: Emulator) -> None:
    em.invoke("New-Mailbox", {"Shared": True, "Name": "Sales London", "Alias": "sales-london"})
    assert em.invoke("Get-Mailbox", {"Identity": "sales-london"}).value
