"""A plan that parses its YAML on other cores reads its snapshots meanwhile: the same plan, byte
for byte, and never an emulator built from a file that has changed since."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.desired import ahead
from reconciler.emulator import snapshot_backend as snapshot
from reconciler.emulator.snapshot_backend import SnapshotBackend, preload
from reconciler.plan.planner import make_plan
from reconciler.sources.backends import preloads
from tests.perf.test_same_output import reference_json


@pytest.fixture
def slow_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers that take their time, so that the command certainly waits for them."""
    original = ahead.parse_file

    def slow(job: ahead.Job) -> ahead.Parsed | None:
        time.sleep(0.2)
        return original(job)

    monkeypatch.setattr(ahead, "parse_file", slow)  # inherited by the forked workers
    monkeypatch.setenv(ahead.VARIABLE, "2")


def test_the_snapshot_is_read_while_the_yaml_is_parsed_and_the_plan_is_the_same(
        generated_copy: tuple[Path, Path], slow_workers: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root, live = generated_copy
    expected = reference_json(root, live)
    built: list[str] = []
    original = snapshot.preload

    def spy(directory: Path, cid: str, *rest: Any) -> snapshot.Preloaded | None:
        found = original(directory, cid, *rest)
        built.append(cid if found is not None else "")
        return found

    monkeypatch.setattr("reconciler.sources.backends.preload", spy)
    loaded: list[str] = []
    original_load = SnapshotBackend._load

    def load_spy(self: SnapshotBackend) -> object:
        loaded.append("here" if self._emulator is None else "preloaded")
        return original_load(self)

    monkeypatch.setattr(SnapshotBackend, "_load", load_spy)
    result = make_plan(root, live_source=f"snapshot:{live}")
    assert built == ["customer-0"]
    # Built once, ahead; the plan's backend served that one.
    assert loaded.count("here") == 1 and "preloaded" in loaded
    assert result.plan.to_json() == expected


def test_an_emulator_built_from_a_file_since_replaced_is_not_served(
        generated_copy: tuple[Path, Path], tmp_path: Path) -> None:
    _, live = generated_copy
    directory = tmp_path / "live"
    directory.mkdir()
    path = directory / "customer-0.json"
    data = json.loads((live / "customer-0.json").read_bytes())
    path.write_text(json.dumps(data))
    early = preload(directory, "customer-0")
    assert early is not None
    first = data["mailboxes"][0]
    first["RetentionPolicy"] = "Default 2y" if first["RetentionPolicy"] != "Default 2y" \
        else "Default MRM Policy"
    path.write_text(json.dumps(data))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    backend = SnapshotBackend(directory, "customer-0")
    backend.adopt(early)
    row = backend.invoke("Get-Mailbox", {"Identity": first["PrimarySmtpAddress"]}).value[0]
    assert row["RetentionPolicy"] == first["RetentionPolicy"]  # read again, not the early one


def test_a_snapshot_that_cannot_be_read_ahead_fails_as_it_always_did(
        generated_copy: tuple[Path, Path], tmp_path: Path, slow_workers: None) -> None:
    root, _ = generated_copy
    directory = tmp_path / "live"
    directory.mkdir()
    (directory / "customer-0.json").write_text('{"format": "exchange-snapshot/1"')
    assert preload(directory, "customer-0") is None
    into: dict[str, snapshot.Preloaded] = {}
    for work in preloads(f"snapshot:{directory}", ["customer-0", "no-such"], into):
        work()
    assert into == {}
    with pytest.raises(Exception, match="not valid JSON"):
        make_plan(root, live_source=f"snapshot:{directory}")


def test_only_snapshots_are_read_ahead(tmp_path: Path) -> None:
    assert preloads("exchange", ["a"], {}) == []
    assert preloads(f"sandbox:{tmp_path}", ["a"], {}) == []
    assert preloads(None, ["a"], {}) == []
    assert preloads("nonsense:", ["a"], {}) == []
