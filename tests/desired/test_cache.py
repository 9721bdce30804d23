"""The parse cache serves a file's loaded result only while its bytes and the product's version
are the same, and every check across files still runs on what it serves."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tracemalloc
from pathlib import Path

import pytest

from reconciler.desired import cache as cache_module
from reconciler.desired import load
from reconciler.desired.cache import CACHE_DIR, ParseCache
from reconciler.desired.yamlfile import MAX_FILE_BYTES
from reconciler.errors import InputError
from tests.desired.conftest import write_repo

MAILBOXES = """\
shared_mailboxes:
  - name: Front Desk
    alias: front
    permissions:
      - {user: ann@acme.com, access: [FullAccess]}
  - name: Sales
    calendar_permissions:
      - {user: bob@acme.com, role: Reviewer}
"""
OTHER = """\
shared_mailboxes:
  - name: Support
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "repo", {
        "customers/acme/sites/hq/mailboxes.yaml": MAILBOXES,
        "customers/acme/sites/hq/other.yaml": OTHER,
    })


def loaded(root: Path) -> tuple[object, ParseCache]:
    cache = ParseCache.of_repository(root)
    return load(root, cache=cache), cache


def stored(entry: Path) -> tuple[str, object, list[list[int]]]:
    """An entry's key, data and marks (its digest checked)."""
    head, payload = entry.read_bytes().split(b"\n")
    header = json.loads(head)
    assert header["format"] == cache_module.ENTRY_FORMAT
    assert header["sha256"] == hashlib.sha256(payload).hexdigest()
    data, marks = json.loads(payload)
    return header["key"], data, marks


def rewrite(entry: Path, data: object, marks: list[list[int]]) -> None:
    """Store other data under the entry's key as this program would: digest and all."""
    key, _, _ = stored(entry)
    entry.write_bytes(cache_module.entry_body(key, data, marks))


def sources(state: object) -> dict[str, tuple[str, int, int]]:
    (customer,) = state.customers.values()  # type: ignore[attr-defined]
    return {rid: (Path(r.source.file).name, r.source.line, r.source.column)
            for rid, r in customer.resources.items()}


def test_a_warm_cache_gives_the_same_state_and_positions(root: Path) -> None:
    plain = load(root)
    cold, first = loaded(root)
    warm, second = loaded(root)
    assert first.hits == 0 and first.misses == 5  # customer, two sites, two resource files
    assert second.hits == 5 and second.misses == 0
    assert plain == cold == warm
    assert sources(warm) == sources(plain)
    (customer,) = warm.customers.values()  # type: ignore[attr-defined]
    grant = customer.resources["front@acme.com"].permissions[0]
    assert (grant.source.line, grant.source.column) == (5, 9)
    # Data only: every entry is JSON.
    entries = list((root / CACHE_DIR).glob("*.json"))
    assert len(entries) == 5 and all(stored(e)[1] for e in entries)


def test_touching_nothing_or_only_the_time_serves_every_file(root: Path) -> None:
    loaded(root)
    later = os.stat(root / "customers/acme/sites/hq/mailboxes.yaml").st_mtime + 100
    os.utime(root / "customers/acme/sites/hq/mailboxes.yaml", (later, later))
    state, cache = loaded(root)
    assert (cache.hits, cache.misses) == (5, 0)
    assert state == load(root)


def test_an_edited_file_is_parsed_again(root: Path) -> None:
    loaded(root)
    path = root / "customers/acme/sites/hq/mailboxes.yaml"
    path.write_text(MAILBOXES.replace("alias: front", "alias: reception"))
    state, cache = loaded(root)
    assert (cache.hits, cache.misses) == (4, 1)
    assert "reception@acme.com" in sources(state) and "front@acme.com" not in sources(state)
    assert state == load(root)


def test_a_renamed_file_is_served_under_its_new_name(root: Path) -> None:
    loaded(root)
    old = root / "customers/acme/sites/hq/mailboxes.yaml"
    old.rename(old.with_name("desk.yaml"))
    state, cache = loaded(root)
    assert (cache.hits, cache.misses) == (5, 0)
    assert sources(state)["front@acme.com"] == ("desk.yaml", 2, 5)
    assert sources(state) == sources(load(root))


