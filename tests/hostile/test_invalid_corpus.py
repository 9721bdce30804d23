"""Every kind of invalid input, old and new, through every command: exit 1 naming file:line,
no traceback, nothing written, nothing a terminal or CI runner would obey."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reconciler.desired import loader, yamlfile
from reconciler.plan.plan import checksum_of
from tests.hostile.corpus import WORKFLOW_COMMAND, q
from tests.hostile.harness import assert_clean, every_command, example_repo, run, tree_digest

F = "customers/contoso/bad.yaml"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
BIG_ALIASES = ("x-big: &big " + "y" * 1_000_000 + "\nshared_mailboxes:\n"
               + "".join(f"  - {{name: *big, alias: m{i}}}\n" for i in range(2_000)))


def _away(start: str, end: str) -> str:
    return ("shared_mailboxes:\n  - name: Away\n    auto_reply:\n      state: Scheduled\n"
            f"      start: {start}\n      end: {end}\n")


# name -> (file content, the line the error must name)
CASES: dict[str, tuple[str | bytes, int]] = {
    "billion-laughs": (LAUGHS, 1),
    "big-scalar-through-aliases": (BIG_ALIASES, 1),
    "deep-nesting": ("a: " + "[" * 100 + "]" * 100 + "\n", 1),
    "python-tag": ("shared_mailboxes:\n  - !!python/object/apply:os.system [id]\n", 2),
    "unknown-tag": ("shared_mailboxes:\n  - name: !secret x\n", 2),
    "not-utf8": (b"shared_mailboxes:\n  - name: caf\xe9\n", 2),
    "nul": (b"shared_mailboxes:\n  - name: a\x00b\n", 2),
    "utf16": ("shared_mailboxes: []\n".encode("utf-16"), 1),
    "duplicate-key": ("shared_mailboxes:\n  - name: A\n    name: B\n", 3),
    "path-trick-alias": ("shared_mailboxes:\n  - name: A\n    alias: ../../etc/passwd\n", 3),
    "path-trick-domain": ("shared_mailboxes:\n  - name: A\n    domain: ../evil.com\n", 3),
    "escape-in-key": (f"shared_mailboxes:\n  - name: A\n    {q(chr(27) + '[2J')}: 1\n", 3),
    "workflow-command-key": (f"shared_mailboxes:\n  - name: A\n    {q(WORKFLOW_COMMAND)}: 1\n", 3),
    "html-key": ("shared_mailboxes:\n  - name: A\n    '<img src=x onerror=alert(1)>': 1\n", 3),
    "february-30": (_away("2026-02-30T00:00:00Z", "2026-03-02T00:00:00Z"), 5),
    "past-year-9999": (_away("2026-01-01T00:00:00Z", "9999-12-31T23:00:00-05:00"), 6),
    "hour-25": (_away("2026-01-01T25:00:00Z", "2026-01-02T00:00:00Z"), 5),
    "end-before-start": (_away("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"), 4),
}


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_input_through_every_command(tmp_path: Path, case: str) -> None:
    content, line = CASES[case]
    repo = example_repo(tmp_path, {F: content})
    before = tree_digest(repo)
    plan_file = tmp_path / "plan.json"
    for result in every_command(repo, plan_file):
        assert_clean(result)
        assert result.exit_code == 1, (result.args[0], result.output[-500:])
        if result.args[-2:] != ["--format", "json"]:
            assert f"bad.yaml:{line}:" in result.output, (case, result.args, result.output[-800:])
    assert not plan_file.exists()
    assert tree_digest(repo) == before


def test_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    repo = example_repo(tmp_path, {F: "\ufeffshared_mailboxes:\n  - name: Marked\n"})
    assert run(["validate", str(repo)]).exit_code == 0


def test_a_file_over_the_size_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlfile, "MAX_FILE_BYTES", 10_000)
    repo = example_repo(tmp_path, {F: "shared_mailboxes: []\n" + "# padding\n" * 2_000})
    result = run(["validate", str(repo)])
    assert result.exit_code == 1 and "bad.yaml:1:1:" in result.stderr
    assert "larger than" in result.stderr


def test_a_repository_over_the_total_budget(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    repo = example_repo(tmp_path)
    total = sum(p.stat().st_size for p in (repo / "customers").rglob("*.yaml"))
    monkeypatch.setattr(loader, "MAX_REPOSITORY_BYTES", total - 1)
    result = run(["validate", str(repo)])
    assert result.exit_code == 1 and "in total" in result.stderr
    assert ".yaml:1:1:" in result.stderr


def test_a_big_scalar_through_aliases_is_refused_fast(tmp_path: Path) -> None:
    repo = example_repo(tmp_path, {F: BIG_ALIASES})
    result = run(["validate", str(repo)])
    assert result.exit_code == 1
    assert "MiB of text" in result.stderr


def _acting(plan: dict) -> dict:
    return next(c for c in plan["changes"] if c["operations"])


def _saved(tmp_path: Path, repo: Path, tamper) -> Path:  # type: ignore[no-untyped-def]
    """A saved plan changed by ``tamper`` and given a checksum that matches again."""
    out = tmp_path / "plan.json"
    assert run(["plan", str(repo), "--out", str(out)]).exit_code == 0
    data = json.loads(out.read_text())
    tamper(data)
    data["checksum"] = checksum_of(data["format_version"], data["changes"])
    out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize("tamper", [
    lambda d: _acting(d)["operations"][0].__setitem__("parameters", ["Identity", "x"]),
    lambda d: _acting(d).__setitem__("operations", {"cmdlet": "Remove-Mailbox"}),
    lambda d: _acting(d).__setitem__("action", "explode"),
    lambda d: d["changes"].__setitem__(0, "not a change"),
    lambda d: _acting(d).__setitem__("customer", ["contoso"]),
], ids=["parameters-list", "operations-mapping", "unknown-action", "change-text",
        "customer-list"])
def test_a_malformed_saved_plan_names_its_field(tmp_path: Path, tamper) -> None:  # type: ignore[no-untyped-def]
    repo = example_repo(tmp_path)
    out = _saved(tmp_path, repo, tamper)
    before = tree_digest(repo)
    result = run(["apply", str(out), "--path", str(repo)])
    assert result.exit_code == 1
    assert_clean(result)
    assert re.search(r"is not a valid plan: changes\[\d+\]", result.stderr), result.stderr
    assert tree_digest(repo) == before


def test_a_saved_plan_nested_too_deep_is_an_error_not_a_crash(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    out = tmp_path / "plan.json"
    out.write_text("[" * 100_000 + "]" * 100_000)
    before = tree_digest(repo)
    result = run(["apply", str(out), "--path", str(repo)])
    assert result.exit_code == 1
    assert_clean(result)
    assert "plan.json is not a plan: nested too deep" in result.stderr, result.stderr
    assert tree_digest(repo) == before


def test_a_snapshot_nested_too_deep_is_an_error_not_a_crash(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    (live / "contoso.json").write_text('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = run(["plan", str(repo), "--customer", "contoso", "--live", f"snapshot:{live}"])
    assert result.exit_code == 1
    assert_clean(result)
    assert "contoso.json: not valid JSON: nested too deep" in result.stderr, result.stderr
