"""Each drift class as a scenario against the emulated tenant, the split of one resource's
settings between classes, and the report's JSON."""

from __future__ import annotations

import json

import jsonschema
import pytest

from reconciler.drift.report import (
    CHANGED_OUTSIDE_GIT,
    NOT_YET_APPLIED,
    PENDING_PROPAGATION,
    UNMANAGED,
)
from reconciler.errors import ReconcilerError
from tests.drift.conftest import LONDON, SUPPORT_YAML, DriftScenario, classes

SUPPORT = "contoso/london/shared_mailbox/support@contoso.com"
SALES_YAML = "  - name: Sales\n"


def _applied(s: DriftScenario, text: str = SUPPORT_YAML) -> DriftScenario:
    """A repository whose YAML was applied (the tenant converged) and tagged as applied."""
    s.yaml(LONDON, text)
    s.converge()
    return s.commit("applied").mark_applied()


def test_clean_after_apply(drift_scenario: DriftScenario) -> None:
    report = _applied(drift_scenario).drift()
    assert report.items == []
    assert not report.has_drift
    assert report.records["contoso"].commit is not None
    assert report.summary_line().startswith("No drift")


def test_changed_outside_git(drift_scenario: DriftScenario) -> None:
    s = _applied(drift_scenario)
    s.live("Add-MailboxPermission", Identity="support@contoso.com", User="carol",
           AccessRights=["FullAccess"], InheritanceType="All")
    report = s.drift()
    assert classes(report) == {SUPPORT: [CHANGED_OUTSIDE_GIT]}
    assert report.has_drift
    change = report.items[0].change
    assert change.changed_keys == ["permissions"]
    assert {g["user"] for g in change.before["permissions"]} == {
        "alice@contoso.com", "carol@contoso.com"}


def test_deleted_outside_git_is_changed_outside_git(drift_scenario: DriftScenario) -> None:
    s = _applied(drift_scenario)
    s.live("Remove-Mailbox", Identity="support@contoso.com", Confirm=False)
    report = s.drift()
    assert classes(report) == {SUPPORT: [CHANGED_OUTSIDE_GIT]}
    assert report.items[0].change.action == "create"
    assert any("deleted outside git" in n for n in report.items[0].change.notes)


def test_not_yet_applied(drift_scenario: DriftScenario) -> None:
    s = _applied(drift_scenario)
    s.yaml(LONDON, SUPPORT_YAML + SALES_YAML)
    s.yaml(LONDON, s.files[LONDON].replace("[FullAccess]", "[FullAccess, SendAs]"))
    report = s.drift()
    assert classes(report) == {
        SUPPORT: [NOT_YET_APPLIED],
        "contoso/london/shared_mailbox/sales@contoso.com": [NOT_YET_APPLIED],
    }


def test_one_resource_split_between_classes(drift_scenario: DriftScenario) -> None:
    s = _applied(drift_scenario, SUPPORT_YAML + "    archive: false\n")
    # Someone enables the archive in Exchange; meanwhile the YAML grants SendAs.
    s.live("Enable-Mailbox", Identity="support@contoso.com", Archive=True)
    s.yaml(LONDON, s.files[LONDON].replace("[FullAccess]", "[FullAccess, SendAs]"))
    report = s.drift()
    assert classes(report) == {SUPPORT: [CHANGED_OUTSIDE_GIT, NOT_YET_APPLIED]}
    by_class = {i.drift_class: i.change for i in report.items}
    assert by_class[CHANGED_OUTSIDE_GIT].changed_keys == ["archive"]
    assert by_class[NOT_YET_APPLIED].changed_keys == ["permissions"]


