"""Random sequences of calls keep the tenant coherent: whatever Exchange accepts or refuses,
the snapshot stays valid, round-trips unchanged, and reads agree with it."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.emulator import Emulator, validate_snapshot
from reconciler.live.backend import ExchangeError
from tests.emulator.conftest import seed

MAILBOXES = ["alice", "finance@contoso.com", "Support London", "board-room-3", "ceo-office",
             "old-projects@contoso.com", "new-one@contoso.com"]
PRINCIPALS = ["alice@contoso.com", "Bob Jones", "carol", "dave@contoso.com", "pierre",
              "london-all@contoso.com", "nobody@contoso.com"]
HASH = "#Exchange.GenericHashTable"

calls = st.one_of(
    st.tuples(st.just("Add-MailboxPermission"), st.fixed_dictionaries({
        "Identity": st.sampled_from(MAILBOXES), "User": st.sampled_from(PRINCIPALS),
        "AccessRights": st.sampled_from([["FullAccess"], ["FullAccess", "ReadPermission"]]),
        "AutoMapping": st.booleans()})),
    st.tuples(st.just("Remove-MailboxPermission"), st.fixed_dictionaries({
        "Identity": st.sampled_from(MAILBOXES), "User": st.sampled_from(PRINCIPALS),
        "AccessRights": st.just(["FullAccess"])})),
    st.tuples(st.just("Add-RecipientPermission"), st.fixed_dictionaries({
        "Identity": st.sampled_from([*MAILBOXES, "london-all"]),
        "Trustee": st.sampled_from(PRINCIPALS), "AccessRights": st.just("SendAs")})),
    st.tuples(st.just("Remove-RecipientPermission"), st.fixed_dictionaries({
        "Identity": st.sampled_from([*MAILBOXES, "london-all"]),
        "Trustee": st.sampled_from(PRINCIPALS), "AccessRights": st.just("SendAs")})),
    st.tuples(st.sampled_from(["Add-MailboxFolderPermission", "Set-MailboxFolderPermission"]),
              st.fixed_dictionaries({
                  "Identity": st.sampled_from(MAILBOXES).map(lambda m: f"{m}:\\Calendar"),
                  "User": st.sampled_from([*PRINCIPALS, "Default", "Anonymous"]),
                  "AccessRights": st.sampled_from([["Editor"], ["Reviewer"],
                                                   ["ReadItems", "FolderVisible"]])},
                  optional={"SharingPermissionFlags": st.sampled_from(
                      ["None", "Delegate", "Delegate,CanViewPrivateItems"])})),
    st.tuples(st.just("Remove-MailboxFolderPermission"), st.fixed_dictionaries({
        "Identity": st.sampled_from(MAILBOXES).map(lambda m: f"{m}:\\Calendar"),
        "User": st.sampled_from([*PRINCIPALS, "Default"])})),
    st.tuples(st.just("Set-Mailbox"), st.fixed_dictionaries({
        "Identity": st.sampled_from(MAILBOXES)}, optional={
        "GrantSendOnBehalfTo": st.one_of(
            st.lists(st.sampled_from(PRINCIPALS[:5]), max_size=3),
            st.fixed_dictionaries({"@odata.type": st.just(HASH),
                                   "add": st.lists(st.sampled_from(PRINCIPALS[:5]),
                                                   max_size=2),
                                   "remove": st.lists(st.sampled_from(PRINCIPALS[:5]),
                                                      max_size=2)})),
        "ForwardingAddress": st.sampled_from([None, *PRINCIPALS[:4]]),
        "Office": st.sampled_from(["London", "Paris", ""]),
        "Type": st.sampled_from(["Shared", "Regular", "Room"]),
        "DisplayName": st.sampled_from(["Renamed", "Bob Jones", "Finance"])})),
    st.tuples(st.just("New-Mailbox"), st.fixed_dictionaries({
        "Shared": st.just(True), "Name": st.sampled_from(["New One", "Finance"]),
        "Alias": st.just("new-one")})),
    st.tuples(st.just("Remove-Mailbox"), st.fixed_dictionaries({
        "Identity": st.sampled_from(MAILBOXES)})),
    st.tuples(st.just("Undo-SoftDeletedMailbox"), st.fixed_dictionaries({
        "SoftDeletedObject": st.sampled_from(MAILBOXES)})),
    st.tuples(st.sampled_from(["Add-DistributionGroupMember",
                               "Remove-DistributionGroupMember"]),
              st.fixed_dictionaries({"Identity": st.sampled_from(["london-all", "paris-all"]),
                                     "Member": st.sampled_from(PRINCIPALS)})),
    st.tuples(st.sampled_from(["Enable-Mailbox", "Disable-Mailbox"]), st.fixed_dictionaries({
        "Identity": st.sampled_from(MAILBOXES), "Archive": st.just(True)})),
)


def _key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(calls, max_size=25))
def test_any_sequence_of_calls_keeps_the_tenant_coherent(
        sequence: list[tuple[str, dict[str, Any]]]) -> None:
    em = Emulator(seed())
    for cmdlet, params in sequence:
        before = json.dumps(em.to_snapshot())
        try:
            em.invoke(cmdlet, params)
        except ExchangeError:
            # Refused as Exchange would refuse it: nothing may have changed.
            assert json.dumps(em.to_snapshot()) == before, (cmdlet, params)
    snap = em.to_snapshot()
    validate_snapshot(snap)
    assert json.dumps(Emulator(snap).to_snapshot()) == json.dumps(snap)

    for mailbox in snap["mailboxes"]:
        identity = mailbox["Identity"]
        got = em.invoke("Get-MailboxPermission", {"Identity": identity}).value
        stored = [r for r in snap["mailbox_permissions"] if r["Identity"] == identity]
        assert Counter(map(_key, got)) == Counter(map(_key, stored))
        assert any(r["User"] == "NT AUTHORITY\\SELF" for r in got)
        calendar = em.invoke("Get-MailboxFolderPermission",
                             {"Identity": em.calendar_identity(identity)}).value
        assert {"Default", "Anonymous"} <= {r["User"] for r in calendar}
        # Flags are set only with Editor, but a Set to another role that leaves them out keeps
        # them (Set-MailboxFolderPermission.md, Example 5): any entry may still be a delegate.
        flags = {r["SharingPermissionFlags"] for r in calendar}
        assert flags <= {"None", "Delegate", "Delegate,CanViewPrivateItems"}
    addresses = [r["PrimarySmtpAddress"].lower() for r in snap["recipients"]]
    assert len(addresses) == len(set(addresses))
    soft = {m["PrimarySmtpAddress"].lower() for m in snap.get("soft_deleted_mailboxes", [])}
    assert not soft & set(addresses)
