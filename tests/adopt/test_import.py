"""reconciler import: the example seed tenants adopted into a repository that declares no
resources, then planned; re-runs; comments and order kept byte for byte."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
import yaml

from reconciler.adopt.adopt import adopt
from reconciler.desired import load
from reconciler.emulator.sandbox_backend import SandboxBackend
from reconciler.plan.planner import make_plan
from reconciler.render.text import render_text
from tests.adopt.conftest import SEED_CUSTOMERS, files_of, fresh_live, run
from tests.plan.conftest import Scenario, _Unclosable


def test_import_seed_tenants_then_plan_says_no_changes(bare_repo: Path, tmp_path: Path) -> None:
    live = fresh_live(tmp_path)
    for customer in SEED_CUSTOMERS:
        result = run("import", "--customer", customer, str(bare_repo), "--live",
                     f"sandbox:{live}")
        assert result.exit_code == 0, result.output + result.stderr
        assert "Imported" in result.stdout
    imported = sorted(p.relative_to(bare_repo).as_posix()
                      for p in bare_repo.rglob("imported.yaml"))
    assert "customers/contoso/imported.yaml" in imported
    assert "customers/fabrikam/imported.yaml" in imported

    plan = make_plan(bare_repo, live_source=f"sandbox:{live}").plan
    assert not plan.has_changes, [c.to_dict() for c in plan.actionable]
    assert render_text(plan).startswith("No changes.")
    result = run("plan", str(bare_repo), "--live", f"sandbox:{live}", "--detailed-exitcode")
    assert result.exit_code == 0, result.stdout


def test_every_shared_mailbox_room_and_group_is_declared(bare_repo: Path,
                                                         tmp_path: Path) -> None:
    live = fresh_live(tmp_path)
    run("import", "--customer", "contoso", str(bare_repo), "--live", f"sandbox:{live}")
    declared = load(bare_repo).customers["contoso"].resources
    snapshot = json.loads((live / "contoso.json").read_text())
    wanted = {m["PrimarySmtpAddress"] for m in snapshot["mailboxes"]
              if m["RecipientTypeDetails"] != "UserMailbox"}
    wanted |= {g["PrimarySmtpAddress"] for g in snapshot["distribution_groups"]}
    plan = make_plan(bare_repo, live_source=f"sandbox:{live}").plan
    unmanaged = {c.id for c in plan.changes if c.action == "unmanaged"}
    # Each is declared, or left out with a warning because the same-site rule refuses it.
    assert wanted == (wanted & set(declared)) | unmanaged
    assert unmanaged <= {"finance@contoso.com"}
    # Principals are written as primary SMTP addresses, whatever form Exchange used.
    text = (bare_repo / "customers/contoso/imported.yaml").read_text()
    assert "members: [alice@contoso.com, bob@contoso.com" in text
    assert "6f1b5ffa" not in text and "Alice Smith" not in text


def test_cross_site_grant_is_reported_not_imported(bare_repo: Path, tmp_path: Path) -> None:
    live = fresh_live(tmp_path)
    result = run("import", "--customer", "contoso", str(bare_repo), "--live", f"sandbox:{live}")
    assert "finance@contoso.com not imported" in result.stderr
    assert "same-site rule" in result.stderr


def test_rerun_adds_nothing_and_changes_no_byte(bare_repo: Path, tmp_path: Path) -> None:
    live = fresh_live(tmp_path)
    run("import", "--customer", "contoso", str(bare_repo), "--live", f"sandbox:{live}")
    before = files_of(bare_repo)
    result = run("import", "--customer", "contoso", str(bare_repo), "--live", f"sandbox:{live}")
    assert result.exit_code == 0
    assert "Nothing to import" in result.stdout
    assert files_of(bare_repo) == before


def _only_insertions(old: str, new: str) -> list[str]:
    """The lines ``new`` adds to ``old``; fails if anything of ``old`` changed or moved."""
    matcher = difflib.SequenceMatcher(a=old.splitlines(True), b=new.splitlines(True),
                                      autojunk=False)
    added = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        assert tag in ("equal", "insert"), (tag, old.splitlines()[i1:i2])
        if tag == "insert":
            added += new.splitlines(True)[j1:j2]
    return added


def test_import_into_repo_with_comments_keeps_them_byte_for_byte(example_repo: Path,
                                                                  tmp_path: Path) -> None:
    live = fresh_live(tmp_path)
    before = files_of(example_repo)
    result = run("import", "--customer", "contoso", str(example_repo), "--live",
                 f"sandbox:{live}")
    assert result.exit_code == 0, result.stderr
    after = files_of(example_repo)
    assert {k: v for k, v in after.items() if k in before} == before
    new_files = set(after) - set(before)
    assert new_files == {"customers/contoso/imported.yaml"}

    # Someone comments and reorders nothing by hand; later the tenant gains a mailbox and a
    # room: a second import appends them and keeps every existing byte.
    path = example_repo / "customers/contoso/imported.yaml"
    edited = path.read_text().replace(
        "shared_mailboxes:\n",
        "# Adopted in the 2026 migration; owners confirmed by IT.\nshared_mailboxes:\n", 1)
    edited = edited.replace("    alias: old-projects\n",
                            "    alias: old-projects   # archive of closed projects\n")
    path.write_text(edited)
    backend = SandboxBackend(live, "contoso")
    backend.invoke("New-Mailbox", {"Shared": True, "Name": "Helpdesk", "Alias": "helpdesk",
                                   "PrimarySmtpAddress": "helpdesk@contoso.com"})
    backend.invoke("Add-MailboxPermission", {"Identity": "helpdesk@contoso.com",
                                             "User": "carol", "AccessRights": ["FullAccess"],
                                             "InheritanceType": "All"})
    backend.invoke("New-Mailbox", {"Room": True, "Name": "Atrium", "Alias": "atrium",
                                   "PrimarySmtpAddress": "atrium@contoso.com"})
    result = run("import", "--customer", "contoso", str(example_repo), "--live",
                 f"sandbox:{live}")
    assert result.exit_code == 0, result.stderr
    assert "helpdesk" in result.stdout and "atrium" in result.stdout
    again = files_of(example_repo)
    assert {k: v for k, v in again.items() if k != "customers/contoso/imported.yaml"} == {
        k: v for k, v in after.items() if k != "customers/contoso/imported.yaml"}
    added = "".join(_only_insertions(edited, path.read_text()))
    assert "name: Helpdesk" in added and "name: Atrium" in added
    assert "{user: carol@contoso.com, access: [FullAccess]}" in added
    entries = yaml.safe_load(path.read_text())
    assert [e["alias"] for e in entries["shared_mailboxes"]][-1] == "helpdesk"
    assert [e["alias"] for e in entries["room_mailboxes"]][-1] == "atrium"


def test_template_values_the_mailbox_lacks_are_written_explicitly(tmp_path: Path) -> None:
    s = Scenario(tmp_path)
    s.customer_extra = ("  templates:\n"
                        "    user_mailbox: {retention_policy: Contoso 2y, archive: true}\n")
    # carol has a custom attribute (so she is imported) but neither the template's retention
    # policy nor an archive: her entry must say so, or plan would change her.
    s.live("Set-Mailbox", Identity="carol@contoso.com", CustomAttribute4="night-shift")
    root = s.write()
    state = load(root).customers["contoso"]
    result = adopt(root, state, _Unclosable(s.emulator))
    assert "customers/contoso/sites/london/imported.yaml" in result.added
    data = yaml.safe_load((root / "customers/contoso/sites/london/imported.yaml").read_text())
    [carol] = [u for u in data["user_mailboxes"] if u["user"] == "carol@contoso.com"]
    assert carol["custom_attributes"] == {4: "night-shift"}
    assert carol["archive"] is False
    assert carol["retention_policy"] == "Default MRM Policy"
    assert not s.plan().has_changes


@pytest.mark.parametrize("source", ["snapshot", "sandbox"])
def test_dry_run_writes_nothing(bare_repo: Path, tmp_path: Path, source: str) -> None:
    live = fresh_live(tmp_path)
    before = files_of(bare_repo)
    result = run("import", "--customer", "fabrikam", str(bare_repo), "--live",
                 f"{source}:{live}", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "Would add" in result.stdout
    assert files_of(bare_repo) == before


def test_unknown_customer_is_an_error(bare_repo: Path) -> None:
    result = run("import", "--customer", "nobody", str(bare_repo))
    assert result.exit_code == 1
    assert "unknown customer 'nobody'" in result.stderr


def test_what_the_yaml_cannot_say_is_reported_not_written(tmp_path: Path) -> None:
    s = Scenario(tmp_path)
    # An address at the initial domain, which is not one of the customer's mail_domains.
    s.live("New-Mailbox", Shared=True, Name="Scanner", Alias="scanner",
           PrimarySmtpAddress="scanner@contoso.onmicrosoft.com")
    s.live("New-Mailbox", Shared=True, Name="Helpdesk", Alias="helpdesk",
           PrimarySmtpAddress="helpdesk@contoso.com")
    root = s.write()
    result = adopt(root, load(root).customers["contoso"], _Unclosable(s.emulator))
    assert any(w.startswith("scanner@contoso.onmicrosoft.com not imported: its address is at "
                            "contoso.onmicrosoft.com") for w in result.warnings)
    assert [ids for ids in result.added.values()] == [["helpdesk"]]
    plan = s.plan()
    assert not plan.has_changes
    assert [c.id for c in plan.changes] == ["scanner@contoso.onmicrosoft.com"]  # unmanaged


def test_every_kind_of_setting_round_trips_through_import(tmp_path: Path) -> None:
    """Each setting import can write, shaped live by real cmdlet calls, then imported into an
    empty repository: the plan that follows has nothing to do."""
    s = Scenario(tmp_path)
    s.live("Set-MailboxAutoReplyConfiguration", Identity="pierre@contoso.com",
           AutoReplyState="Scheduled", StartTime="2026-12-20T00:00:00Z",
           EndTime="2027-01-04T00:00:00Z", InternalMessage="Absent: back on 4 January.",
           ExternalAudience="Known", ExternalMessage="<html><body>Absent.</body></html>")
    s.live("Set-Mailbox", Identity="bob@contoso.com", ForwardingSmtpAddress="bob@partner.example",
           DeliverToMailboxAndForward=True, GrantSendOnBehalfTo=["alice@contoso.com"])
    s.live("New-Mailbox", Shared=True, Name="Support", Alias="support",
           PrimarySmtpAddress="support@contoso.com")
    s.live("Set-Mailbox", Identity="support@contoso.com", Office="London",
           ForwardingAddress="carol", CustomAttribute7="ticketing")
    s.live("Add-MailboxPermission", Identity="support@contoso.com", User="Bob Jones",
           AccessRights=["FullAccess"], InheritanceType="All", AutoMapping=False)
    s.live("Add-RecipientPermission", Identity="support@contoso.com", Trustee="alice",
           AccessRights=["SendAs"], Confirm=False)
    s.live("Add-MailboxFolderPermission", Identity="support@contoso.com:\\Calendar",
           User="carol@contoso.com", AccessRights=["ReadItems", "FolderVisible"])
    s.live("Set-MailboxFolderPermission", Identity="support@contoso.com:\\Calendar",
           User="Default", AccessRights=["LimitedDetails"])
    s.live("New-Mailbox", Room=True, Name="Board Room", Alias="board",
           PrimarySmtpAddress="board@contoso.com", ResourceCapacity=8)
    s.live("Set-Mailbox", Identity="board@contoso.com", Office="London")
    s.live("Add-MailboxFolderPermission", Identity="board@contoso.com:\\Calendar",
           User="alice@contoso.com", AccessRights=["Editor"], SharingPermissionFlags="Delegate")
    s.live("New-DistributionGroup", Name="Paris Team", Alias="paris-team",
           PrimarySmtpAddress="paris-team@contoso.com", ManagedBy=["pierre"],
           Members=["pierre@contoso.com"])
    s.live("Set-DistributionGroup", Identity="paris-team@contoso.com",
           GrantSendOnBehalfTo=["pierre@contoso.com"])
    root = s.write()
    result = adopt(root, load(root).customers["contoso"], _Unclosable(s.emulator))
    assert not [w for w in result.warnings if "not imported" in w], result.warnings
    plan = s.plan()
    assert not plan.changes, [c.to_dict() for c in plan.changes]
    london = yaml.safe_load((root / "customers/contoso/sites/london/imported.yaml").read_text())
    [support] = london["shared_mailboxes"]
    assert support["forwarding"] == {"internal": "carol@contoso.com", "deliver_to_mailbox": False}
    assert {"user": "bob@contoso.com", "access": ["FullAccess"], "automapping": False} in (
        support["permissions"])
    assert {"user": "Default", "role": "LimitedDetails"} in support["calendar_permissions"]
    [bob] = [u for u in london["user_mailboxes"] if u["user"] == "bob@contoso.com"]
    assert bob["forwarding"] == {"external": "bob@partner.example", "deliver_to_mailbox": True}
    paris = yaml.safe_load((root / "customers/contoso/sites/paris/imported.yaml").read_text())
    [pierre] = paris["user_mailboxes"]
    assert pierre["auto_reply"]["state"] == "Scheduled"
    assert pierre["auto_reply"]["external_message"] == "Absent."
