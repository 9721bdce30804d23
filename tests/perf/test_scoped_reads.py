"""A pull request's plan reads what it changes: targeted reads, nothing paged tenant-wide, and
the same changes as a full plan shows for those resources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.emulator import Emulator
from reconciler.live.snapshot_format import load_snapshot
from tests.perf.conftest import commit_all

TENANT_WIDE = ("Get-Recipient", "Get-Mailbox", "Get-DistributionGroup",
               "Get-RecipientPermission")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    original = Emulator.invoke

    def invoke(self: Emulator, cmdlet: str, parameters: Any = None, *a: Any) -> Any:
        seen.append((cmdlet, dict(parameters or {})))
        return original(self, cmdlet, parameters, *a)

    monkeypatch.setattr(Emulator, "invoke", invoke)
    return seen


def plan(root: Path, live: Path, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["plan", str(root), "--live", f"snapshot:{live}",
                                      "--format", "json", "--no-cache", *extra])
    assert result.exit_code in (0, 2), result.output
    return json.loads(result.stdout)


def test_a_pull_requests_plan_pages_nothing_and_matches_the_full_plan(
        generated_copy: tuple[Path, Path], tmp_path: Path,
        calls: list[tuple[str, dict[str, Any]]]) -> None:
    root, base_live = generated_copy
    # Live drift on the mailboxes the pull request edits: a grantee nobody declared (Exchange
    # names it by its Name), and a calendar entry removed.
    emulator = Emulator(load_snapshot(base_live / "customer-0.json"))
    stranger = "user-19-site-5@customer-0.example"
    emulator.invoke("Add-MailboxPermission", {"Identity": "mbx-0@customer-0.example",
                                              "User": stranger, "AccessRights": ["FullAccess"],
                                              "InheritanceType": "All"})
    emulator.invoke("Remove-MailboxFolderPermission",
                    {"Identity": "mbx-1@customer-0.example:\\Calendar",
                     "User": "user-8-site-0@customer-0.example"})
    live = tmp_path / "live"
    live.mkdir()
    (live / "customer-0.json").write_text(json.dumps(emulator.to_snapshot()))

    commit_all(root)
    path = root / "customers/customer-0/sites/site-0/mailboxes-0000.yaml"
    text = path.read_text()
    for n in range(3):
        text = text.replace(f"    alias: mbx-{n}\n", f"    alias: mbx-{n}\n    archive: true\n")
    path.write_text(text)
    scope = {f"mbx-{n}@customer-0.example" for n in range(3)}

    full = plan(root, live)
    calls.clear()
    scoped = plan(root, live, "--changed-since", "HEAD")

    expected = [c for c in full["changes"] if c["id"] in scope]
    assert [c["id"] for c in scoped["changes"]] == sorted(scope)
    assert scoped["changes"] == expected
    removal = json.dumps(expected[0])
    assert stranger in removal  # the stranger is named by its address, as in the full plan
    paged = [(c, p) for c, p in calls if c in TENANT_WIDE and not {"Identity", "Filter"} & set(p)]
    assert paged == []
    assert len(calls) <= 20


def test_a_pull_request_creating_a_mailbox_asks_only_for_soft_deleted_ones_holding_it(
        generated_copy: tuple[Path, Path], tmp_path: Path,
        calls: list[tuple[str, dict[str, Any]]]) -> None:
    """A create is checked against the soft-deleted mailboxes that hold its address: a pull
    request's plan asks for those by filter, never for every soft-deleted mailbox."""
    root, base_live = generated_copy
    emulator = Emulator(load_snapshot(base_live / "customer-0.json"))
    for alias in ("help-desk", "unrelated"):
        emulator.invoke("New-Mailbox", {"Shared": True, "Name": alias, "Alias": alias,
                                        "PrimarySmtpAddress": f"{alias}@customer-0.example"})
        emulator.invoke("Remove-Mailbox", {"Identity": f"{alias}@customer-0.example"})
    live = tmp_path / "live"
    live.mkdir()
    (live / "customer-0.json").write_text(json.dumps(emulator.to_snapshot()))
    commit_all(root)
    path = root / "customers/customer-0/sites/site-0/mailboxes-0000.yaml"
    path.write_text(path.read_text() + "  - name: Help Desk\n")

    full = plan(root, live)
    calls.clear()
    scoped = plan(root, live, "--changed-since", "HEAD")

    wanted = "help-desk@customer-0.example"
    assert [c["id"] for c in scoped["changes"]] == [wanted]
    assert scoped["changes"] == [c for c in full["changes"] if c["id"] == wanted]
    assert "Undo-SoftDeletedMailbox" in json.dumps(scoped["changes"])  # recovered, not created
    soft = [p for c, p in calls if c == "Get-Mailbox" and p.get("SoftDeletedMailbox")]
    assert soft and all(wanted in p.get("Filter", "") for p in soft)
    paged = [(c, p) for c, p in calls if c in TENANT_WIDE and not {"Identity", "Filter"} & set(p)]
    assert paged == []
