"""Exchange's own rules (docs/format.md §4), each as a desired tree against the emulated tenant:
addresses are the tenant's, group and grantee kinds, archive state, names the tenant defines,
and the notes on what Exchange will do beyond the change."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.errors import InputError
from tests.plan.conftest import BASE_SNAPSHOT, Scenario, by_address, cmdlets

LONDON = "sites/london/mailboxes.yaml"
HELP = "contoso/london/shared_mailbox/help-desk@contoso.com"
HELP_DESK = """\
    shared_mailboxes:
      - name: Help Desk
        alias: help-desk
        permissions:
          - {user: bob@contoso.com, access: [FullAccess]}
    """


def _tenant(scenario: Scenario, change: Any) -> dict[str, Any]:
    """Replace the scenario's tenant by the base snapshot as ``change`` edits it."""
    snap = copy.deepcopy(BASE_SNAPSHOT)
    change(snap)
    scenario.emulator = Emulator(snap)
    return snap


def _row(snap: dict[str, Any], listing: str, address: str) -> dict[str, Any]:
    return next(r for r in snap[listing] if r["PrimarySmtpAddress"] == address)


def _errors(scenario: Scenario) -> str:
    with pytest.raises(InputError) as refused:
        scenario.plan()
    return str(refused.value)


# --- 1. addresses belong to the tenant --------------------------------------------------------


def test_an_address_held_as_another_recipients_secondary_is_a_plan_error(
        scenario: Scenario) -> None:
    def carol_holds_it(snap: dict[str, Any]) -> None:
        for listing in ("recipients", "mailboxes"):
            _row(snap, listing, "carol@contoso.com")["EmailAddresses"] = [
                "SMTP:carol@contoso.com", "smtp:help-desk@contoso.com"]

    _tenant(scenario, carol_holds_it)
    scenario.yaml(LONDON, HELP_DESK)
    text = _errors(scenario)
    assert "help-desk@contoso.com" in text and "carol@contoso.com" in text
    assert "secondary address" in text and "mailboxes.yaml:2" in text
    assert scenario.emulator.calls["New-Mailbox"] == 0


def test_an_alias_another_recipient_holds_is_a_plan_error(scenario: Scenario) -> None:
    _tenant(scenario, lambda snap: _row(snap, "recipients", "bob@contoso.com").update(
        Alias="help-desk"))
    scenario.yaml(LONDON, HELP_DESK)
    text = _errors(scenario)
    assert "the alias help-desk is already held by bob@contoso.com" in text


@pytest.mark.parametrize("held_as", ["UserPrincipalName", "EmailAddresses"])
def test_an_address_held_as_another_recipients_upn_names_the_holder(
        scenario: Scenario, held_as: str) -> None:
    def bob_holds_it(snap: dict[str, Any]) -> None:
        for listing in ("recipients", "mailboxes"):
            row = _row(snap, listing, "bob@contoso.com")
            if held_as == "UserPrincipalName":
                row["UserPrincipalName"] = "help-desk@contoso.com"
            else:
                row["EmailAddresses"] = ["SMTP:bob@contoso.com", "smtp:help-desk@contoso.com"]

    _tenant(scenario, bob_holds_it)
    scenario.yaml(LONDON, HELP_DESK)
    text = _errors(scenario)
    assert "help-desk@contoso.com" in text and "bob@contoso.com" in text, text
    assert "mailboxes.yaml:2" in text
    assert scenario.emulator.calls["New-Mailbox"] == 0


def test_a_soft_deleted_mailbox_of_the_same_type_is_recovered_then_configured(
        scenario: Scenario) -> None:
    scenario.live("New-Mailbox", Shared=True, Name="Help Desk", Alias="help-desk",
                  PrimarySmtpAddress="help-desk@contoso.com")
    scenario.live("Set-Mailbox", Identity="help-desk@contoso.com", CustomAttribute1="kept")
    scenario.live("Remove-Mailbox", Identity="help-desk@contoso.com")
    scenario.yaml(LONDON, HELP_DESK)
    plan = scenario.converge()
    change = by_address(plan)[HELP]
    assert change.action == "create"
    assert cmdlets(change) == ["Undo-SoftDeletedMailbox", "Add-MailboxPermission"]
    assert any("Undo-SoftDeletedMailbox" in n and "soft-deleted" in n for n in change.notes)
    restored = scenario.emulator.invoke("Get-Mailbox", {"Identity": "help-desk@contoso.com"})
    assert restored.value[0]["CustomAttribute1"] == "kept"  # the same mailbox, not a new one
    assert scenario.emulator.calls["New-Mailbox"] == 1  # only the one made above


