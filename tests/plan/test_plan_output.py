"""The plan as a product surface: JSON schema, renderers, the `plan` command's flags and exit
codes, and --changed-since."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.plan.plan import Change, Operation, Plan
from reconciler.render.markdown import GITHUB_COMMENT_LIMIT, render_markdown
from reconciler.render.text import render_text
from tests.plan.conftest import Scenario

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())
LONDON = "sites/london/mailboxes.yaml"


def _rich(scenario: Scenario) -> Scenario:
    scenario.live("New-Mailbox", Shared=True, Name="Support", Alias="support",
                  PrimarySmtpAddress="support@contoso.com")
    scenario.live("Set-Mailbox", Identity="support@contoso.com", Office="Paris")
    scenario.live("New-Mailbox", Room=True, Name="Old Room", Alias="old-room",
                  PrimarySmtpAddress="old-room@contoso.com")
    return scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Support
            permissions:
              - {user: bob@contoso.com, access: [FullAccess]}
          - name: Sales
        user_mailboxes:
          - user: alice@contoso.com
            retention_policy: Contoso 2y
        """)


def _snapshot_dir(scenario: Scenario, tmp_path: Path) -> Path:
    live = tmp_path / "live"
    live.mkdir(exist_ok=True)
    (live / "contoso.json").write_text(json.dumps(scenario.emulator.to_snapshot()))
    return live


def test_plan_json_validates_against_the_published_schema(scenario: Scenario) -> None:
    plan = _rich(scenario).plan()
    data = json.loads(plan.to_json())
    jsonschema.validate(data, SCHEMA)
    assert data["format_version"] == "1.0"
    assert data["summary"] == {"create": 1, "update": 2, "delete": 0, "move": 0,
                               "unmanaged": 1}
    restored = [Change.from_dict(c) for c in data["changes"]]
    assert Plan(changes=restored).checksum == data["checksum"]


def test_text_says_no_changes_and_nothing_after_it(scenario: Scenario) -> None:
    scenario.yaml(LONDON, "user_mailboxes:\n  - user: alice@contoso.com\n")
    text = render_text(scenario.plan())
    assert text == "No changes. The live mailboxes match the desired state.\n"


def test_text_opens_with_the_legend_and_closes_with_unmanaged_then_the_summary(
        scenario: Scenario) -> None:
    plan = _rich(scenario).plan()
    plain = render_text(plan)
    assert plain.startswith("Symbols:\n  + create\n  ~ update in place\n  ? unmanaged")
    assert "  - delete" not in plain  # only the symbols this plan uses
    assert ("  + shared_mailbox sales@contoso.com  will be created  "
            "[customers/contoso/sites/london/mailboxes.yaml:5]") in plain
    assert ("  ~ shared_mailbox support@contoso.com  will be updated in place (moved from "
            "contoso / paris)  [customers/contoso/sites/london/mailboxes.yaml:2]") in plain
    # Unmanaged entries come after every change, in their own section, once explained.
    unmanaged = plain.index("Unmanaged (1).")
    assert plain.index("sales@contoso.com") < unmanaged
    assert "  ? contoso / customer level: room_mailbox old-room@contoso.com  (Old Room)" in (
        plain[unmanaged:])
    assert plain.rstrip().endswith("Plan: 1 to add, 2 to change, 0 to destroy, 0 to move; "
                                   "1 unmanaged.")
    assert "\x1b[32m" in render_text(plan, colour=True)


def test_text_shows_one_grant_per_line_and_no_json_null(scenario: Scenario) -> None:
    scenario.yaml(LONDON, """\
        shared_mailboxes:
          - name: Sales
            permissions:
              - {user: alice@contoso.com, access: [FullAccess, SendAs]}
              - {user: bob@contoso.com, access: [SendAs]}
        user_mailboxes:
          - user: alice@contoso.com
            convert_to: shared
        """)
    text = render_text(scenario.plan())
    assert ("      + permissions:\n"
            "      +   alice@contoso.com: access FullAccess, SendAs\n"
            "      +   bob@contoso.com: access SendAs\n") in text
    assert "      ~ convert_to: (unset) -> shared\n" in text
    assert "null" not in text and "Exchange call(s)" not in text
    assert "      1 Exchange call:\n" in text and "Exchange calls:\n" in text


def test_markdown_summary_first_destructive_open_unmanaged_last_links_at_head(
        scenario: Scenario) -> None:
    from reconciler.render.common import RenderContext

    scenario.live("New-Mailbox", Shared=True, Name="Gone", Alias="gone",
                  PrimarySmtpAddress="gone@contoso.com")
    scenario.policy("prune: true\nprotect: [old-room@contoso.com]\n")
    plan = _rich(scenario).plan()
    context = RenderContext(source_url="https://github.com/acme/repo/blob/0123abc/")
    text = render_markdown(plan, context=context)
    lines = text.splitlines()
    assert lines[0] == "### Reconciler plan"
    assert lines[2].startswith("**Plan: 1 to add, 2 to change, 1 to destroy, 0 to move; "
                               "1 unmanaged.**")
    assert "<details open><summary><code>- shared_mailbox gone@contoso.com</code>" in text
    assert "<details><summary><code>+ shared_mailbox sales@contoso.com</code>" in text
    assert ('<a href="https://github.com/acme/repo/blob/0123abc/customers/contoso/sites/'
            'london/mailboxes.yaml#L5">customers/contoso/sites/london/mailboxes.yaml:5</a>'
            ) in text
    assert "#### contoso / london" in text
    unmanaged = text.index("#### Unmanaged (1)")
    assert text.index("gone@contoso.com") < unmanaged < text.index("`old-room@contoso.com`")
    assert "protected by policy" in text[unmanaged:]


