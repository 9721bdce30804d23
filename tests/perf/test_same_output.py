"""The fast paths change nothing but time: the plan JSON is the same, byte for byte, as the one
the plain paths make (the emulator copying and checking every call, Python's own garbage
collection), on the example repository and on a generated one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.live.snapshot_format import load_snapshot
from reconciler.plan.planner import plan_desired
from tests.perf.conftest import commit_all


def reference_json(root: Path, live: Path) -> str:
    """The plan made the plain way: a checking, copying emulator per customer."""
    desired = load(root)
    result = plan_desired(desired, lambda state: Emulator(
        load_snapshot(live / f"{state.customer.id}.json")))
    return result.plan.to_json()


def cli_json(root: Path, live: Path, *extra: str) -> str:
    result = CliRunner().invoke(cli, ["plan", str(root), "--live", f"snapshot:{live}",
                                      "--format", "json", *extra])
    assert result.exit_code in (0, 2), result.output
    return result.stdout


@pytest.mark.parametrize("policy", ["freeze", "pause", "normal"])
def test_example_plan_is_byte_identical(example_copy: tuple[Path, Path], policy: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, live = example_copy
    monkeypatch.setenv("RECONCILER_GC", policy)
    expected = reference_json(root, live)
    assert '"changes"' in expected and '"update"' in expected
    assert cli_json(root, live) == expected


@pytest.mark.parametrize("policy", ["freeze", "pause"])
def test_generated_plan_is_byte_identical(generated_copy: tuple[Path, Path], policy: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root, live = generated_copy
    monkeypatch.setenv("RECONCILER_GC", policy)
    expected = reference_json(root, live)
    assert expected.count('"action": "update"') == 8  # the 2% drift
    assert cli_json(root, live) == expected


def test_a_warm_cache_and_a_pull_requests_plan_give_the_same_bytes(
        generated_copy: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.desired import loader

    root, live = generated_copy
    commit_all(root)
    expected = reference_json(root, live)
    assert cli_json(root, live, "--no-cache") == expected
    assert not (root / ".reconciler" / "cache").exists()
    assert cli_json(root, live) == expected  # fills the cache
    assert len(list((root / ".reconciler" / "cache").glob("*.json"))) == 2 + 10 + 8
    assert cli_json(root, live) == expected  # served from it

    path = root / "customers/customer-0/sites/site-0/mailboxes-0000.yaml"
    path.write_text(path.read_text().replace("    alias: mbx-0\n",
                                             "    alias: mbx-0\n    archive: true\n"))
    read: list[str] = []
    original = loader.read_bytes

    def spy(file: str, display: str, *within: str) -> bytes:
        read.append(file)
        return original(file, display, *within)

    monkeypatch.setattr(loader, "read_bytes", spy)
    warm = cli_json(root, live, "--changed-since", "HEAD")
    base = [Path(f).name for f in read if "reconciler-base-" in f]
    # At the base ref: the edited file, with the settings, customer and site files alone.
    assert sorted(base) == sorted(["mailboxes-0000.yaml", "customer.yaml",
                                   "reconciler.yaml"] + ["site.yaml"] * 10)
    assert cli_json(root, live, "--changed-since", "HEAD", "--no-cache") == warm
    changes = json.loads(warm)["changes"]
    assert [(c["action"], c["id"]) for c in changes] == [("update", "mbx-0@customer-0.example")]


def test_calendar_grantees_sharing_a_display_name_give_the_same_bytes(
        example_copy: tuple[Path, Path]) -> None:
    """A second "Bob Jones" with entries on two calendars: the read-only tenant names each
    grantee once per stored form, and the reader tells the two apart, as the plain path does."""
    from tests.snapshots import add_user

    root, live = example_copy
    path = live / "contoso.json"
    snap = json.loads(path.read_text())
    twin = add_user(snap, "bob.jones", "Bob Jones")
    for folder in ("alice:\\Calendar", "board-room-3:\\Calendar"):
        snap["mailbox_folder_permissions"].append(
            {"Identity": folder, "User": "bob.jones", "AccessRights": ["Reviewer"],
             "SharingPermissionFlags": "None"})
    path.write_text(json.dumps(snap))
    expected = reference_json(root, live)
    removed = [op for change in json.loads(expected)["changes"] for op in change["operations"]
               if op["cmdlet"] == "Remove-MailboxFolderPermission"]
    assert sorted(op["parameters"]["User"] for op in removed) == [twin, twin]
    assert cli_json(root, live) == expected