def test_a_soft_deleted_mailbox_of_another_type_is_a_plan_error(scenario: Scenario) -> None:
    scenario.live("New-Mailbox", Room=True, Name="Help Desk", Alias="help-desk",
                  PrimarySmtpAddress="help-desk@contoso.com")
    scenario.live("Remove-Mailbox", Identity="help-desk@contoso.com")
    scenario.yaml(LONDON, HELP_DESK)
    text = _errors(scenario)
    assert "soft-deleted RoomMailbox" in text and "mailboxes.yaml:2" in text


def test_soft_deleted_mailboxes_are_read_only_when_a_create_is_planned(
        scenario: Scenario) -> None:
    scenario.live("New-Mailbox", Shared=True, Name="Help Desk", Alias="help-desk",
                  PrimarySmtpAddress="help-desk@contoso.com")
    scenario.yaml(LONDON, HELP_DESK)
    scenario.emulator.calls.clear()
    scenario.plan()
    assert scenario.emulator.calls["Get-Mailbox"] == 1  # the tenant-wide read, no other


def test_aliases_differing_only_in_a_dash_are_a_validate_error(scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Sales Team
          - name: SalesTeam
        """)
    text = _errors(scenario)
    assert "sales-team@contoso.com" in text and "salesteam@contoso.com" in text
    assert "mailboxes.yaml:2" in text and "mailboxes.yaml:3" in text


def test_one_alias_in_two_domains_is_a_validate_error_saying_so(scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Sales
          - name: Sales
            domain: contoso.co.uk
        """)
    text = _errors(scenario)
    assert "sales@contoso.co.uk" in text and "sales@contoso.com" in text
    assert "have the same alias sales" in text and "differ only" not in text


# --- 3. group kinds -------------------------------------------------------------------------


def test_room_lists_and_security_groups_are_never_pruned_and_stay_grantees(
        scenario: Scenario) -> None:
    scenario.policy("prune: true\n")
    scenario.live("New-DistributionGroup", Name="London Rooms", RoomList=True,
                  PrimarySmtpAddress="london-rooms@contoso.com", ManagedBy=["alice"])
    scenario.live("New-DistributionGroup", Name="Finance Team", Type="Security",
                  PrimarySmtpAddress="finance-team@contoso.com", ManagedBy=["alice"])
    scenario.live("New-DistributionGroup", Name="Old News",
                  PrimarySmtpAddress="old-news@contoso.com", ManagedBy=["alice"])
    scenario.yaml("groups.yaml", """\
        shared_mailboxes:
          - name: Accounts
            permissions:
              - {user: finance-team@contoso.com, access: [FullAccess, SendAs]}
        distribution_groups:
          - name: Everyone
            owners: [alice@contoso.com]
            members: [finance-team@contoso.com, bob@contoso.com]
        """)
    plan = scenario.converge()
    actions = {c.address: c.action for c in plan.changes}
    assert actions["contoso/-/distribution_group/old-news@contoso.com"] == "delete"
    assert not [a for a in actions if "london-rooms" in a or "finance-team" in a]
    assert actions["contoso/-/shared_mailbox/accounts@contoso.com"] == "create"


def test_a_declared_group_that_is_a_room_list_live_is_an_error(scenario: Scenario) -> None:
    scenario.live("New-DistributionGroup", Name="London Rooms", RoomList=True,
                  PrimarySmtpAddress="london-rooms@contoso.com", ManagedBy=["alice"])
    scenario.yaml("groups.yaml", """\
        distribution_groups:
          - name: London Rooms
            owners: [alice@contoso.com]
        """)
    assert "exists in the tenant as a RoomList" in _errors(scenario)


# --- 4. grantee kinds -----------------------------------------------------------------------


@pytest.mark.parametrize("right", ["FullAccess", "SendAs", "SendOnBehalf"])
def test_a_plain_distribution_group_as_grantee_is_a_plan_error(scenario: Scenario,
                                                               right: str) -> None:
    scenario.live("New-DistributionGroup", Name="Sales", Alias="sales",
                  PrimarySmtpAddress="sales@contoso.com", ManagedBy=["alice"])
    scenario.yaml(LONDON, f"""\
        shared_mailboxes:
          - name: Help Desk
            alias: help-desk
            permissions:
              - {{user: sales@contoso.com, access: [{right}]}}
        """)
    text = _errors(scenario)
    assert "grantee sales@contoso.com of help-desk@contoso.com is a distribution group" in text
    assert "mailboxes.yaml:5" in text


