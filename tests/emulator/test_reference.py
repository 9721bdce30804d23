"""The official reference as a gate: what Exchange would reject is rejected the same way."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.emulator.reference import check_call, load_reference
from reconciler.emulator.tenant import _HANDLERS
from reconciler.live.backend import BadParameter, Forbidden

HASH = "#Exchange.GenericHashTable"


def test_unknown_cmdlet_is_forbidden_as_exchange_answers_403() -> None:
    with pytest.raises(Forbidden) as e:
        check_call("Get-Mailboxx", {"Identity": "alice"})
    assert e.value.status == 403


def test_unknown_parameter_is_named_in_exchange_words() -> None:
    with pytest.raises(BadParameter) as e:
        check_call("Get-Mailbox", {"Identity": "alice", "Foo": 1})
    assert e.value.message == "A parameter cannot be found that matches parameter name 'Foo'."


def test_on_premises_only_parameter_is_unknown_in_exchange_online() -> None:
    with pytest.raises(BadParameter, match="'PrimarySmtpAddress'"):
        check_call("Set-Mailbox", {"Identity": "alice", "PrimarySmtpAddress": "a@contoso.com"})


def test_names_bind_case_insensitively_and_common_parameters_are_accepted() -> None:
    check_call("remove-mailbox", {"identity": "alice", "Confirm": False, "ErrorAction": "Stop"})
    check_call("Add-MailboxPermission", {"Identity": "a", "User": "b",
                                         "AccessRights": ["FullAccess"], "WhatIf": True})


def test_value_outside_documented_values_is_rejected_naming_parameter_and_value() -> None:
    with pytest.raises(BadParameter) as e:
        check_call("Set-MailboxAutoReplyConfiguration", {"Identity": "a",
                                                         "AutoReplyState": "On"})
    assert "'AutoReplyState'" in e.value.message and '"On"' in e.value.message


def test_each_element_of_an_array_is_checked() -> None:
    check_call("Add-MailboxPermission", {"Identity": "a", "User": "b",
                                         "AccessRights": ["FullAccess", "ReadPermission"]})
    with pytest.raises(BadParameter, match="SendAs"):
        check_call("Add-MailboxPermission", {"Identity": "a", "User": "b",
                                             "AccessRights": ["FullAccess", "SendAs"]})


def test_flag_values_split_on_commas() -> None:
    ok = {"Identity": "a:\\Calendar", "User": "b", "AccessRights": ["Editor"],
          "SharingPermissionFlags": "Delegate,CanViewPrivateItems"}
    check_call("Set-MailboxFolderPermission", ok)
    with pytest.raises(BadParameter, match="Private"):
        check_call("Set-MailboxFolderPermission", {**ok, "SharingPermissionFlags":
                                                   "Delegate,Private"})


def test_calendar_roles_individual_rights_and_calendar_only_roles_are_all_documented() -> None:
    for rights in (["Reviewer"], ["AvailabilityOnly"], ["LimitedDetails"],
                   ["ReadItems", "FolderVisible"], ["None"]):
        check_call("Add-MailboxFolderPermission", {"Identity": "a:\\Calendar", "User": "b",
                                                   "AccessRights": rights})
    with pytest.raises(BadParameter):
        check_call("Add-MailboxFolderPermission", {"Identity": "a:\\Calendar", "User": "b",
                                                   "AccessRights": ["FullAccess"]})


def test_missing_mandatory_parameter_is_named() -> None:
    with pytest.raises(BadParameter) as e:
        check_call("Add-RecipientPermission", {"Identity": "a", "AccessRights": "SendAs"})
    assert "missing mandatory parameters: Trustee" in e.value.message


def test_parameters_from_two_parameter_sets_are_rejected() -> None:
    # Owner and User belong to different parameter sets of Get-MailboxPermission.
    with pytest.raises(BadParameter, match="Parameter set cannot be resolved"):
        check_call("Get-MailboxPermission", {"Identity": "a", "Owner": True, "User": "b"})


def test_null_or_empty_mandatory_identity_on_a_write_is_a_binding_error() -> None:
    for empty in (None, "", "  "):
        with pytest.raises(BadParameter, match="Cannot bind argument to parameter 'Identity'"):
            check_call("Remove-Mailbox", {"Identity": empty})


def test_switches_and_booleans_take_booleans() -> None:
    check_call("New-Mailbox", {"Name": "x", "Shared": True})
    check_call("Add-MailboxPermission", {"Identity": "a", "User": "b",
                                         "AccessRights": "FullAccess", "AutoMapping": False})
    with pytest.raises(BadParameter):
        check_call("New-Mailbox", {"Name": "x", "Shared": "yes"})
    with pytest.raises(BadParameter, match="AutoMapping"):
        check_call("Add-MailboxPermission", {"Identity": "a", "User": "b",
                                             "AccessRights": "FullAccess", "AutoMapping": "no"})


def test_counts_and_dates_are_checked() -> None:
    check_call("Get-Mailbox", {"ResultSize": "Unlimited"})
    check_call("Get-Mailbox", {"ResultSize": 500})
    with pytest.raises(BadParameter, match="ResultSize"):
        check_call("Get-Mailbox", {"ResultSize": "all"})
    with pytest.raises(BadParameter, match="ResultSize"):
        check_call("Get-Mailbox", {"ResultSize": "35MB"})
    check_call("Set-Mailbox", {"Identity": "a", "MaxSendSize": "35MB"})
    check_call("Set-Mailbox", {"Identity": "a", "ProhibitSendQuota": "49.5 GB (53,150,220,288 "
                                                                   "bytes)"})
    check_call("Set-Mailbox", {"Identity": "a", "MaxSendSize": "Unlimited"})
    with pytest.raises(BadParameter, match="ResourceCapacity"):
        check_call("Set-Mailbox", {"Identity": "a", "ResourceCapacity": "twelve"})
    check_call("Set-MailboxAutoReplyConfiguration", {"Identity": "a",
                                                     "StartTime": "2026-12-20T00:00:00Z"})
    with pytest.raises(BadParameter, match="StartTime"):
        check_call("Set-MailboxAutoReplyConfiguration", {"Identity": "a",
                                                         "StartTime": "next monday"})


def test_add_remove_hashtable_only_on_multi_valued_parameters() -> None:
    check_call("Set-Mailbox", {"Identity": "a", "GrantSendOnBehalfTo":
                               {"@odata.type": HASH, "add": ["b"], "remove": ["c"]}})
    check_call("Set-DistributionGroup", {"Identity": "g", "ManagedBy":
                                         {"@odata.type": HASH, "add": ["b"]}})
    with pytest.raises(BadParameter, match="DisplayName"):
        check_call("Set-Mailbox", {"Identity": "a", "DisplayName":
                                   {"@odata.type": HASH, "add": ["b"]}})
    with pytest.raises(BadParameter):
        check_call("Set-Mailbox", {"Identity": "a", "DisplayName": ["one", "two"]})


def test_every_emulated_cmdlet_and_parameter_exists_in_the_reference() -> None:
    reference = load_reference()
    for cmdlet, (_, supported, _spelled) in _HANDLERS.items():
        entry = reference[cmdlet.lower()]
        assert entry.name == cmdlet
        unknown = sorted(p for p in supported if p not in entry.parameters)
        assert not unknown, f"{cmdlet}: {unknown}"


def test_issue_cmdlets_are_all_emulated() -> None:
    wanted = str.split("""Get-Mailbox Get-Recipient Get-User New-Mailbox Set-Mailbox Remove-Mailbox
    Undo-SoftDeletedMailbox Enable-Mailbox Disable-Mailbox Get-MailboxPermission
    Add-MailboxPermission Remove-MailboxPermission Get-RecipientPermission
    Add-RecipientPermission Remove-RecipientPermission Get-MailboxFolderPermission
    Add-MailboxFolderPermission Set-MailboxFolderPermission Remove-MailboxFolderPermission
    Get-MailboxAutoReplyConfiguration Set-MailboxAutoReplyConfiguration Get-DistributionGroup
    New-DistributionGroup Set-DistributionGroup Remove-DistributionGroup
    Get-DistributionGroupMember Add-DistributionGroupMember Remove-DistributionGroupMember
    Update-DistributionGroupMember Get-AcceptedDomain Get-RetentionPolicy""")
    assert sorted(set(wanted) - set(_HANDLERS)) == []


def _sample(param: Any) -> Any:
    if param.is_switch or param.is_boolean:
        return True
    kind = param.type.removeprefix("System.")
    if kind in ("Int32", "Unlimited"):
        return 1
    if kind == "DateTime":
        return "2026-12-20T00:00:00Z"
    if param.values:
        return sorted(param.values.values())[0]
    return ["x"] if param.multi_valued else "x"


def test_every_documented_parameter_set_accepts_documented_values() -> None:
    """No false refusals: each Exchange Online parameter set, with its mandatory parameters
    and then each optional one, passes with a value of the documented type."""
    checked = 0
    for entry in load_reference().values():
        by_name = {p.name.lower(): p for p in entry.parameters.values()}
        for pset in entry.parameter_sets:
            base = {by_name[n].name: _sample(by_name[n]) for n in pset.required}
            check_call(entry.name, base)
            for name in sorted(pset.allowed - pset.required):
                check_call(entry.name, {**base, by_name[name].name: _sample(by_name[name])})
                checked += 1
    assert checked > 1000
