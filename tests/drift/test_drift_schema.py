"""schemas/drift.schema.json: real `reconciler drift --format json` reports, covering every
class, action and record kind, validate against it; the schema is valid draft 2020-12, agrees
with the code's classes and with the plan schema's change, and rejects a wrong report."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.drift import CLASSES
from reconciler.drift.report import (
    CHANGED_OUTSIDE_GIT,
    NOT_YET_APPLIED,
    PENDING_PROPAGATION,
    SECURITY_FINDING,
    UNMANAGED,
)
from reconciler.live import applied as state
from tests.drift.conftest import LONDON, SUPPORT_YAML, DriftScenario
from tests.schemas import assert_valid_schema, schema_errors

SCHEMA_DIR = Path(__file__).parents[2] / "schemas"
SCHEMA_FILE = SCHEMA_DIR / "drift.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
PARIS = "sites/paris/mailboxes.yaml"
SALES_YAML = """\
  - name: Sales
    alias: sales
    permissions:
      - {user: bob@contoso.com, access: [FullAccess]}
"""
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def _drift_json(s: DriftScenario, tmp: Path, out: Path | None = None,
                ) -> tuple[int, dict[str, Any]]:
    """`reconciler drift --format json` on the scenario, the emulated tenant as a snapshot;
    with ``out``, written to that file by `--out`."""
    s.write()
    live = s.save_tenant(tmp / "live")
    extra = ["--out", str(out)] if out is not None else []
    result = CliRunner().invoke(cli, ["drift", str(s.root), "--live", f"snapshot:{live}",
                                      "--format", "json", *extra])
    assert result.exit_code in (0, 2), result.stderr
    text = out.read_text(encoding="utf-8") if out is not None else result.stdout
    return result.exit_code, json.loads(text)


def _applied(s: DriftScenario, text: str) -> DriftScenario:
    s.yaml(LONDON, text)
    s.converge()
    return s.commit("applied").mark_applied()


def _grant(text: str, user: str) -> str:
    """``text`` with ``user``'s FullAccess grant extended by SendAs."""
    old = f"{{user: {user}, access: [FullAccess]}}"
    assert old in text
    return text.replace(old, f"{{user: {user}, access: [FullAccess, SendAs]}}")


def _mixed(s: DriftScenario) -> None:
    """All four classes: one resource split between changed outside git and not yet applied,
    a grant applied and not yet visible, and a room declared nowhere."""
    _applied(s, SUPPORT_YAML + "    archive: false\n" + SALES_YAML)
    s.yaml(LONDON, _grant(s.files[LONDON], "bob@contoso.com"))
    s.commit("grant bob SendAs").mark_applied().record_pending()
    s.live("Enable-Mailbox", Identity="support@contoso.com", Archive=True)
    s.yaml(LONDON, _grant(s.files[LONDON], "alice@contoso.com"))
    s.live("New-Mailbox", Room=True, Name="Old Room", Alias="old-room",
           PrimarySmtpAddress="old-room@contoso.com")


def _pruned(s: DriftScenario) -> None:
    """policy prune: true: an entry removed from YAML, and a room declared nowhere."""
    s.policy("prune: true\n")
    _applied(s, SUPPORT_YAML + SALES_YAML)
    s.yaml(LONDON, SUPPORT_YAML)
    s.live("New-Mailbox", Room=True, Name="Old Room", Alias="old-room",
           PrimarySmtpAddress="old-room@contoso.com")


def _moved(s: DriftScenario) -> None:
    """A move and a new entry in YAML, and a mailbox deleted outside git."""
    support = "  - name: Support\n    alias: support\n"
    _applied(s, "shared_mailboxes:\n" + SALES_YAML + support)
    s.yaml(LONDON, "shared_mailboxes:\n" + SALES_YAML + "  - name: Team\n")
    s.yaml(PARIS, "shared_mailboxes:\n" + support)
    s.live("Remove-Mailbox", Identity="sales@contoso.com", Confirm=False)


def _no_record(s: DriftScenario) -> None:
    """Never applied: no applied ref, a warning, and a note on each difference."""
    s.yaml(LONDON, SUPPORT_YAML)
    s.commit("never applied")


def _clean(s: DriftScenario) -> None:
    _applied(s, SUPPORT_YAML)


def _forwarding(s: DriftScenario) -> None:
    """An external forward set in the portal on a user mailbox the YAML does not declare."""
    _applied(s, SUPPORT_YAML)
    s.live("Set-Mailbox", Identity="alice@contoso.com",
           ForwardingSmtpAddress="smtp:drop@evil.example")


SCENARIOS: dict[str, Callable[[DriftScenario], None]] = {
    "mixed": _mixed, "pruned": _pruned, "moved": _moved, "no_record": _no_record,
    "clean": _clean, "forwarding": _forwarding,
}


@dataclass
class Reports:
    by_scenario: dict[str, dict[str, Any]] = field(default_factory=dict)
    mixed_file: Path | None = None  # the mixed report as `--out FILE` wrote it


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reports]:
    """Each scenario's real report; the mixed one as the file `--out` wrote."""
    out = Reports()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(state.PENDING_ENV, raising=False)  # apply's default pending window
        for name, build in SCENARIOS.items():
            tmp = tmp_path_factory.mktemp(name)
            root = tmp / "repo"
            root.mkdir()
            s = DriftScenario(root)
            build(s)
            if name == "mixed":
                out.mixed_file = tmp / "drift.json"
            code, report = _drift_json(s, tmp, out.mixed_file if name == "mixed" else None)
            assert code == (2 if report["drift"] else 0)
            out.by_scenario[name] = report
    yield out


def _errors(instance: Any) -> list[str]:
    return schema_errors(SCHEMA, instance)


