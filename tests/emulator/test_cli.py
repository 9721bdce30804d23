"""`reconciler sandbox init | reset | show`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from tests.emulator.conftest import SEEDS


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(SEEDS, tmp_path / "sandbox")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["sandbox", *args])
    return result.exit_code, result.output


def test_init_then_init_again_keeps(repo: Path) -> None:
    code, out = run("init", str(repo))
    assert code == 0 and "contoso: created" in out and "fabrikam: created" in out
    target = repo / ".reconciler" / "sandbox" / "contoso.json"
    data = json.loads(target.read_text())
    data["tenant"]["retention_policies"].append("Changed")
    target.write_text(json.dumps(data))
    code, out = run("init", str(repo))
    assert code == 0 and "contoso: kept" in out
    assert "Changed" in target.read_text()


def test_reset_overwrites(repo: Path) -> None:
    run("init", str(repo))
    target = repo / ".reconciler" / "sandbox" / "fabrikam.json"
    target.write_text("{}")
    code, out = run("reset", str(repo), "--customer", "fabrikam")
    assert code == 0 and "fabrikam: reset" in out and "contoso" not in out
    assert json.loads(target.read_text()) == json.loads((SEEDS / "fabrikam.json").read_text())


def test_show_summarises_counts_mailboxes_and_grants(repo: Path) -> None:
    run("init", str(repo))
    code, out = run("show", str(repo), "--customer", "contoso")
    assert code == 0, out
    assert "9 UserMailbox, 5 SharedMailbox, 2 RoomMailbox, 2 distribution groups" in out
    assert "support-london@contoso.com" in out
    assert "FullAccess alice@contoso.com" in out and "SendAs alice@contoso.com" in out
    assert "calendar bob@contoso.com Editor (Delegate)" in out
    assert "members: alice@contoso.com, bob@contoso.com" in out
    assert "fabrikam" not in out


def test_show_without_init_says_what_to_do(repo: Path) -> None:
    code, out = run("show", str(repo))
    assert code == 1 and "reconciler sandbox init" in out


def test_init_without_seeds_is_an_error(tmp_path: Path) -> None:
    code, out = run("init", str(tmp_path))
    assert code == 1 and "no seed snapshots" in out


def test_group_lists_its_commands() -> None:
    code, out = run("--help")
    assert code == 0
    for name in ("init", "reset", "show"):
        assert name in out