def test_another_product_version_parses_everything_again(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded(root)
    cache_module.product_version.cache_clear()
    monkeypatch.setattr(cache_module, "__version__", "999.0")
    try:
        state, cache = loaded(root)
    finally:
        cache_module.product_version.cache_clear()
    assert (cache.hits, cache.misses) == (0, 5)
    assert state == load(root)


def test_problems_across_cached_files_are_still_found(root: Path) -> None:
    loaded(root)
    # Both files unchanged except that the second now declares the first's identity.
    (root / "customers/acme/sites/hq/other.yaml").write_text(
        OTHER + "  - name: Front Desk\n    alias: front\n")
    with pytest.raises(InputError) as uncached:
        load(root)
    with pytest.raises(InputError) as cached:
        load(root, cache=ParseCache.of_repository(root))
    assert [str(p) for p in cached.value.problems] == [str(p) for p in uncached.value.problems]
    assert "front@acme.com is declared twice" in str(cached.value.problems[0])
    assert "mailboxes.yaml:2:5" in str(cached.value.problems[0])


def test_an_invalid_file_is_never_cached(root: Path) -> None:
    path = root / "customers/acme/sites/hq/other.yaml"
    path.write_text("shared_mailboxes:\n  - name: Support\n    archive: perhaps\n")
    for _ in range(2):
        with pytest.raises(InputError):
            loaded(root)
    # Nothing at all is written while the repository is invalid, the valid files' entries
    # included; they are written by the first load that succeeds.
    assert not (root / CACHE_DIR).exists()
    path.write_text("shared_mailboxes:\n  - name: Support\n    archive: true\n")
    loaded(root)
    cache = ParseCache.of_repository(root)
    assert cache.key(path.read_bytes(), "resources") + ".json" in {
        p.name for p in (root / CACHE_DIR).iterdir()}


def test_an_entry_that_does_not_fit_its_data_is_not_served(root: Path) -> None:
    loaded(root)
    for entry in (root / CACHE_DIR).glob("*.json"):
        _, data, marks = stored(entry)
        rewrite(entry, data, marks[:-1])
    state, cache = loaded(root)
    assert (cache.hits, cache.misses) == (0, 5)
    assert state == load(root)


def test_an_entry_of_an_older_format_is_not_served(root: Path) -> None:
    # Format 1 counted lines and columns from 1, format 2 from 0: read as absent, never shifted.
    loaded(root)
    for entry in (root / CACHE_DIR).glob("*.json"):
        key, data, marks = stored(entry)
        entry.write_text(json.dumps({"format": "reconciler-parse-cache/2", "key": key,
                                     "data": data, "marks": marks}))
    state, cache = loaded(root)
    assert (cache.hits, cache.misses) == (0, 5)
    assert sources(state) == sources(load(root))


def test_the_cache_ignores_itself_in_git(root: Path) -> None:
    loaded(root)
    assert (root / CACHE_DIR / ".gitignore").read_text() == "*\n"


def test_the_version_covers_every_module_the_parse_and_the_schema_check_use() -> None:
    """A cached file skips its parse and schema check: any code of the product that decides
    their outcome must change the version. The messages' types (errors, model) are not stored."""
    package = Path(cache_module.__file__).resolve().parent.parent
    used = set()
    for module in ("desired/yamlfile.py", "desired/schema.py"):
        text = (package / module).read_text(encoding="utf-8")
        used |= {f"{name.replace('.', '/')}.py"
                 for name in re.findall(r"^from reconciler\.([\w.]+) import", text, re.M)}
        used |= {f"desired/{name}.py" for name in re.findall(r"^from \.(\w+) import", text, re.M)}
    assert used - {"errors.py", "model.py"} <= set(cache_module._SOURCES)
    assert {"desired/yamlfile.py", "desired/schema.py", "desired/cache.py"} <= set(
        cache_module._SOURCES)


@pytest.mark.parametrize("damage", ["truncated", "one byte changed", "hand-edited data",
                                    "hand-edited marks", "text for marks", "empty"])
def test_an_entry_changed_by_anything_else_is_not_served(root: Path, damage: str) -> None:
    """Every entry damaged one way: none is served, the load is what a parse gives (no
    traceback, no unchecked data, no wrong line)."""
    loaded(root)
    for entry in (root / CACHE_DIR).glob("*.json"):
        raw = entry.read_bytes()
        if damage == "truncated":
            raw = raw[:len(raw) - 3]
        elif damage == "one byte changed":
            raw = raw[:-2] + bytes([raw[-2] ^ 1]) + raw[-1:]
        elif damage == "empty":
            raw = b""
        else:
            head, payload = raw.split(b"\n")
            data, marks = json.loads(payload)
            if damage == "hand-edited data":
                data = json.loads(json.dumps(data).replace('"Support"', '"Poisoned"'))
            elif damage == "hand-edited marks":
                marks = [[n + 7 for n in row] for row in marks]
            else:
                marks = [[str(n) for n in row] for row in marks]
            raw = head + b"\n" + json.dumps([data, marks]).encode()
        entry.write_bytes(raw)
    state, cache = loaded(root)
    assert (cache.hits, cache.misses) == (0, 5)
    assert state == load(root) and sources(state) == sources(load(root))


def test_asking_whether_a_huge_file_is_cached_reads_no_more_than_a_file_may_hold(
        root: Path) -> None:
    """Parsing ahead asks the cache about every file before the loader's size check: a file
    of gigabytes must not be read whole into memory to answer."""
    huge = root / "customers/acme/sites/hq/huge.yaml"
    with open(huge, "wb") as f:
        f.truncate(4 * MAX_FILE_BYTES)  # sparse: no disk is used
    cache = ParseCache(root / CACHE_DIR)
    tracemalloc.start()
    try:
        assert not cache.holds(huge, "resources")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MAX_FILE_BYTES