def test_a_declared_distribution_group_as_grantee_is_a_plan_error(scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        distribution_groups:
          - name: Team
            owners: [alice@contoso.com]
        shared_mailboxes:
          - name: Help Desk
            permissions:
              - {user: team@contoso.com, access: [SendAs]}
        """)
    assert "grantee team@contoso.com of help-desk@contoso.com is a distribution group" in \
        _errors(scenario)


def _recipient_of_kind(snap: dict[str, Any], name: str, kind: str) -> None:
    """A recipient that only the tenant-wide recipient listing shows (a contact, a dynamic
    group): no mailbox, no security principal."""
    snap["recipients"].append({
        "Name": name, "Guid": f"0c0c0c0c-0000-4000-8000-{len(snap['recipients']):012d}",
        "PrimarySmtpAddress": f"{name}@contoso.com", "DisplayName": name.title(),
        "RecipientTypeDetails": kind, "Office": "London",
        "EmailAddresses": [f"SMTP:{name}@contoso.com"]})


@pytest.mark.parametrize("kind", ["MailContact", "DynamicDistributionGroup"])
@pytest.mark.parametrize("right", ["FullAccess", "SendAs", "SendOnBehalf"])
def test_a_recipient_that_is_no_security_principal_as_grantee_is_a_plan_error(
        scenario: Scenario, kind: str, right: str) -> None:
    _tenant(scenario, lambda snap: _recipient_of_kind(snap, "outsider", kind))
    scenario.yaml(LONDON, f"""\
        shared_mailboxes:
          - name: Help Desk
            alias: help-desk
            permissions:
              - {{user: outsider@contoso.com, access: [{right}]}}
        """)
    text = _errors(scenario)
    assert f"grantee outsider@contoso.com of help-desk@contoso.com is {_A_KIND[kind]} " \
           f"({kind})" in text
    assert "mailboxes.yaml:5" in text


_A_KIND = {"MailContact": "a mail contact",
           "DynamicDistributionGroup": "a dynamic distribution group"}


def test_a_distribution_group_as_calendar_grantee_is_a_plan_error(scenario: Scenario) -> None:
    scenario.live("New-DistributionGroup", Name="Sales", Alias="sales",
                  PrimarySmtpAddress="sales@contoso.com", ManagedBy=["alice"])
    scenario.yaml(LONDON, """\
        user_mailboxes:
          - user: alice@contoso.com
            calendar_permissions:
              - {user: Default, role: AvailabilityOnly}
              - {user: sales@contoso.com, role: Reviewer}
        """)
    text = _errors(scenario)
    assert "grantee sales@contoso.com of alice@contoso.com is a distribution group " \
           "(MailUniversalDistributionGroup): calendar access can be granted" in text
    assert "mailboxes.yaml:5" in text and "Default" not in text


# --- 8. archive -----------------------------------------------------------------------------


def test_an_archive_being_provisioned_is_an_archive(scenario: Scenario) -> None:
    scenario.yaml("sites/london/users.yaml", """\
        user_mailboxes:
          - user: carol@contoso.com
            archive: true
        """)
    first = scenario.converge()  # Enable-Mailbox leaves ArchiveStatus None: provisioning
    assert cmdlets(by_address(first)["contoso/london/user_mailbox/carol@contoso.com"]) == [
        "Enable-Mailbox"]
    row = scenario.emulator.invoke("Get-Mailbox", {"Identity": "carol"}).value[0]
    assert row["ArchiveStatus"] == "None"


def test_archive_false_on_a_mailbox_with_one_is_destructive(scenario: Scenario) -> None:
    scenario.live("Enable-Mailbox", Identity="carol", Archive=True)
    scenario.yaml("sites/london/users.yaml", """\
        user_mailboxes:
          - user: carol@contoso.com
            archive: false
        """)
    scenario.policy("max_deletes: 0\n")
    plan = scenario.plan()
    change = by_address(plan)["contoso/london/user_mailbox/carol@contoso.com"]
    assert cmdlets(change) == ["Disable-Mailbox"]
    assert any(n.startswith("destructive:") for n in change.notes)
    assert [r.message for r in plan.refusals] == [
        "1 delete exceeds max_deletes 0 of customer contoso (1 of them disable an archive)"]
    scenario.policy("max_deletes: 1\n")
    assert scenario.converge().refusals == []


# --- 9. names the tenant defines ------------------------------------------------------------


def test_an_unknown_retention_policy_is_a_plan_error_with_a_suggestion(
        scenario: Scenario) -> None:
    scenario.yaml("sites/london/users.yaml", """\
        user_mailboxes:
          - user: carol@contoso.com
            retention_policy: Contoso 2 years
        """)
    text = _errors(scenario)
    assert "retention_policy 'Contoso 2 years' of carol@contoso.com" in text
    assert "did you mean 'Contoso 2y'?" in text and "users.yaml:2" in text


def test_retention_policies_are_read_once_and_only_when_named(scenario: Scenario) -> None:
    scenario.yaml("sites/london/users.yaml", """\
        user_mailboxes:
          - {user: carol@contoso.com, retention_policy: Contoso 2y}
          - {user: bob@contoso.com, retention_policy: Contoso 2y}
        """)
    scenario.converge()
    assert scenario.emulator.calls["Get-RetentionPolicy"] == 2  # once per plan, not per entry
    scenario.emulator.calls.clear()
    scenario.yaml("sites/london/users.yaml", """\
        user_mailboxes:
          - {user: carol@contoso.com, archive: false}
        """)
    scenario.plan()
    assert scenario.emulator.calls["Get-RetentionPolicy"] == 0


@pytest.mark.parametrize(("start", "says"), [
    ("2026-02-30T00:00:00Z", "is not a real date"),
    ("2026-12-20T25:00:00Z", "is not a real date"),
    ("1926-12-20T00:00:00Z", "is out of range"),
])
def test_impossible_or_out_of_range_auto_reply_dates_are_validate_errors(
        scenario: Scenario, start: str, says: str) -> None:
    scenario.yaml("sites/london/users.yaml", f"""\
        user_mailboxes:
          - user: carol@contoso.com
            auto_reply:
              state: Scheduled
              start: {start}
              end: 2027-01-04T00:00:00Z
        """)
    text = _errors(scenario)
    assert f"auto_reply start '{start}' {says}" in text and "users.yaml:5:" in text  # start's line


# --- 10. what Exchange will do that the YAML did not ask ------------------------------------


EXTERNAL = """\
    shared_mailboxes:
      - name: Help Desk
        forwarding: {external: desk@partner.example}
    """


def test_external_forwarding_is_noted_as_blocked_by_the_default_outbound_policy(
        scenario: Scenario) -> None:
    scenario.yaml(LONDON, EXTERNAL)
    change = by_address(scenario.converge())[HELP]
    assert any("AutoForwardingMode Automatic" in n for n in change.notes)
    assert scenario.emulator.calls["Get-HostedOutboundSpamFilterPolicy"] == 2


def test_external_forwarding_the_tenant_allows_has_no_such_note(scenario: Scenario) -> None:
    _tenant(scenario, lambda snap: snap["tenant"].update(auto_forwarding_mode="On"))
    scenario.yaml(LONDON, EXTERNAL)
    change = by_address(scenario.plan())[HELP]
    assert not any("AutoForwardingMode" in n for n in change.notes)


def test_converting_a_mailbox_above_50_gb_to_shared_notes_the_licence(
        scenario: Scenario) -> None:
    _tenant(scenario, lambda snap: _row(snap, "mailboxes", "carol@contoso.com").update(
        TotalItemBytes=60 * 1024 ** 3))
    scenario.yaml("sites/london/users.yaml", """\
        user_mailboxes:
          - {user: carol@contoso.com, convert_to: shared}
          - {user: bob@contoso.com, convert_to: shared}
        """)
    changes = by_address(scenario.converge())
    carol = changes["contoso/london/user_mailbox/carol@contoso.com"]
    assert any("60.0 GB" in n and "licence" in n for n in carol.notes)
    assert not any("licence" in n for n in changes[
        "contoso/london/user_mailbox/bob@contoso.com"].notes)


def test_a_new_group_is_noted_to_reject_external_senders(scenario: Scenario) -> None:
    scenario.yaml("groups.yaml", """\
        distribution_groups:
          - name: Everyone
            owners: [alice@contoso.com]
        """)
    change = by_address(scenario.converge())["contoso/-/distribution_group/everyone@contoso.com"]
    assert any("reject mail from outside" in n for n in change.notes)
    row = scenario.emulator.invoke("Get-DistributionGroup", {"Identity": "everyone"}).value[0]
    assert row["RequireSenderAuthenticationEnabled"] is True


def test_accept_external_senders_is_set_on_create_and_on_update(scenario: Scenario) -> None:
    scenario.live("New-DistributionGroup", Name="Partners",
                  PrimarySmtpAddress="partners@contoso.com", ManagedBy=["alice"])
    scenario.yaml("groups.yaml", """\
        distribution_groups:
          - name: Everyone
            owners: [alice@contoso.com]
            accept_external_senders: true
          - name: Partners
            owners: [alice@contoso.com]
            accept_external_senders: true
        """)
    changes = by_address(scenario.converge())
    created = changes["contoso/-/distribution_group/everyone@contoso.com"]
    assert created.operations[0].parameters["RequireSenderAuthenticationEnabled"] is False
    assert not any("reject mail from outside" in n for n in created.notes)
    updated = changes["contoso/-/distribution_group/partners@contoso.com"]
    assert [(op.cmdlet, op.parameters.get("RequireSenderAuthenticationEnabled"))
            for op in updated.operations] == [("Set-DistributionGroup", False)]


# --- 11. renames ----------------------------------------------------------------------------


def _help_desk_live(scenario: Scenario) -> None:
    scenario.live("New-Mailbox", Shared=True, Name="Help Desk", Alias="hd",
                  PrimarySmtpAddress="hd@contoso.com")
    scenario.live("Set-Mailbox", Identity="hd@contoso.com", Office="London")


def test_a_create_with_a_live_objects_name_is_an_error_that_suggests_the_rename(
        scenario: Scenario) -> None:
    # New-Mailbox -Name takes the display name, and Exchange's Names are unique.
    _help_desk_live(scenario)
    scenario.yaml(LONDON, "shared_mailboxes:\n  - {name: Help Desk, alias: helpdesk-london}\n")
    text = _errors(scenario)
    assert "the name 'Help Desk' is already held by hd@contoso.com" in text
    assert "keep `alias: hd` to rename it in place" in text


@pytest.mark.parametrize(("name", "declared"), [
    ("Help Desk", "- {name: Service Desk, alias: help-desk}"),  # the alias the name derives to
    # An object created since 2022 is Named by a GUID; the same display name then says it.
    ("5f0c2b1e-8d7a-4c55-9a43-2b6a4f1d9e10", "- {name: Help Desk, alias: helpdesk-london}"),
])
def test_a_create_that_looks_like_a_rename_says_so(scenario: Scenario, name: str,
                                                  declared: str) -> None:
    scenario.live("New-Mailbox", Shared=True, Name=name, DisplayName="Help Desk", Alias="hd",
                  PrimarySmtpAddress="hd@contoso.com")
    scenario.live("Set-Mailbox", Identity="hd@contoso.com", Office="London")
    scenario.yaml(LONDON, f"shared_mailboxes:\n  {declared}\n")
    plan = scenario.converge()
    create = next(c for c in plan.changes if c.action == "create")
    assert any(n.startswith("looks like a rename of hd@contoso.com") and "alias: hd" in n
               for n in create.notes)
    assert by_address(plan)["contoso/london/shared_mailbox/hd@contoso.com"].action == \
        "unmanaged"


# --- 12. orphaned grants --------------------------------------------------------------------


def test_a_deleted_accounts_hidden_grant_is_removed_by_an_empty_list(scenario: Scenario) -> None:
    sid = "S-1-5-21-3623811015-3361044348-30300820-1013"

    def orphaned(snap: dict[str, Any]) -> None:
        snap["mailbox_permissions"].append({"Identity": "carol", "User": sid,
                                            "AccessRights": ["FullAccess"],
                                            "IsInherited": False, "Deny": False})

    _tenant(scenario, orphaned)
    # Exchange hides the grant unless asked for unresolved permissions.
    plain = scenario.emulator.invoke("Get-MailboxPermission", {"Identity": "carol"}).value
    assert sid not in {r["User"] for r in plain}
    scenario.yaml("sites/london/users.yaml", """\
        user_mailboxes:
          - {user: carol@contoso.com, permissions: []}
        """)
    plan = scenario.converge()
    change = by_address(plan)["contoso/london/user_mailbox/carol@contoso.com"]
    assert [op.parameters["User"] for op in change.operations] == [sid]
    every = scenario.emulator.invoke("Get-MailboxPermission", {
        "Identity": "carol", "IncludeUnresolvedPermissions": True}).value
    assert sid not in {r["User"] for r in every}
