"""export --format csv and access --live put a mailbox the YAML declares where the YAML
declares it, not where the placement rules would (the example's finance mailbox is declared in
London and has Paris as its office live)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli

EXAMPLE = Path(__file__).parents[2] / "examples" / "desired-state"


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".reconciler"))
    assert CliRunner().invoke(cli, ["sandbox", "reset", str(repo)]).exit_code == 0
    return repo


def test_export_csv_and_access_live_use_the_declared_location(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    runner = CliRunner()
    out = tmp_path / "contoso.csv"
    done = runner.invoke(cli, ["export", str(repo), "--customer", "contoso", "--format", "csv",
                               "--out", str(out), "--live", "sandbox"])
    assert done.exit_code == 0, done.output
    rows = {(r["mailbox"], r["record"]): r for r in csv.DictReader(io.StringIO(out.read_text()))}
    assert rows[("finance@contoso.com", "mailbox")]["site"] == "london"
    assert rows[("old-room@contoso.com", "mailbox")]["site"] == "-"  # undeclared: as placed
    live = runner.invoke(cli, ["access", str(repo), "--mailbox", "finance@contoso.com",
                               "--live", "sandbox"])
    assert live.exit_code == 0, live.output
    assert "(shared_mailbox at contoso, site london)" in live.stdout
