"""The snapshot format: its published schema, validation on load, deterministic export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.emulator import Emulator, SnapshotError, load_snapshot
from reconciler.emulator.snapshot_schema import SCHEMA, schema_json
from tests.emulator.conftest import REPO, SEEDS, seed

CONFORMANCE = sorted(Path("/work/shared/conformance").glob("*/live/*.json"))


def test_published_schema_is_the_one_the_code_validates_with() -> None:
    published = (REPO / "schemas" / "snapshot.schema.json").read_text("utf-8")
    assert published == schema_json()
    assert json.loads(published)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_seeds_validate_with_the_json_schema_package_itself() -> None:
    import jsonschema

    for path in sorted(SEEDS.glob("*.json")):
        jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(path.read_text("utf-8")))


@pytest.mark.skipif(not CONFORMANCE, reason="shared conformance cases not present")
@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.parent.parent.name)
def test_conformance_snapshots_load(path: Path) -> None:
    em = Emulator(load_snapshot(path))
    assert em.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}).value


def test_invalid_snapshot_names_the_file_and_each_problem(tmp_path: Path) -> None:
    snap = seed()
    del snap["tenant"]["id"]
    snap["mailboxes"][0]["ArchiveStatus"] = "Maybe"
    snap["mailbox_permision"] = []
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(snap))
    with pytest.raises(SnapshotError) as e:
        load_snapshot(path)
    text = str(e.value)
    assert str(path) in text and "'id' is a required property" in text
    assert "mailboxes/0/ArchiveStatus" in text and "mailbox_permision" in text


def test_unparseable_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{ nope")
    with pytest.raises(SnapshotError, match=r"x\.json:1:3: not valid JSON"):
        load_snapshot(path)


def test_entry_naming_an_unknown_mailbox_is_refused() -> None:
    snap = seed()
    snap["mailbox_permissions"].append({"Identity": "ghost", "User": "alice",
                                        "AccessRights": ["FullAccess"]})
    with pytest.raises(SnapshotError, match="'ghost'"):
        Emulator(snap)


def test_round_trip_is_stable_and_does_not_touch_the_input() -> None:
    snap = seed()
    before = json.dumps(snap, sort_keys=True)
    once = Emulator(snap).to_snapshot()
    assert json.dumps(snap, sort_keys=True) == before
    assert json.dumps(Emulator(once).to_snapshot()) == json.dumps(once)
    assert {m["PrimarySmtpAddress"] for m in once["mailboxes"]} == {
        m["PrimarySmtpAddress"] for m in snap["mailboxes"]}
    assert len(once["mailbox_permissions"]) == len(snap["mailbox_permissions"])
    assert len(once["mailbox_folder_permissions"]) == len(snap["mailbox_folder_permissions"])


def test_export_after_changes_is_deterministic() -> None:
    def run() -> str:
        em = Emulator(seed())
        em.invoke("New-Mailbox", {"Shared": True, "Name": "Sales London",
                                  "Alias": "sales-london"})
        em.invoke("Add-MailboxPermission", {"Identity": "sales-london", "User": "bob",
                                            "AccessRights": "FullAccess"})
        return json.dumps(em.to_snapshot())

    assert run() == run()
