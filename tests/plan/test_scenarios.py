"""Planner scenarios: each rule of docs/format.md §4 and §7 as a tiny desired tree against the
emulated tenant, checking the changes, the exact operations, and that carrying them out
converges (a second plan says nothing)."""

from __future__ import annotations

import pytest

from reconciler.emulator import Emulator
from reconciler.errors import InputError
from tests.plan.conftest import Scenario, assert_accepted_by_reference, by_address, cmdlets

LONDON = "sites/london/mailboxes.yaml"
PARIS = "sites/paris/mailboxes.yaml"
SUPPORT = "contoso/london/shared_mailbox/support@contoso.com"


def _support(s: Scenario, office: str = "London") -> Scenario:
    s.live("New-Mailbox", Shared=True, Name="Support", Alias="support",
           DisplayName="Support", PrimarySmtpAddress="support@contoso.com")
    return s.live("Set-Mailbox", Identity="support@contoso.com", Office=office)


def test_create_shared_mailbox_with_grants_converges(scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Sales London
            alias: sales-london
            retention_policy: Contoso 2y
            archive: true
            custom_attributes: {3: sales}
            permissions:
              - {user: bob@contoso.com, access: [FullAccess, SendAs, SendOnBehalf],
                 automapping: false}
            calendar_permissions:
              - {user: carol@contoso.com, role: Editor, delegate: true}
              - {user: Default, role: LimitedDetails}
        """)
    plan = scenario.converge()
    change = by_address(plan)["contoso/london/shared_mailbox/sales-london@contoso.com"]
    assert change.action == "create"
    ops = cmdlets(change)
    assert ops[0] == "New-Mailbox"
    assert ops.index("Add-MailboxPermission") > 0 and "Add-RecipientPermission" in ops
    assert "Enable-Mailbox" in ops
    calendar = {op.parameters["User"]: op for op in change.operations
                if "MailboxFolderPermission" in op.cmdlet}
    assert calendar["Default"].cmdlet == "Set-MailboxFolderPermission"
    assert calendar["carol@contoso.com"].cmdlet == "Add-MailboxFolderPermission"
    assert calendar["carol@contoso.com"].parameters["SharingPermissionFlags"] == "Delegate"
    full = next(op for op in change.operations if op.cmdlet == "Add-MailboxPermission")
    assert full.parameters["AutoMapping"] is False
    assert_accepted_by_reference(plan)


def test_principals_given_as_guid_and_display_name_are_not_drift(scenario: Scenario) -> None:
    _support(scenario)
    # Exchange reports grantees by display name or by GUID; the YAML uses addresses.
    scenario.live("Add-MailboxPermission", Identity="support@contoso.com", User="Bob Jones",
                  AccessRights=["FullAccess"], InheritanceType="All")
    scenario.live("Add-RecipientPermission", Identity="support@contoso.com",
                  Trustee="9171c7d6-40ba-5a53-a1f8-4c4d68942677", AccessRights=["SendAs"],
                  Confirm=False)
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support
            permissions:
              - {user: BOB@contoso.com, access: [SendAs, FullAccess]}
        """)
    assert not scenario.plan().has_changes


def test_lists_are_exact_and_system_entries_untouched(scenario: Scenario) -> None:
    _support(scenario)
    scenario.live("Add-MailboxPermission", Identity="support@contoso.com", User="carol",
                  AccessRights=["FullAccess"], InheritanceType="All")
    scenario.live("Add-RecipientPermission", Identity="support@contoso.com", Trustee="carol",
                  AccessRights=["SendAs"], Confirm=False)
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support
            permissions: []
        """)
    plan = scenario.converge()
    change = by_address(plan)[SUPPORT]
    assert cmdlets(change) == ["Remove-MailboxPermission", "Remove-RecipientPermission"]
    assert all("SELF" not in str(op.parameters) for op in change.operations)


def test_omitted_settings_are_unmanaged(scenario: Scenario) -> None:
    _support(scenario)
    scenario.live("Add-RecipientPermission", Identity="support@contoso.com", Trustee="carol",
                  AccessRights=["SendAs"], Confirm=False)
    scenario.live("Set-Mailbox", Identity="support@contoso.com",
                  ForwardingSmtpAddress="smtp:x@partner.example")
    scenario.yaml(LONDON, "shared_mailboxes:\n  - name: Support\n")
    assert not scenario.plan().has_changes


def test_send_on_behalf_is_one_set_mailbox_with_add_and_remove(scenario: Scenario) -> None:
    _support(scenario)
    scenario.live("Set-Mailbox", Identity="support@contoso.com", GrantSendOnBehalfTo=["carol"])
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support
            permissions:
              - {user: bob@contoso.com, access: [SendOnBehalf]}
        """)
    plan = scenario.converge()
    ops = by_address(plan)[SUPPORT].operations
    assert [op.cmdlet for op in ops] == ["Set-Mailbox"]
    table = ops[0].parameters["GrantSendOnBehalfTo"]
    assert table["add"] == ["bob@contoso.com"] and table["remove"] == ["carol@contoso.com"]
    assert_accepted_by_reference(plan)