def test_one_list_split_element_by_element(drift_scenario: DriftScenario) -> None:
    from reconciler.render.common import attribute_lines

    s = _applied(drift_scenario)
    # A pull request grants bob SendAs; meanwhile someone gives carol FullAccess in Exchange.
    s.yaml(LONDON, SUPPORT_YAML.replace(
        "      - {user: alice@contoso.com, access: [FullAccess]}\n",
        "      - {user: alice@contoso.com, access: [FullAccess]}\n"
        "      - {user: bob@contoso.com, access: [SendAs]}\n"))
    s.live("Add-MailboxPermission", Identity="support@contoso.com", User="carol",
           AccessRights=["FullAccess"], InheritanceType="All")
    report = s.drift()
    assert classes(report) == {SUPPORT: [CHANGED_OUTSIDE_GIT, NOT_YET_APPLIED]}
    lines = {i.drift_class: [f"{line.marker} {line.text}" for line in
                             attribute_lines(i.change)] for i in report.items}
    assert lines[NOT_YET_APPLIED] == ["~ permissions:",
                                      '+   bob@contoso.com: access SendAs']
    assert lines[CHANGED_OUTSIDE_GIT] == ["~ permissions:",
                                          '-   carol@contoso.com: access FullAccess']
    # As reports show it: carol's grant was added in the portal, not removed.
    from reconciler.drift.render import drift_lines, render_text
    [outside] = [i for i in report.items if i.drift_class == CHANGED_OUTSIDE_GIT]
    assert [f"{line.marker} {line.text}" for line in drift_lines(outside)] == [
        "~ permissions:", "+   carol@contoso.com: access FullAccess  (added outside git)"]
    assert "+   carol@contoso.com: access FullAccess  (added outside git)" in render_text(report)


def test_group_members_split_element_by_element(drift_scenario: DriftScenario) -> None:
    group = """\
distribution_groups:
  - name: Team
    alias: team
    owners: [alice@contoso.com]
    members: [alice@contoso.com, bob@contoso.com]
"""
    s = _applied(drift_scenario, group)
    s.yaml(LONDON, group.replace("bob@contoso.com]", "bob@contoso.com, carol@contoso.com]"))
    s.live("Remove-DistributionGroupMember", Identity="team@contoso.com", Member="bob",
           BypassSecurityGroupManagerCheck=True, Confirm=False)
    report = s.drift()
    parts = {i.drift_class: (i.change.before, i.change.after) for i in report.items}
    assert parts == {NOT_YET_APPLIED: ({"members": []}, {"members": ["carol@contoso.com"]}),
                     CHANGED_OUTSIDE_GIT: ({"members": []}, {"members": ["bob@contoso.com"]})}


def test_move_in_yaml_not_yet_applied(drift_scenario: DriftScenario) -> None:
    s = _applied(drift_scenario)
    s.files.pop(LONDON)
    (s.root / "customers/contoso" / LONDON).unlink()
    s.yaml("sites/paris/mailboxes.yaml", SUPPORT_YAML.replace("alice", "pierre"))
    report = s.drift()
    [item] = report.items
    assert item.drift_class == NOT_YET_APPLIED
    assert item.change.moved_from == "contoso/london"
    assert item.change.site == "paris"


def test_unmanaged(drift_scenario: DriftScenario) -> None:
    s = _applied(drift_scenario)
    s.live("New-Mailbox", Room=True, Name="Old Room", Alias="old-room",
           PrimarySmtpAddress="old-room@contoso.com")
    report = s.drift()
    assert classes(report) == {"contoso/-/room_mailbox/old-room@contoso.com": [UNMANAGED]}
    assert report.has_drift


def test_removed_from_yaml_with_prune_is_not_yet_applied(drift_scenario: DriftScenario) -> None:
    s = drift_scenario.policy("prune: true\n")
    s = _applied(s, SUPPORT_YAML + SALES_YAML)
    s.yaml(LONDON, SUPPORT_YAML)
    report = s.drift()
    assert classes(report) == {"contoso/london/shared_mailbox/sales@contoso.com":
                               [NOT_YET_APPLIED]}
    assert report.items[0].change.action == "delete"


def test_no_record_says_so(drift_scenario: DriftScenario) -> None:
    s = drift_scenario.yaml(LONDON, SUPPORT_YAML)
    s.commit("never applied")
    report = s.drift()
    assert classes(report) == {SUPPORT: [CHANGED_OUTSIDE_GIT]}
    assert report.records["contoso"].commit is None
    assert any("no record of the last apply" in w for w in report.warnings)
    assert any("no record" in n for n in report.items[0].change.notes)


def test_explicit_applied_ref_must_exist(drift_scenario: DriftScenario) -> None:
    s = _applied(drift_scenario)
    with pytest.raises(ReconcilerError, match="names no commit"):
        s.drift(applied_ref="refs/tags/nothing-here")