def test_schema_is_valid_draft_2020_12() -> None:
    assert_valid_schema(SCHEMA)


def test_schema_agrees_with_the_code_and_the_plan_schema() -> None:
    assert tuple(SCHEMA["$defs"]["class"]["enum"]) == CLASSES
    assert tuple(SCHEMA["$defs"]["counts"]["required"]) == CLASSES
    plan = json.loads((SCHEMA_DIR / "plan.schema.json").read_text(encoding="utf-8"))
    # An item is a plan change plus its class: the two definitions must not diverge.
    assert SCHEMA["$defs"]["change"] == plan["$defs"]["change"]
    assert SCHEMA["$defs"]["id"] == plan["$defs"]["id"]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_real_reports_validate(reports: Reports, name: str) -> None:
    report = reports.by_scenario[name]
    assert _errors(report) == []
    # What the schema cannot say: the counts and the drift flag follow from the items.
    counted = dict.fromkeys(CLASSES, 0)
    for item in report["items"]:
        counted[item["class"]] += 1
    assert report["summary"] == counted
    assert report["drift"] == any(i["class"] != PENDING_PROPAGATION for i in report["items"])


def test_the_reports_cover_every_class_action_and_record(
        reports: Reports) -> None:
    items = [i for r in reports.by_scenario.values() for i in r["items"]]
    assert {i["class"] for i in items} == set(CLASSES)
    assert {(i["class"], i["action"]) for i in items} >= {
        (CHANGED_OUTSIDE_GIT, "update"), (CHANGED_OUTSIDE_GIT, "create"),
        (NOT_YET_APPLIED, "update"), (NOT_YET_APPLIED, "create"), (NOT_YET_APPLIED, "move"),
        (NOT_YET_APPLIED, "delete"), (PENDING_PROPAGATION, "update"),
        (UNMANAGED, "unmanaged"), (UNMANAGED, "delete"), (SECURITY_FINDING, "update")}
    assert all(any(key in i for i in items) for key in ("moved_from", "notes", "source"))
    records = [rec for r in reports.by_scenario.values() for rec in r["records"]]
    assert {rec["commit"] is None for rec in records} == {True, False}
    assert {rec["note"] is None for rec in records} == {True, False}
    by = reports.by_scenario
    assert {r["drift"] for r in by.values()} == {True, False}
    assert by["clean"]["items"] == [] and by["clean"]["sites"][0]["site"] == "-"
    assert by["no_record"]["warnings"]
    mixed = by["mixed"]["items"]
    assert [i["class"] for i in mixed if i["id"] == "support@contoso.com"] == [
        CHANGED_OUTSIDE_GIT, NOT_YET_APPLIED]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split("/")

    def mutate(report: dict[str, Any]) -> None:
        node: Any = report
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


_DELETE = object()
# Items of the mixed report, in report order: unmanaged, pending, changed outside git, not yet.
MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown class": _set("items/2/class", "drifted"),
    "class missing": _set("items/2/class", _DELETE),
    "wrong kind": _set("kind", "reconciler-plan"),
    "kind missing": _set("kind", _DELETE),
    "format_version not a string": _set("format_version", 1.0),
    "drift not a boolean": _set("drift", "yes"),
    "summary count negative": _set("summary/unmanaged", -1),
    "summary count a string": _set("summary/unmanaged", "1"),
    "summary class missing": _set("summary/pending_propagation", _DELETE),
    "site row class missing": _set("sites/0/unmanaged", _DELETE),
    "site not an id": _set("sites/1/site", "London HQ"),
    "record without commit": _set("records/0/commit", _DELETE),
    "record commit not a hash": _set("records/0/commit", "HEAD"),
    "items missing": _set("items", _DELETE),
    "unmanaged action on another class": _set("items/0/class", CHANGED_OUTSIDE_GIT),
    "unmanaged class on an update": _set("items/2/class", UNMANAGED),
    "pending without operations": _set("items/1/operations", []),
    "unknown action": _set("items/3/action", "replace"),
    "bad cmdlet": _set("items/1/operations/0/cmdlet", "add permission"),
}


def test_the_mixed_report_is_the_one_mutated(reports: Reports) -> None:
    assert [i["class"] for i in reports.by_scenario["mixed"]["items"]] == [
        UNMANAGED, PENDING_PROPAGATION, CHANGED_OUTSIDE_GIT, NOT_YET_APPLIED]


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_wrong_report_is_rejected(reports: Reports, mutation: str) -> None:
    report = copy.deepcopy(reports.by_scenario["mixed"])
    MUTATIONS[mutation](report)
    assert _errors(report) != []


def test_unknown_keys_are_allowed(reports: Reports) -> None:
    """Consumers ignore keys they do not know, so a later minor version may add some."""
    report = copy.deepcopy(reports.by_scenario["mixed"])
    report["generated_by"] = "a later version"
    report["items"][0]["severity"] = "low"
    report["records"][0]["applied_at"] = "2026-01-01T00:00:00Z"
    report["sites"][0]["total"] = 1
    assert _errors(report) == []


def test_check_jsonschema_accepts_a_real_report_file(reports: Reports,
                                                     tmp_path: Path) -> None:
    written = reports.mixed_file
    assert written is not None
    tool = [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA_FILE)]
    proc = subprocess.run([*tool, str(written)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wrong = json.loads(written.read_text(encoding="utf-8"))
    wrong["items"][0]["class"] = "drifted"
    bad = tmp_path / "wrong.json"
    bad.write_text(json.dumps(wrong), encoding="utf-8")
    proc = subprocess.run([*tool, str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    proc = subprocess.run([str(CHECK_JSONSCHEMA), "--check-metaschema", str(SCHEMA_FILE)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