def _big_plan(n: int) -> Plan:
    changes = [Change(customer="contoso", site="london", type="shared_mailbox",
                      id=f"box{i:05}@contoso.com", action="create", before=None,
                      after={"name": f"Box {i}", "permissions": [
                          {"user": "bob@contoso.com", "access": ["FullAccess"]}]},
                      operations=(Operation("New-Mailbox", {
                          "Shared": True, "Name": f"Box {i}",
                          "PrimarySmtpAddress": f"box{i:05}@contoso.com"}),))
               for i in range(n)]
    return Plan(changes=changes)


def test_markdown_of_a_huge_plan_stays_under_the_comment_limit() -> None:
    plan = _big_plan(5000)
    text = render_markdown(plan)
    assert len(text) < GITHUB_COMMENT_LIMIT
    assert "| **total** | | **5000** |" in text
    assert "box00000@contoso.com" in text  # the first changes are kept
    assert "more changes not shown" in text and "5000 create" not in text


def test_text_of_a_large_plan_is_one_line_per_change() -> None:
    text = render_text(_big_plan(60))
    assert text.count("New-Mailbox") == 0 and text.count("will be created") == 60


def test_plan_command_exit_codes_and_saved_plan(scenario: Scenario, tmp_path: Path) -> None:
    repo = _rich(scenario).write()
    live = _snapshot_dir(scenario, tmp_path)
    runner = CliRunner()
    out = tmp_path / "plan.json"
    args = ["plan", str(repo), "--live", f"snapshot:{live}"]
    result = runner.invoke(cli, [*args, "--detailed-exitcode", "--out", str(out)])
    assert result.exit_code == 2, result.output
    saved = json.loads(out.read_text())
    assert saved["summary"]["create"] == 1
    assert runner.invoke(cli, args).exit_code == 0
    as_json = runner.invoke(cli, [*args, "--format", "json"])
    assert json.loads(as_json.stdout) == saved  # deterministic, byte for byte the same data
    markdown = runner.invoke(cli, [*args, "--format", "markdown"])
    assert markdown.stdout.startswith("### Reconciler plan")


def test_plan_over_the_safety_limit_is_refused(scenario: Scenario, tmp_path: Path) -> None:
    scenario.live("New-Mailbox", Shared=True, Name="Old", Alias="old",
                  PrimarySmtpAddress="old@contoso.com")
    scenario.policy("prune: true\nmax_deletes: 0\n")
    scenario.yaml(LONDON, "shared_mailboxes: []\n")
    repo = scenario.write()
    live = _snapshot_dir(scenario, tmp_path)
    out = tmp_path / "plan.json"
    args = ["plan", str(repo), "--live", f"snapshot:{live}", "--out", str(out)]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1
    assert "error: plan refused: 1 delete exceeds max_deletes 0" in refused.stderr
    assert not out.exists()
    allowed = CliRunner().invoke(cli, [*args, "--allow-large-changes"])
    assert allowed.exit_code == 0 and out.exists()


def test_unknown_customer_is_a_clear_error(scenario: Scenario, tmp_path: Path) -> None:
    repo = _rich(scenario).write()
    result = CliRunner().invoke(cli, ["plan", str(repo), "--customer", "fabrikam",
                                      "--live", f"snapshot:{_snapshot_dir(scenario, tmp_path)}"])
    assert result.exit_code == 1
    assert "unknown customer 'fabrikam'" in result.stderr


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=repo, check=True, capture_output=True)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every cmdlet the planner's backends are asked for."""
    from reconciler.emulator import Emulator

    calls: list[str] = []
    original = Emulator.invoke

    def invoke(self: Emulator, cmdlet: str, *args: object, **kw: object) -> object:
        calls.append(cmdlet)
        return original(self, cmdlet, *args, **kw)

    monkeypatch.setattr(Emulator, "invoke", invoke)
    return calls