def test_applied_ref_pattern_with_customer(drift_scenario: DriftScenario) -> None:
    from tests.drift.conftest import git

    s = _applied(drift_scenario)
    git(s.root, "branch", "applied-contoso", "HEAD")
    s.yaml(LONDON, SUPPORT_YAML.replace("[FullAccess]", "[SendAs]"))
    report = s.drift(applied_ref="refs/heads/applied-{customer}")
    assert report.records["contoso"].ref == "refs/heads/applied-contoso"
    assert classes(report) == {SUPPORT: [NOT_YET_APPLIED]}


def test_pending_propagation(drift_scenario: DriftScenario) -> None:
    s = _applied(drift_scenario)
    s.yaml(LONDON, SUPPORT_YAML.replace("[FullAccess]", "[FullAccess, SendAs]"))
    # Apply ran Add-RecipientPermission and could not read it back yet: in the record only.
    s.commit("grant SendAs").mark_applied().record_pending()
    report = s.drift()
    assert classes(report) == {SUPPORT: [PENDING_PROPAGATION]}
    assert not report.has_drift  # it resolves itself: not drift


def test_json_is_versioned_and_deterministic(drift_scenario: DriftScenario) -> None:
    s = _applied(drift_scenario)
    s.live("Add-RecipientPermission", Identity="support@contoso.com", Trustee="bob",
           AccessRights=["SendAs"], Confirm=False)
    first, second = s.drift().to_json(), s.drift().to_json()
    assert first == second
    data = json.loads(first)
    assert data["format_version"] == "1.0" and data["kind"] == "reconciler-drift"
    assert data["drift"] is True
    assert data["summary"][CHANGED_OUTSIDE_GIT] == 1
    assert data["sites"] == [{"customer": "contoso", "site": "london", "security_finding": 0,
                              CHANGED_OUTSIDE_GIT: 1, NOT_YET_APPLIED: 0,
                              PENDING_PROPAGATION: 0, UNMANAGED: 0}]
    [item] = data["items"]
    assert item["class"] == CHANGED_OUTSIDE_GIT
    assert item["source"] == "customers/contoso/sites/london/mailboxes.yaml:2"
    jsonschema.validate(item, _change_schema())


def _change_schema() -> dict[str, object]:
    from pathlib import Path

    schema = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())
    return {**schema["$defs"]["change"], "$defs": schema["$defs"]}


def test_pending_propagation_after_a_real_apply_then_clean(drift_scenario: DriftScenario) -> None:
    """apply revokes a grant Exchange still lists (read-after-write lag): drift right after
    says pending propagation (not drift); once Exchange catches up, drift is clean."""
    import copy

    from reconciler.apply.runner import ApplyOptions, apply_plan
    from reconciler.desired import load
    from reconciler.emulator import Emulator
    from tests.plan.conftest import BASE_SNAPSHOT, _Unclosable

    clock = [0.0]
    s = drift_scenario
    s.emulator = Emulator(copy.deepcopy(BASE_SNAPSHOT), lag_seconds=60.0,
                          clock=lambda: clock[0])
    s.yaml(LONDON, SUPPORT_YAML)
    s.apply(s.plan())
    clock[0] += 120  # the first apply has long become visible
    s.commit("support").mark_applied()
    assert s.drift().items == []

    # Exchange keeps listing a removed grant for a while.
    s.yaml(LONDON, SUPPORT_YAML.replace(
        "    permissions:\n      - {user: alice@contoso.com, access: [FullAccess]}\n",
        "    permissions: []\n"))
    s.commit("revoke alice")
    desired = load(s.root)
    backend = _Unclosable(s.emulator)
    plan = s.plan()
    report = apply_plan(plan, desired, lambda state: backend, root=s.root,
                        options=ApplyOptions(verify_attempts=0, sleep=lambda seconds: None))
    assert report.ok and report.not_visible
    s.mark_applied()  # CI moves the tag after a successful apply

    lagging = s.drift()
    assert classes(lagging) == {SUPPORT: [PENDING_PROPAGATION]}
    assert not lagging.has_drift
    assert lagging.summary_line().startswith("No drift: 1 difference applied and not yet")
    clock[0] += 120
    assert s.drift().items == []