def test_automapping_change_is_remove_then_add(scenario: Scenario) -> None:
    _support(scenario)
    scenario.live("Add-MailboxPermission", Identity="support@contoso.com", User="bob",
                  AccessRights=["FullAccess"], InheritanceType="All", AutoMapping=True)
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support
            permissions:
              - {user: bob@contoso.com, access: [FullAccess], automapping: false}
        """)
    plan = scenario.plan()
    assert cmdlets(by_address(plan)[SUPPORT]) == ["Remove-MailboxPermission",
                                                  "Add-MailboxPermission"]


def test_calendar_set_when_present_add_when_absent_and_default_only_when_declared(
        scenario: Scenario) -> None:
    _support(scenario)
    scenario.live("Add-MailboxFolderPermission", Identity="support@contoso.com:\\Calendar",
                  User="carol", AccessRights=["Reviewer"])
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support
            calendar_permissions:
              - {user: carol@contoso.com, role: Editor, delegate: true, private_items: true}
              - {user: bob@contoso.com, role: Reviewer}
        """)
    plan = scenario.converge()
    ops = {op.parameters["User"]: op for op in by_address(plan)[SUPPORT].operations}
    assert set(ops) == {"carol@contoso.com", "bob@contoso.com"}  # Default untouched
    assert ops["carol@contoso.com"].cmdlet == "Set-MailboxFolderPermission"
    assert ops["carol@contoso.com"].parameters["SharingPermissionFlags"] == \
        "Delegate,CanViewPrivateItems"
    assert ops["bob@contoso.com"].cmdlet == "Add-MailboxFolderPermission"
    assert_accepted_by_reference(plan)


