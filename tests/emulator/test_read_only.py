"""A read-only tenant (what a plan against ``snapshot:DIR`` reads) answers every read the reader
makes as the plain emulator does: what it skips (copying rows, putting the tenant in order for
each listing, resolving a stored calendar grantee again for each entry) changes no answer."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.emulator import Emulator
from tests.emulator.conftest import seed
from tests.snapshots import add_user

TENANT_WIDE = (("Get-Recipient", {"ResultSize": "Unlimited"}),
               ("Get-Mailbox", {"ResultSize": "Unlimited"}),
               ("Get-DistributionGroup", {"ResultSize": "Unlimited"}),
               ("Get-RecipientPermission", {"ResultSize": "Unlimited"}))


def twins() -> dict[str, Any]:
    """The seed tenant with two users sharing a display name, both granted on every
    calendar: one entry stored by the user's Name, the other by the shared display name."""
    snap = seed()
    add_user(snap, "sam.lee", "Sam Lee")
    add_user(snap, "sam.lee2", "Sam Lee")
    for row in snap["mailboxes"]:
        folder = next(r["Identity"] for r in snap["mailbox_folder_permissions"]
                      if r["Identity"].startswith(f"{row['Identity']}:\\"))
        snap["mailbox_folder_permissions"] += [
            {"Identity": folder, "User": "sam.lee", "AccessRights": ["Reviewer"],
             "SharingPermissionFlags": "None"},
            {"Identity": folder, "User": "Sam Lee", "AccessRights": ["Editor"],
             "SharingPermissionFlags": "Delegate"}]
    return snap


def per_mailbox(em: Emulator) -> list[tuple[str, dict[str, Any], list[str] | None]]:
    calls: list[tuple[str, dict[str, Any], list[str] | None]] = []
    for row in em.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}).value:
        mailbox = str(row["PrimarySmtpAddress"])
        calls += [
            ("Get-MailboxPermission",
             {"Identity": mailbox, "IncludeUnresolvedPermissions": True}, None),
            ("Get-MailboxFolderStatistics", {"Identity": mailbox, "FolderScope": "Calendar"},
             ["Name", "FolderPath", "FolderType"]),
            ("Get-MailboxFolderPermission", {"Identity": em.calendar_identity(mailbox)}, None),
            ("Get-MailboxAutoReplyConfiguration", {"Identity": mailbox}, None)]
    return calls


@pytest.mark.parametrize("rounds", [1, 2])
def test_a_read_only_tenant_answers_every_read_as_the_plain_one(rounds: int) -> None:
    snap = twins()
    plain, read_only = Emulator(copy.deepcopy(snap)), Emulator(snap, read_only=True)
    calls = [(cmdlet, params, None) for cmdlet, params in TENANT_WIDE] + per_mailbox(plain)
    assert any(c[0] == "Get-MailboxFolderPermission" for c in calls)
    for _ in range(rounds):  # a second round answers from what the first one remembered
        for cmdlet, params, select in calls:
            assert read_only.invoke(cmdlet, params, select).value == \
                plain.invoke(cmdlet, params, select).value, (cmdlet, params)
    shown = {r["User"] for cmdlet, params, _ in calls if cmdlet == "Get-MailboxFolderPermission"
             for r in read_only.invoke(cmdlet, params).value}
    assert {"Sam Lee", "Default", "Anonymous"} <= shown


def test_a_read_only_emulator_says_so_as_a_backend() -> None:
    from reconciler.emulator import Emulator
    from tests.emulator.conftest import seed

    assert Emulator(seed(), read_only=True).read_only
    assert not Emulator(seed()).read_only
