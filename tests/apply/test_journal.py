"""A damaged journal: a last line torn by a kill is ignored with a warning and never blocks a
later apply; any other unreadable line is a clear error naming the file and the line, and the
documented recovery (move it aside, plan again) converges without running anything twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.apply.conftest import LONDON, Repo
from tests.apply.test_apply import TEAM
from tests.apply.test_exactly_once import Crash

JOURNAL = Path(".reconciler/journal/contoso.jsonl")


def _crash_after(cli, repo: Repo, out: Path, cmdlet: str) -> Path:
    """Apply the saved plan and die right after ``cmdlet`` committed: its end line is lost."""
    repo.concurrency = 1
    repo.write()
    assert cli("plan", repo.root, "--out", out).code == 0
    repo.fail(cmdlet, Crash, after_commit=True, Identity="team-a@contoso.com")
    with pytest.raises(Crash):
        cli("apply", out, "--path", repo.root)
    return repo.root / JOURNAL


def test_a_last_line_torn_inside_a_character_is_ignored_with_a_warning(cli, repo: Repo,
                                                                       tmp_path: Path):
    repo.yaml(LONDON, TEAM)
    journal = _crash_after(cli, repo, tmp_path / "plan.json", "Add-MailboxPermission")
    start = json.loads(journal.read_text().splitlines()[-1])
    assert start["event"] == "start"
    # The kill landed while the end line was being written, inside a two-byte character.
    done = json.dumps({**start, "event": "done", "outcome": "terminé"}, ensure_ascii=False)
    cut = done.encode()[:done.encode().index("é".encode()) + 1]
    with journal.open("ab") as fh:
        fh.write(cut)
    run = cli("apply", tmp_path / "plan.json", "--path", repo.root)
    assert run.code == 0, run.out + run.err
    assert "this is a bug" not in run.out + run.err
    assert f"Warning: the journal {journal} ends in a line cut short" in run.out
    # The operation it was about read as unfinished: read back, not sent again.
    add = next(line for line in run.out.splitlines() if "Add-MailboxPermission team-a" in line)
    assert "committed by an earlier run" in add
    assert all(n == 1 for n in repo.backend.writes.values()), repo.backend.writes
    # The torn remainder was dropped before the next record: the journal reads cleanly again.
    lines = journal.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])
    again = cli("apply", tmp_path / "plan.json", "--path", repo.root)
    assert again.code == 0 and "cut short" not in again.out + again.err


def test_an_unreadable_line_is_an_error_naming_it_and_the_recovery_converges(cli, repo: Repo,
                                                                             tmp_path: Path):
    repo.yaml(LONDON, TEAM)
    journal = _crash_after(cli, repo, tmp_path / "plan.json", "Add-RecipientPermission")
    lines = journal.read_text().splitlines()
    record = json.loads(lines[1])
    lines[1] = json.dumps({**record, "op": "one"})
    journal.write_text("\n".join(lines) + "\n")
    writes = repo.backend.write_count

    run = cli("apply", tmp_path / "plan.json", "--path", repo.root)
    assert run.code == 1
    assert (f"the journal {journal} is damaged at line 2: the operation index 'one' is not an "
            f"integer") in run.err
    assert f"mv {journal} {journal}.damaged" in run.err and "Traceback" not in run.err
    assert "this is a bug" not in run.err
    assert repo.backend.write_count == writes  # nothing was changed

    # The recovery docs/apply.md gives: move it aside, plan again, apply that.
    journal.rename(journal.with_name(journal.name + ".damaged"))
    done = cli("apply", repo.root, "--auto-approve")
    assert done.code == 0, done.out + done.err
    assert all(n == 1 for n in repo.backend.writes.values()), repo.backend.writes
    assert "No changes." in cli("plan", repo.root).out


@pytest.mark.parametrize("line", [b"not json at all", b"[1, 2]", b'{"op": 3}',
                                  b'{"event": "done", "op": 1, "address": "x"}',
                                  "{\"event\": \"caf\u00e9\"}".encode("latin-1")])
def test_each_kind_of_damage_in_the_middle_is_named(tmp_path: Path, line: bytes):
    from reconciler.errors import ReconcilerError
    from reconciler.live.journal import Journal

    journal = Journal(tmp_path, "contoso")
    journal.append("start", plan="p", address="a", op=0, cmdlet="New-Mailbox")
    journal.close()
    with journal.path.open("ab") as fh:
        fh.write(line + b"\n")
        fh.write(b'{"event": "done", "plan": "p", "address": "a", "op": 0}\n')
    with pytest.raises(ReconcilerError, match=r"is damaged at line 2: "):
        journal.view("p")