def test_calendar_default_entry_is_set_never_added_or_removed(scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        user_mailboxes:
          - user: alice@contoso.com
            calendar_permissions:
              - {user: Default, role: Reviewer}
        """)
    plan = scenario.converge()
    change = by_address(plan)["contoso/london/user_mailbox/alice@contoso.com"]
    assert cmdlets(change) == ["Set-MailboxFolderPermission"]
    assert change.operations[0].parameters["User"] == "Default"


def test_move_between_sites_has_no_operations(scenario: Scenario) -> None:
    _support(scenario, office="Paris")
    scenario.yaml(LONDON, "shared_mailboxes:\n  - name: Support\n")
    plan = scenario.plan()
    change = by_address(plan)[SUPPORT]
    assert change.action == "move" and change.operations == ()
    assert change.moved_from == "contoso/paris"
    assert plan.summary["move"] == 1


def test_move_with_update_is_an_update_naming_the_old_location(scenario: Scenario) -> None:
    _support(scenario, office="Paris")
    scenario.yaml(LONDON, "shared_mailboxes:\n  - name: Support Desk\n    alias: support\n")
    change = by_address(scenario.plan())[SUPPORT]
    assert change.action == "update" and change.moved_from == "contoso/paris"
    assert change.operations[0].parameters["DisplayName"] == "Support Desk"


def test_unmanaged_with_prune_off_and_delete_with_prune_on(scenario: Scenario) -> None:
    _support(scenario)
    scenario.yaml(LONDON, "shared_mailboxes: []\n")
    plan = scenario.plan()
    assert [(c.action, c.address) for c in plan.changes] == [("unmanaged", SUPPORT)]
    assert not plan.has_changes and plan.operation_count == 0

    scenario.policy("prune: true\n")
    plan = scenario.converge()
    change = by_address(plan)[SUPPORT]
    assert change.action == "delete" and cmdlets(change) == ["Remove-Mailbox"]
    assert any("30 days" in note for note in change.notes)


def test_protected_mailbox_is_never_deleted(scenario: Scenario) -> None:
    _support(scenario)
    scenario.policy("prune: true\nprotect: [Support@contoso.com]\n")
    scenario.yaml(LONDON, "shared_mailboxes: []\n")
    change = by_address(scenario.plan())[SUPPORT]
    assert change.action == "unmanaged" and change.operations == ()


def test_max_deletes_refuses_the_plan(scenario: Scenario) -> None:
    _support(scenario)
    scenario.live("New-Mailbox", Shared=True, Name="Old", Alias="old",
                  PrimarySmtpAddress="old@contoso.com")
    scenario.policy("prune: true\nmax_deletes: 1\n")
    scenario.yaml(LONDON, "shared_mailboxes: []\n")
    plan = scenario.plan()
    assert plan.summary["delete"] == 2
    assert [r.message for r in plan.refusals] == [
        "2 deletes exceed max_deletes 1 of customer contoso"]


def test_max_change_percent_refuses_the_plan(scenario: Scenario) -> None:
    for n in range(10):
        scenario.live("New-Mailbox", Shared=True, Name=f"Box {n}", Alias=f"box{n}",
                      PrimarySmtpAddress=f"box{n}@contoso.com")
    scenario.policy("max_change_percent: 20\n")
    boxes = "".join(f"  - name: Box {n}\n    alias: box{n}\n    retention_policy: Contoso 2y\n"
                    for n in range(3))
    scenario.yaml("mailboxes.yaml", "shared_mailboxes:\n" + boxes)
    plan = scenario.plan()
    assert len(plan.refusals) == 1 and "max_change_percent 20" in plan.refusals[0].message


def test_templates_apply_to_user_mailboxes(scenario: Scenario) -> None:
    scenario.customer_extra = ("  templates:\n    user_mailbox: {retention_policy: Contoso 2y,"
                               " archive: true}\n")
    scenario.yaml(LONDON, """\
        user_mailboxes:
          - user: alice@contoso.com
          - user: bob@contoso.com
            archive: false
        """)
    plan = scenario.converge()
    alice = by_address(plan)["contoso/london/user_mailbox/alice@contoso.com"]
    bob = by_address(plan)["contoso/london/user_mailbox/bob@contoso.com"]
    assert cmdlets(alice) == ["Set-Mailbox", "Enable-Mailbox"]
    assert alice.operations[0].parameters["RetentionPolicy"] == "Contoso 2y"
    assert cmdlets(bob) == ["Set-Mailbox"]


def test_convert_to_shared_comes_before_other_settings(scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        user_mailboxes:
          - user: carol@contoso.com
            convert_to: shared
            forwarding: {internal: bob@contoso.com, deliver_to_mailbox: true}
            auto_reply: {state: Enabled, internal_message: Carol has left., external_audience: All,
                         external_message: Carol has left.}
        """)
    plan = scenario.converge()
    change = by_address(plan)["contoso/london/user_mailbox/carol@contoso.com"]
    assert change.operations[0].parameters == {"Identity": "carol@contoso.com", "Type": "Shared"}
    assert cmdlets(change) == ["Set-Mailbox", "Set-Mailbox", "Set-MailboxAutoReplyConfiguration"]
    assert_accepted_by_reference(plan)


def test_auto_reply_wrapped_in_html_by_exchange_is_not_drift(scenario: Scenario) -> None:
    scenario.live("Set-MailboxAutoReplyConfiguration", Identity="alice",
                  AutoReplyState="Enabled", InternalMessage="Back on Monday.",
                  ExternalAudience="All", ExternalMessage="Back on Monday.")
    scenario.yaml(LONDON, """\
        user_mailboxes:
          - user: alice@contoso.com
            auto_reply: {state: Enabled, internal_message: Back on Monday.}
        """)
    assert not scenario.plan().has_changes


def test_forwarding_none_clears_both_targets(scenario: Scenario) -> None:
    scenario.live("Set-Mailbox", Identity="alice", ForwardingSmtpAddress="smtp:a@partner.example",
                  DeliverToMailboxAndForward=True)
    scenario.yaml(LONDON, "user_mailboxes:\n  - user: alice@contoso.com\n    forwarding: none\n")
    plan = scenario.converge()
    params = by_address(plan)["contoso/london/user_mailbox/alice@contoso.com"] \
        .operations[0].parameters
    assert params["ForwardingSmtpAddress"] is None and params["ForwardingAddress"] is None