def test_changed_since_plans_only_what_the_change_touches(
        scenario: Scenario, tmp_path: Path, counted: list[str]) -> None:
    boxes = "".join(f"  - name: Box {n}\n    permissions:\n"
                    f"      - {{user: bob@contoso.com, access: [FullAccess]}}\n"
                    for n in range(30))
    scenario.yaml(LONDON, "shared_mailboxes:\n" + boxes)
    for n in range(30):
        scenario.live("New-Mailbox", Shared=True, Name=f"Box {n}", Alias=f"box-{n}",
                      PrimarySmtpAddress=f"box-{n}@contoso.com")
        scenario.live("Add-MailboxPermission", Identity=f"box-{n}@contoso.com", User="bob",
                      AccessRights=["FullAccess"], InheritanceType="All")
    repo = scenario.write()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    # The pull request: one mailbox edited, one added, one moved to Paris.
    text = (repo / "customers/contoso" / LONDON).read_text()
    text = text.replace("  - name: Box 3\n", "  - name: Box 3\n    archive: true\n")
    text = text.replace("  - name: Box 7\n    permissions:\n"
                        "      - {user: bob@contoso.com, access: [FullAccess]}\n", "")
    (repo / "customers/contoso" / LONDON).write_text(text + "  - name: New Box\n")
    (repo / "customers/contoso" / "sites/paris/mailboxes.yaml").write_text(
        "shared_mailboxes:\n  - name: Box 7\n")
    live = _snapshot_dir(scenario, tmp_path)  # every Box exists live, none of the edits

    counted.clear()
    result = CliRunner().invoke(cli, ["plan", str(repo), "--live", f"snapshot:{live}",
                                      "--changed-since", "HEAD", "--format", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    got = {(c["action"], c["address"]) for c in plan["changes"]}
    assert ("create", "contoso/london/shared_mailbox/new-box@contoso.com") in got
    assert ("update", "contoso/london/shared_mailbox/box-3@contoso.com") in got
    moved = [c for c in plan["changes"] if c["id"] == "box-7@contoso.com"]
    assert moved and moved[0]["moved_from"] == "contoso/london"
    assert len(got) == 3
    assert counted.count("Get-MailboxPermission") <= 2 and len(counted) <= 20, counted


def test_change_percent_counts_the_whole_tenant_when_planning_a_pull_request(
        scenario: Scenario, tmp_path: Path) -> None:
    for n in range(60):
        scenario.live("New-Mailbox", Shared=True, Name=f"Box {n}", Alias=f"box-{n}",
                      PrimarySmtpAddress=f"box-{n}@contoso.com")
    scenario.policy("max_change_percent: 20\n")
    scenario.yaml(LONDON, "shared_mailboxes:\n" + "".join(
        f"  - name: Box {n}\n" for n in range(60)))
    repo = scenario.write()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    path = repo / "customers/contoso" / LONDON
    text = path.read_text()
    for n in range(10):
        text = text.replace(f"  - name: Box {n}\n", f"  - name: Box {n}\n    archive: true\n")
    path.write_text(text)
    result = CliRunner().invoke(cli, ["plan", str(repo), "--changed-since", "HEAD",
                                      "--live", f"snapshot:{_snapshot_dir(scenario, tmp_path)}",
                                      "--format", "json"])
    # Ten changes among sixty mailboxes is 17%, not ten among the ten the pull request read.
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["update"] == 10


def test_the_plan_is_the_same_from_any_working_directory(
        scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _rich(scenario).write()
    live = _snapshot_dir(scenario, tmp_path)
    runner = CliRunner()
    absolute = runner.invoke(cli, ["plan", str(repo), "--live", f"snapshot:{live}",
                                   "--format", "json"])
    monkeypatch.chdir(repo.parent)
    relative = runner.invoke(cli, ["plan", repo.name, "--live", f"snapshot:{live}",
                                   "--format", "json"])
    assert absolute.stdout == relative.stdout
    sources = [c["source"] for c in json.loads(absolute.stdout)["changes"] if "source" in c]
    assert sources and all(s.startswith("customers/contoso/") for s in sources)


def test_changed_since_an_unknown_ref_names_it_and_what_to_do(
        scenario: Scenario, tmp_path: Path) -> None:
    repo = _rich(scenario).write()
    args = ["plan", str(repo), "--live", f"snapshot:{_snapshot_dir(scenario, tmp_path)}",
            "--changed-since", "nosuchref"]
    outside = CliRunner().invoke(cli, args)
    assert outside.exit_code == 1
    assert "is not in a git repository" in outside.stderr
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "--changed-since nosuchref: git knows no commit named 'nosuchref'" in result.stderr
    assert "git branch -a" in result.stderr and "unknown error" not in result.stderr


def test_changed_since_with_no_yaml_change_says_so_not_that_live_matches(
        scenario: Scenario, tmp_path: Path) -> None:
    repo = _rich(scenario).write()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    args = ["plan", str(repo), "--live", f"snapshot:{_snapshot_dir(scenario, tmp_path)}"]
    full = CliRunner().invoke(cli, args)
    assert "Plan: 1 to add, 2 to change" in full.stdout  # the tenant does differ
    since = CliRunner().invoke(cli, [*args, "--changed-since", "HEAD"])
    assert since.exit_code == 0
    assert since.stdout == ("No changes. No YAML changed since HEAD, so nothing was compared; "
                            "a plan without --changed-since compares every resource.\n")
    markdown = CliRunner().invoke(cli, [*args, "--changed-since", "HEAD", "--format", "markdown"])
    assert "No YAML changed since HEAD" in markdown.stdout
