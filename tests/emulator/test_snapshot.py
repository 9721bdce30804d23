"""The snapshot format: its published schema, validation on load, deterministic export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator, SnapshotError, load_snapshot, validate_snapshot
from reconciler.live.snapshot_format import SCHEMA, schema_json
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


def test_snapshot_not_in_utf8_is_refused_with_the_file_named(tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"format": "caf\xe9"}')
    with pytest.raises(SnapshotError, match=r"latin\.json: not valid JSON: not utf-8 text"):
        load_snapshot(path)


def test_loaded_rows_share_equal_values_and_keep_them_equal(tmp_path: Path) -> None:
    snap = seed()
    path = tmp_path / "t.json"
    path.write_text(json.dumps(snap))
    loaded = load_snapshot(path)
    assert loaded == snap
    rows = [r for r in loaded["mailbox_permissions"] if r["AccessRights"] == ["FullAccess"]]
    assert len(rows) > 1 and all(r["AccessRights"] is rows[0]["AccessRights"] for r in rows)
    users = [r["User"] for r in loaded["mailbox_folder_permissions"] if r["User"] == "Default"]
    assert len(users) > 1 and all(u is users[0] for u in users)


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


def _mutations() -> list[tuple[str, Any]]:
    def set_(path: str, value: Any) -> Any:
        def apply(snap: dict[str, Any]) -> None:
            *parents, last = path.split("/")
            target: Any = snap
            for part in parents:
                target = target[int(part)] if part.isdigit() else target[part]
            if value is _DELETE:
                del target[int(last) if last.isdigit() else last]
            else:
                target[int(last) if last.isdigit() else last] = value
        return apply

    return [
        ("format", set_("format", "exchange-snapshot/2")),
        ("extra top-level key", set_("mailbox_permision", [])),
        ("tenant id missing", set_("tenant/id", _DELETE)),
        ("no accepted domain", set_("tenant/accepted_domains", [])),
        ("recipient without address", set_("recipients/0/PrimarySmtpAddress", _DELETE)),
        ("archive status", set_("mailboxes/3/ArchiveStatus", "Maybe")),
        ("capacity negative", set_("mailboxes/3/ResourceCapacity", -1)),
        ("capacity as bool", set_("mailboxes/3/ResourceCapacity", True)),
        ("capacity as text", set_("mailboxes/3/ResourceCapacity", "12")),
        ("custom attribute too long", set_("mailboxes/0/CustomAttribute7", "x" * 1025)),
        ("rights not a list", set_("mailbox_permissions/0/AccessRights", "FullAccess")),
        ("a right not a string", set_("mailbox_permissions/0/AccessRights", ["FullAccess", 1])),
        ("a proxy address not a string", set_("recipients/0/EmailAddresses", [None])),
        ("archive status not a string", set_("mailboxes/3/ArchiveStatus", 1)),
        ("archive status null", set_("mailboxes/3/ArchiveStatus", None)),
        ("send-as control in lower case", set_("recipient_permissions/0/AccessControlType",
                                               "allow")),
        ("deny as string", set_("mailbox_permissions/0/Deny", "false")),
        ("folder identity without folder", set_("mailbox_folder_permissions/0/Identity",
                                                "alice")),
        ("auto-reply state", set_("auto_reply_configurations/0/AutoReplyState", "On")),
        ("member missing", set_("distribution_group_members/0/Member", _DELETE)),
        ("row not an object", set_("mailboxes/1", "alice")),
        ("top level not an object", None),
    ]


_DELETE = object()


@pytest.mark.parametrize("what,mutate", _mutations(), ids=[m[0] for m in _mutations()])
def test_fast_check_agrees_with_jsonschema(what: str, mutate: Any) -> None:
    import jsonschema

    from reconciler.live.snapshot_format import _fast_check

    snap: Any = seed()
    if mutate is None:
        snap = [snap]
    else:
        mutate(snap)
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(snap)
    assert _fast_check()(snap) is False
    with pytest.raises(SnapshotError):
        validate_snapshot(snap)


def test_fast_check_accepts_what_jsonschema_accepts() -> None:
    from reconciler.live.snapshot_format import _fast_check

    for customer in ("contoso", "fabrikam"):
        assert _fast_check()(seed(customer))
    for path in CONFORMANCE:
        assert _fast_check()(json.loads(path.read_text("utf-8")))


def _counted_validation(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The origins load_snapshot validates, from now on."""
    from reconciler.live import snapshot_format

    seen: list[str] = []
    original = snapshot_format.validate_snapshot

    def counted(snapshot: Any, origin: str = "snapshot") -> None:
        seen.append(origin)
        original(snapshot, origin)

    monkeypatch.setattr(snapshot_format, "validate_snapshot", counted)
    return seen


def _written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "customer.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_same_bytes_found_valid_are_not_validated_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.desired.cache import ParseCache

    cache = ParseCache(tmp_path / "cache")
    path = _written(tmp_path, json.dumps(seed()))
    seen = _counted_validation(monkeypatch)
    first = load_snapshot(path, cache)
    assert load_snapshot(path, cache) == first and len(seen) == 1
    assert len(list((tmp_path / "cache").glob("*.snapshot-check"))) == 1
    assert load_snapshot(path) == first and len(seen) == 2  # no cache: validated
    load_snapshot(path, ParseCache(None))  # a disabled cache records nothing
    assert len(seen) == 3


def test_a_changed_byte_is_validated_again_and_refused_as_without_a_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.desired.cache import ParseCache

    cache = ParseCache(tmp_path / "cache")
    text = json.dumps(seed())
    load_snapshot(_written(tmp_path, text), cache)
    seen = _counted_validation(monkeypatch)
    load_snapshot(_written(tmp_path, text + " "), cache)  # still valid, other bytes
    assert len(seen) == 1
    broken = text.replace('"ArchiveStatus": "None"', '"ArchiveStatus": "Nonf"', 1)
    assert broken != text and len(broken) == len(text)
    path = _written(tmp_path, broken)
    with pytest.raises(SnapshotError) as cached:
        load_snapshot(path, cache)
    with pytest.raises(SnapshotError) as plain:
        load_snapshot(path)
    assert str(cached.value) == str(plain.value) and "ArchiveStatus" in str(cached.value)
    with pytest.raises(SnapshotError):  # an invalid file is never recorded
        load_snapshot(path, cache)


def test_a_record_of_another_checker_version_or_altered_is_not_honoured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.desired.cache import ParseCache
    from reconciler.live import snapshot_format

    cache = ParseCache(tmp_path / "cache")
    path = _written(tmp_path, json.dumps(seed()))
    load_snapshot(path, cache)
    (record,) = (tmp_path / "cache").glob("*.snapshot-check")
    seen = _counted_validation(monkeypatch)
    record.write_text('{"valid": true}', encoding="utf-8")
    load_snapshot(path, cache)
    assert len(seen) == 1
    monkeypatch.setattr(snapshot_format, "checker_version", lambda: "another version")
    load_snapshot(path, cache)
    assert len(seen) == 2