def test_distribution_group_create_and_membership(scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        distribution_groups:
          - name: London All
            alias: london-all
            owners: [alice@contoso.com]
            members: [alice@contoso.com, bob@contoso.com]
            permissions:
              - {user: carol@contoso.com, access: [SendAs, SendOnBehalf]}
        """)
    first = scenario.converge()
    group = "contoso/london/distribution_group/london-all@contoso.com"
    assert cmdlets(by_address(first)[group])[0] == "New-DistributionGroup"
    assert_accepted_by_reference(first)

    scenario.yaml(LONDON, """\
        distribution_groups:
          - name: London All
            alias: london-all
            owners: [bob@contoso.com]
            members: [carol@contoso.com, bob@contoso.com]
        """)
    second = scenario.converge()
    ops = by_address(second)[group].operations
    assert [op.cmdlet for op in ops] == ["Set-DistributionGroup", "Remove-DistributionGroupMember",
                                         "Add-DistributionGroupMember"]
    assert ops[0].parameters["ManagedBy"]["add"] == ["bob@contoso.com"]


def test_unknown_user_is_an_error_naming_file_and_line(scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        distribution_groups:
          - name: London Sales
            alias: london-sales
            owners: [zoe@contoso.com]
        """)
    with pytest.raises(InputError) as caught:
        scenario.plan()
    text = str(caught.value)
    assert "zoe@contoso.com" in text and "mailboxes.yaml:4" in text


def test_unknown_user_gets_a_did_you_mean_from_the_tenant_and_the_repository(
        scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Einkauf
            alias: einkauf
        distribution_groups:
          - name: London Sales
            alias: london-sales
            owners: [caorl@contoso.com]
            members: [einkuaf@contoso.com, zoe@contoso.com]
        """)
    with pytest.raises(InputError) as caught:
        scenario.plan()
    lines = str(caught.value).splitlines()
    [owner] = [line for line in lines if "'caorl@contoso.com'" in line]
    # carol is in the tenant only; einkauf is declared only (not yet created).
    assert "mailboxes.yaml:7" in owner and "did you mean carol@contoso.com?" in owner
    [member] = [line for line in lines if "'einkuaf@contoso.com'" in line]
    assert "mailboxes.yaml:8" in member and "did you mean einkauf@contoso.com?" in member
    # Nothing close: no guess.
    [zoe] = [line for line in lines if "'zoe@contoso.com'" in line]
    assert "did you mean" not in zoe


def test_grantee_at_another_site_is_refused_unless_policy_allows(scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Sales
            permissions:
              - {user: pierre@contoso.com, access: [FullAccess]}
        """)
    with pytest.raises(InputError) as caught:
        scenario.plan()
    assert "paris" in str(caught.value) and "mailboxes.yaml:4" in str(caught.value)
    scenario.policy("cross_site_permissions: allow\n")
    assert scenario.plan().summary["create"] == 1


def test_user_mailbox_that_does_not_exist_is_an_error(scenario: Scenario) -> None:
    scenario.yaml(PARIS, "user_mailboxes:\n  - user: nobody@contoso.com\n")
    with pytest.raises(InputError, match="created in Microsoft 365"):
        scenario.plan()


def test_plan_is_deterministic(scenario: Scenario) -> None:
    _support(scenario)
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support
            permissions:
              - {user: carol@contoso.com, access: [FullAccess]}
              - {user: bob@contoso.com, access: [SendAs]}
          - name: Sales
        """)
    first, second = scenario.plan().to_json(), scenario.plan().to_json()
    assert first == second and '"checksum": "sha256:' in first


def test_a_deleted_accounts_leftover_grant_is_removed(scenario: Scenario) -> None:
    _support(scenario)
    # Exchange shows a grant whose account was deleted by its bare SID.
    snapshot = scenario.emulator.to_snapshot()
    identity = next(m["Identity"] for m in snapshot["mailboxes"]
                    if m["PrimarySmtpAddress"] == "support@contoso.com")
    sid = "S-1-5-21-3623811015-3361044348-30300820-1013"
    snapshot["mailbox_permissions"].append({"Identity": identity, "User": sid,
                                            "AccessRights": ["FullAccess"],
                                            "IsInherited": False, "Deny": False})
    scenario.emulator = Emulator(snapshot)
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support
            permissions:
              - {user: bob@contoso.com, access: [FullAccess]}
        """)
    change = by_address(scenario.plan())[SUPPORT]
    removed = [op.parameters["User"] for op in change.operations
               if op.cmdlet == "Remove-MailboxPermission"]
    assert removed == [sid]
