"""reconciler access: who can reach a mailbox and what a user can reach, from the desired
state and from live state, as text, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from reconciler.adopt.access import AccessIndex
from reconciler.model import AccessGrant, DistributionGroup, Location, SharedMailbox
from tests.adopt.conftest import EXAMPLE, fresh_live, run

LONDON = Location("contoso", "london")


def test_who_can_reach_a_mailbox_from_desired_state() -> None:
    result = run("access", str(EXAMPLE), "--mailbox", "support-london@contoso.com",
                 "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["origin"] == "desired state" and data["kind"] == "reconciler-access"
    got = {(a["right"], a["principal"], a["detail"]) for a in data["access"]}
    assert got == {("FullAccess", "alice@contoso.com", ""), ("FullAccess", "bob@contoso.com", ""),
                   ("SendAs", "alice@contoso.com", ""),
                   ("Calendar", "carol@contoso.com", "Reviewer"),
                   ("Calendar", "Default", "AvailabilityOnly")}
    text = run("access", str(EXAMPLE), "--mailbox", "support-london@contoso.com").stdout
    assert "Read and manage (FullAccess):   alice@contoso.com, bob@contoso.com" in text
    assert "Send on behalf:                 nobody" in text


def test_what_a_user_can_reach_from_desired_state() -> None:
    result = run("access", str(EXAMPLE), "--user", "BOB@contoso.com", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    got = {(r["right"], r["mailbox"]) for r in rows}
    assert got == {("FullAccess", "support-london@contoso.com"),
                   ("SendAs", "sales-london@contoso.com"),
                   ("Calendar", "alice@contoso.com"),
                   ("Member", "london-all@contoso.com"),
                   ("ForwardsTo", "dave@contoso.com")}
    # Each row names its YAML entry, relative to the repository.
    assert all(r["source"].startswith("customers/contoso/")
               and (EXAMPLE / r["source"].rpartition(":")[0]).is_file() for r in rows)


def test_grants_to_a_group_reach_its_members() -> None:
    team = DistributionGroup(id="team@contoso.com", located_at=LONDON, name="Team",
                             owners=("alice@contoso.com",), members=("carol@contoso.com",))
    inbox = SharedMailbox(id="inbox@contoso.com", located_at=LONDON, name="Inbox",
                          permissions=(AccessGrant("team@contoso.com", frozenset({"SendAs"})),))
    index = AccessIndex([team, inbox])
    [via] = [a for a in index.of_user("carol@contoso.com") if a.mailbox == "inbox@contoso.com"]
    assert (via.right, via.via) == ("SendAs", "team@contoso.com")
    # Owning the group passes nothing down; being a member is itself reported.
    assert {a.right for a in index.of_user("alice@contoso.com")} == {"Owner"}
    assert {(a.principal, a.via) for a in index.on_mailbox("inbox@contoso.com")} == {
        ("team@contoso.com", ""), ("carol@contoso.com", "team@contoso.com")}


def test_live_answers_resolve_exchange_principals(tmp_path: Path) -> None:
    live = fresh_live(tmp_path)
    result = run("access", str(EXAMPLE), "--user", "alice@contoso.com", "--live",
                 f"sandbox:{live}", "--customer", "contoso", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["origin"] == "live state"
    got = {(a["right"], a["mailbox"]) for a in data["access"]}
    # Exchange names alice "Alice Smith" as a member and "alice" as owner of London All.
    assert {("Member", "london-all@contoso.com"), ("Owner", "london-all@contoso.com")} <= got
    assert ("FullAccess", "support-london@contoso.com") in got


def test_exactly_one_question_and_a_known_mailbox() -> None:
    assert run("access", str(EXAMPLE)).exit_code == 1
    both = run("access", str(EXAMPLE), "--mailbox", "a@b", "--user", "c@d")
    assert both.exit_code == 1 and "exactly one" in both.stderr
    missing = run("access", str(EXAMPLE), "--mailbox", "nobody@contoso.com")
    assert missing.exit_code == 1
    assert "no mailbox or group nobody@contoso.com in the desired state" in missing.stderr


def test_live_question_about_one_mailbox_reads_only_that_mailbox(tmp_path: Path) -> None:
    from reconciler.adopt.access import live_index
    from reconciler.desired import load
    from tests.plan.conftest import Scenario, _Unclosable

    s = Scenario(tmp_path)
    s.live("New-Mailbox", Shared=True, Name="Support", Alias="support",
           PrimarySmtpAddress="support@contoso.com")
    s.live("New-Mailbox", Shared=True, Name="Other", Alias="other",
           PrimarySmtpAddress="other@contoso.com")
    # A mail-enabled security group: a plain distribution group cannot be granted SendAs.
    s.live("New-DistributionGroup", Name="Team", Alias="team", Type="Security",
           PrimarySmtpAddress="team@contoso.com", ManagedBy=["alice"], Members=["Carol White"])
    s.live("Add-RecipientPermission", Identity="support@contoso.com", Trustee="team",
           AccessRights=["SendAs"], Confirm=False)
    s.live("Add-MailboxPermission", Identity="support@contoso.com", User="bob",
           AccessRights=["FullAccess"], InheritanceType="All")
    customer = load(s.write()).customers["contoso"].customer
    s.emulator.calls.clear()
    index = live_index(customer, _Unclosable(s.emulator), mailbox="support@contoso.com")
    got = {(a.right, a.principal, a.via) for a in index.on_mailbox("support@contoso.com")}
    assert {("FullAccess", "bob@contoso.com", ""), ("SendAs", "team@contoso.com", ""),
            ("SendAs", "carol@contoso.com", "team@contoso.com")} <= got
    # One mailbox read, not the tenant: no tenant-wide mailbox or SendAs read, and FullAccess
    # read for support alone (twice: once more with the group it grants to).
    assert s.emulator.calls["Get-MailboxPermission"] == 2
    assert s.emulator.calls["Get-DistributionGroupMember"] == 1
    mailbox_reads = s.emulator.calls["Get-Mailbox"]
    assert mailbox_reads == 3  # support, team (not a mailbox), support again
