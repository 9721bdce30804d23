"""Apply end to end through the command line: saved plans and their refusals, plan-and-apply,
partial failure and the re-run that finishes the job."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from reconciler.live.backend import BadParameter
from tests.apply.conftest import BASE_SNAPSHOT, LONDON, Repo

TEAM = """\
    shared_mailboxes:
      - name: Team A
        alias: team-a
        permissions:
          - {user: alice@contoso.com, access: [FullAccess, SendAs]}
      - name: Team B
        alias: team-b
    distribution_groups:
      - name: London All
        alias: london-all
        owners: [alice@contoso.com]
        members: [alice@contoso.com, bob@contoso.com, carol@contoso.com, team-a@contoso.com]
      - name: Team A Friends
        alias: team-a-friends
        owners: [alice@contoso.com]
        members: [team-a@contoso.com, bob@contoso.com]
    """


def _save_plan(cli, repo: Repo, tmp_path: Path) -> tuple[Path, dict]:
    out = tmp_path / "plan.json"
    run = cli("plan", repo.root, "--out", out)
    assert run.code == 0, run.err
    return out, json.loads(out.read_text())


def test_saved_plan_applied_then_next_plan_says_no_changes(cli, repo: Repo, tmp_path: Path):
    repo.yaml(LONDON, TEAM)
    out, saved = _save_plan(cli, repo, tmp_path)
    planned = sum(len(c["operations"]) for c in saved["changes"])
    assert planned > 0

    run = cli("apply", out, "--path", repo.root)
    assert run.code == 0, run.out + run.err
    assert f"Apply complete: {planned} succeeded, 0 failed, 0 skipped." in run.out
    assert repo.backend.write_count == planned  # each planned call made once, nothing else
    assert all(n == 1 for n in repo.backend.writes.values())

    again = cli("plan", repo.root, "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out
    journal = repo.root / ".reconciler" / "journal" / "contoso.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["event"] for r in records].count("start") == planned
    assert [r["event"] for r in records].count("done") == planned


def test_plan_and_apply_in_one_go_needs_approval_without_a_terminal(cli, repo: Repo):
    repo.yaml(LONDON, TEAM)
    refused = cli("apply", repo.root)
    assert refused.code == 1 and "--auto-approve" in refused.err
    assert repo.backend.write_count == 0
    done = cli("apply", repo.root, "--auto-approve")
    assert done.code == 0, done.out + done.err
    assert "Apply complete" in done.out
    assert "No changes." in cli("apply", repo.root, "--auto-approve").out


def test_stale_saved_plan_is_refused_and_changes_nothing(cli, repo: Repo, tmp_path: Path):
    repo.yaml(LONDON, TEAM)
    repo.yaml("sites/london/support.yaml", """\
        shared_mailboxes:
          - name: Support London
            alias: support-london
            permissions:
              - {user: alice@contoso.com, access: [FullAccess]}
        """)
    out, _ = _save_plan(cli, repo, tmp_path)
    # Someone grants access by hand after the plan was made.
    repo.live("Add-MailboxPermission", Identity="support-london@contoso.com",
              User="sam@contoso.com", AccessRights=["FullAccess"], InheritanceType="All")
    before = repo.backend.write_count
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 1
    assert "stale" in run.err
    assert "contoso/london/shared_mailbox/support-london@contoso.com: live permissions " \
           "changed" in run.err
    assert "team-a" not in run.err  # only what moved is listed
    assert "Nothing was changed" in run.err
    assert repo.backend.write_count == before


def test_desired_state_edited_since_the_plan_is_refused(cli, repo: Repo, tmp_path: Path):
    repo.yaml(LONDON, TEAM)
    out, _ = _save_plan(cli, repo, tmp_path)
    repo.yaml(LONDON, TEAM.replace("[FullAccess, SendAs]", "[FullAccess]"))
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 1
    assert "contoso/london/shared_mailbox/team-a@contoso.com: desired permissions changed" \
        in run.err
    assert repo.backend.write_count == 0


def test_tampered_plan_is_refused(cli, repo: Repo, tmp_path: Path):
    repo.yaml(LONDON, TEAM)
    out, saved = _save_plan(cli, repo, tmp_path)
    change = next(c for c in saved["changes"] if c["operations"])
    change["operations"][0]["parameters"]["Identity"] = "ceo-office@contoso.com"
    out.write_text(json.dumps(saved))
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 1 and "checksum" in run.err
    assert repo.backend.write_count == 0


def test_unknown_format_version_is_refused(cli, repo: Repo, tmp_path: Path):
    repo.yaml(LONDON, TEAM)
    out, saved = _save_plan(cli, repo, tmp_path)
    saved["format_version"] = "2.0"
    out.write_text(json.dumps(saved))
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 1 and "format_version 2.0" in run.err
    assert repo.backend.write_count == 0


def test_plan_over_safety_limits_is_refused_unless_allowed(cli, repo: Repo, tmp_path: Path):
    repo.customer_extra = "  policy:\n    prune: true\n    max_deletes: 1\n"
    repo.write()
    run = cli("apply", repo.root, "--auto-approve")
    assert run.code == 1 and "refused" in run.err
    assert repo.backend.write_count == 0
    allowed = cli("apply", repo.root, "--auto-approve", "--allow-large-changes")
    assert allowed.code == 0, allowed.out + allowed.err
    assert repo.backend.write_count > 0


def test_partial_failure_reports_and_rerun_applies_only_the_remainder(cli, repo: Repo):
    repo.yaml(LONDON, TEAM)
    repo.fail("New-Mailbox", lambda: BadParameter("The name \"Team A\" is reserved.",
                                                  cmdlet="New-Mailbox"), Name="Team A")
    run = cli("apply", repo.root, "--auto-approve")
    assert run.code == 1
    out = run.out
    assert "Failed:\n  contoso/london/shared_mailbox/team-a@contoso.com: New-Mailbox " \
           "team-a@contoso.com: The name \"Team A\" is reserved." in out
    skipped = out.split("Skipped (something they depend on failed):\n")[1]
    # Later operations of the failed change, and other changes' operations that name it.
    assert "team-a@contoso.com: Add-MailboxPermission team-a@contoso.com (alice@contoso.com)" \
        in skipped
    assert "london-all@contoso.com: Add-DistributionGroupMember london-all@contoso.com " \
           "(team-a@contoso.com)" in skipped
    assert "team-a-friends@contoso.com: New-DistributionGroup" in skipped
    succeeded = out.split("Succeeded:\n")[1].split("\n\n")[0]
    assert "contoso/london/shared_mailbox/team-b@contoso.com: New-Mailbox" in succeeded
    assert "Run plan again" in out
    first = set(repo.backend.writes)

    rerun = cli("apply", repo.root, "--auto-approve")
    assert rerun.code == 0, rerun.out + rerun.err
    # Only what failed or was skipped ran the second time; nothing that succeeded ran twice.
    assert all(n == 1 for n in repo.backend.writes.values()), repo.backend.writes
    second = set(repo.backend.writes) - first
    assert any(k.startswith("New-Mailbox") for k in second)
    assert any(k.startswith("New-DistributionGroup") for k in second)
    assert "No changes." in cli("plan", repo.root).out


def test_saved_plan_for_another_repository_is_refused(cli, repo: Repo, tmp_path: Path):
    repo.yaml(LONDON, TEAM)
    out, _ = _save_plan(cli, repo, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "customers").mkdir(parents=True)
    run = cli("apply", out, "--path", elsewhere)
    assert run.code == 1 and "contoso" in run.err and "--path" in run.err
    assert repo.backend.write_count == 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "applied"), [("yes", True), ("n", False)])
def test_plan_and_apply_asks_on_a_terminal(cli, repo: Repo, monkeypatch: pytest.MonkeyPatch,
                                           answer: str, applied: bool):
    repo.yaml(LONDON, TEAM)
    monkeypatch.setattr("sys.stdin", _Terminal(answer + "\n"))
    run = cli("apply", repo.root)
    assert "Apply these changes?" in run.out
    assert (run.code == 0) == applied
    assert (repo.backend.write_count > 0) == applied


def test_unmanaged_resources_changing_do_not_make_a_plan_stale(cli, repo: Repo, tmp_path: Path):
    repo.yaml(LONDON, TEAM)
    out, saved = _save_plan(cli, repo, tmp_path)
    assert any(c["action"] == "unmanaged" for c in saved["changes"])
    repo.live("Set-Mailbox", Identity="old-projects@contoso.com", DisplayName="Old Projects 2")
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 0, run.err


def test_safety_limits_are_checked_again_not_trusted_from_the_file(cli, repo: Repo,
                                                                    tmp_path: Path):
    repo.customer_extra = "  policy:\n    prune: true\n    max_deletes: 1\n"
    repo.write()
    out = tmp_path / "plan.json"
    assert cli("plan", repo.root, "--out", out, "--allow-large-changes").code == 0
    saved = json.loads(out.read_text())
    assert saved["refusals"]
    saved["refusals"] = []  # not covered by the checksum
    out.write_text(json.dumps(saved))
    run = cli("apply", out, "--path", repo.root)
    assert run.code == 1 and "max_deletes" in run.err
    assert repo.backend.write_count == 0


def test_a_read_only_snapshot_is_not_applied_to(cli, tmp_path: Path):
    repo = Repo(tmp_path / "repo")
    repo.yaml(LONDON, TEAM)
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    (snapshots / "contoso.json").write_text(json.dumps(BASE_SNAPSHOT))
    run = cli("apply", repo.root, "--auto-approve", "--live", f"snapshot:{snapshots}")
    assert run.code == 1 and "read-only" in run.err
    assert not (repo.root / ".reconciler" / "journal").exists()


def test_progress_is_a_redrawn_line_on_a_terminal_and_log_lines_in_ci(cli, repo: Repo):
    from reconciler.cli.apply_cmd import apply_progress

    repo.yaml(LONDON, TEAM)
    run = cli("apply", repo.root, "--auto-approve")
    lines = [line for line in run.err.splitlines() if line.startswith("apply [")]
    assert lines and lines[0].startswith("apply [1/")
    assert "succeeded contoso/london/" in lines[0]

    terminal = _Terminal()
    show = apply_progress(terminal)
    ref = SimpleNamespace(address="contoso/london/shared_mailbox/x",
                          op=SimpleNamespace(cmdlet="New-Mailbox"))
    show(None, ref, 0, 2)
    show(object(), ref, 2, 2)
    text = terminal.getvalue()
    assert "\r\x1b[2KApplying: 0/2 contoso/london/shared_mailbox/x: New-Mailbox" in text
    assert text.endswith("Applying: 2/2 contoso/london/shared_mailbox/x: New-Mailbox\n")
