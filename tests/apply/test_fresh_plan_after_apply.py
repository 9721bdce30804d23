"""A plan made after an apply is a new plan, even when its changes are word for word those of
the plan applied before (live was put back by hand): applying it does the work, while
replaying the old file is still answered from the journal."""

from __future__ import annotations

from pathlib import Path

from tests.apply.conftest import LONDON, Repo
from tests.apply.test_saved_verified import SUPPORT, SUPPORT_ADDRESS, _send_as


def _readd_send_as(repo: Repo) -> None:
    repo.live("Add-RecipientPermission", Identity="support-london@contoso.com",
              Trustee="alice@contoso.com", AccessRights=["SendAs"])


def test_a_new_plan_identical_to_an_applied_one_is_applied(cli, repo: Repo, tmp_path: Path):
    repo.yaml(LONDON, SUPPORT)
    first = tmp_path / "first.json"
    assert cli("plan", repo.root, "--out", first).code == 0
    assert cli("apply", first, "--path", repo.root).code == 0
    _readd_send_as(repo)  # someone undoes the apply by hand

    # The old file is a replay onto a tenant that moved: refused, nothing written.
    writes = repo.backend.write_count
    replay = cli("apply", first, "--path", repo.root)
    assert replay.code == 1 and "stale; it was applied on" in replay.err
    assert repo.backend.write_count == writes

    # The refusal says to make a new plan and review it; that plan is applied.
    second = tmp_path / "second.json"
    assert cli("plan", repo.root, "--out", second).code == 0
    run = cli("apply", second, "--path", repo.root)
    assert run.code == 0, run.out + run.err
    assert "Apply complete: 1 succeeded" in run.out
    assert _send_as(repo, "support-london@contoso.com") == []
    # ...and is then a replay itself: nothing to do, nothing written.
    writes = repo.backend.write_count
    again = cli("apply", second, "--path", repo.root)
    assert again.code == 0 and "already applied on" in again.out, again.out + again.err
    assert repo.backend.write_count == writes
    assert SUPPORT_ADDRESS not in again.err


def test_two_plans_made_with_no_apply_between_are_byte_identical(cli, repo: Repo,
                                                                 tmp_path: Path):
    repo.yaml(LONDON, SUPPORT)
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert cli("plan", repo.root, "--out", one).code == 0
    assert cli("plan", repo.root, "--out", two).code == 0
    assert one.read_bytes() == two.read_bytes()


def test_the_replay_message_says_nothing_to_do_with_the_date(cli, repo: Repo, tmp_path: Path):
    repo.yaml(LONDON, SUPPORT)
    out = tmp_path / "plan.json"
    assert cli("plan", repo.root, "--out", out).code == 0
    assert cli("apply", out, "--path", repo.root).code == 0
    again = cli("apply", out, "--path", repo.root)
    assert again.code == 0
    import re
    assert re.search(r"already applied on \d{4}-\d\d-\d\dT[\d:]+Z; nothing to do", again.out), \
        again.out


def test_plan_reads_the_journal_quietly_and_a_torn_line_is_still_apply_s_to_report(
        cli, repo: Repo, tmp_path: Path, caplog):
    repo.yaml(LONDON, SUPPORT)
    out = tmp_path / "plan.json"
    assert cli("plan", repo.root, "--out", out).code == 0
    assert cli("apply", out, "--path", repo.root).code == 0
    journal = repo.root / ".reconciler/journal/contoso.jsonl"
    with journal.open("ab") as fh:
        fh.write(b'{"event": "start", "plan": "sha256:x", "address": "caf\xc3')
    _readd_send_as(repo)
    caplog.clear()
    run = cli("plan", repo.root, "--out", tmp_path / "new.json")
    assert run.code == 0 and "cut short" not in run.out + run.err + caplog.text
    applied = cli("apply", tmp_path / "new.json", "--path", repo.root)
    assert applied.code == 0, applied.out + applied.err
    assert "cut short" in applied.out + applied.err
