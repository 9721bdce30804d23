"""Import and export of calendars as Exchange Online has them: a localised calendar folder is
read and exported under its own name, and a room's booking is adopted into YAML."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from reconciler.plan.planner import make_plan
from tests.adopt.conftest import fresh_live, run


def _shaped_live(tmp_path: Path) -> Path:
    """The seed tenant, with a grant on Lena's German calendar and a room with a booking
    delegate."""
    live = fresh_live(tmp_path)
    path = live / "contoso.json"
    snap = json.loads(path.read_text())
    lena = next(r["Identity"] for r in snap["mailbox_folder_permissions"]
                if r["Identity"].endswith(":\\Kalender"))
    snap["mailbox_folder_permissions"].append(
        {"Identity": lena, "User": "Marie Dubois", "AccessRights": ["Reviewer"],
         "SharingPermissionFlags": "None"})
    snap["calendar_processing"] = [
        {"Identity": "board-room-3", "AutomateProcessing": "AutoAccept",
         "AllBookInPolicy": False, "AllRequestInPolicy": True,
         "ForwardRequestsToDelegates": True, "ResourceDelegates": ["alice"]}]
    path.write_text(json.dumps(snap))
    return live


def _entries(root: Path, key: str) -> dict[str, dict[str, object]]:
    out = {}
    for path in root.rglob("imported.yaml"):
        for entry in yaml.safe_load(path.read_text()).get(key) or ():
            out[entry.get("user") or entry["alias"]] = entry
    return out


def test_import_reads_a_localised_calendar_and_a_rooms_booking(bare_repo: Path,
                                                                tmp_path: Path) -> None:
    live = _shaped_live(tmp_path)
    result = run("import", "--customer", "contoso", str(bare_repo), "--live", f"sandbox:{live}")
    assert result.exit_code == 0, result.output + result.stderr
    assert "Kalender" not in result.output + result.stderr  # no "calendar not read" warning
    lena = _entries(bare_repo, "user_mailboxes")["lena@contoso.com"]
    assert lena["calendar_permissions"] == [{"user": "marie@contoso.com", "role": "Reviewer"}]
    room = _entries(bare_repo, "room_mailboxes")["board-room-3"]
    assert room["booking"] == {"automate": "AutoAccept", "all_book_in_policy": False,
                               "delegates": ["alice@contoso.com"]}
    plan = make_plan(bare_repo, live_source=f"sandbox:{live}", customers=["contoso"]).plan
    assert not plan.has_changes, [c.to_dict() for c in plan.actionable]


def test_export_keeps_the_calendars_own_name_and_the_booking(bare_repo: Path,
                                                             tmp_path: Path) -> None:
    live = _shaped_live(tmp_path)
    out = tmp_path / "contoso.json"
    result = run("export", "--customer", "contoso", str(bare_repo), "--live", f"sandbox:{live}",
                 "--out", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    snap = json.loads(out.read_text())
    kalender = [r for r in snap["mailbox_folder_permissions"]
                if r["Identity"].endswith(":\\Kalender")]
    assert {r["User"] for r in kalender} == {"Default", "Anonymous", "Marie Dubois"}
    (room,) = [r for r in snap["calendar_processing"]
               if r["AllBookInPolicy"] is False]
    assert room["ResourceDelegates"] == ["alice"]
