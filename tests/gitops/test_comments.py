"""What the workflow templates do on GitHub: the plan workflow's sticky comment per customer and
the drift workflow's issue per customer. Each runs the template's own github-script step under
node against a recording stand-in for GitHub's API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.render.markdown import GITHUB_COMMENT_LIMIT, render_markdown
from tests.gitops.conftest import CONTEXT, TEMPLATES, run_github_script, script_of
from tests.plan.test_plan_output import _big_plan

BOT = {"login": "github-actions[bot]", "type": "Bot"}
HUMAN = {"login": "alice", "type": "User"}


def _comment(tmp_path: Path, customer: str, comments: list[dict[str, Any]],
             files: dict[str, str]) -> dict[str, Any]:
    (tmp_path / "plan").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / "plan" / name).write_text(text, encoding="utf-8")
    return run_github_script(script_of(TEMPLATES / "plan.yml", "comment"), tmp_path,
                             env={"CUSTOMER": customer}, context=CONTEXT, comments=comments)


def test_first_push_creates_one_comment_with_the_marker(tmp_path: Path) -> None:
    result = _comment(tmp_path, "contoso", [], {"plan.md": "### Reconciler plan\n\nbody\n"})
    [call] = result["calls"]
    assert call["name"] == "createComment"
    assert call["params"]["issue_number"] == 7
    body = call["params"]["body"]
    assert body.startswith("<!-- reconciler-plan:contoso -->\n### Reconciler plan")
    assert "artifact plan-contoso" in body and "actions/runs/42" in body


def test_next_push_updates_that_customers_comment_only(tmp_path: Path) -> None:
    comments = [
        # A person quoting the marker, another customer's comment (whose id starts alike),
        # then ours.
        {"id": 1, "user": HUMAN, "body": "<!-- reconciler-plan:contoso -->\nnot a plan"},
        {"id": 2, "user": BOT, "body": "<!-- reconciler-plan:contoso-uk -->\nold plan"},
        {"id": 3, "user": BOT, "body": "<!-- reconciler-plan:contoso -->\nold plan"},
    ]
    result = _comment(tmp_path, "contoso", comments, {"plan.md": "new plan"})
    [call] = result["calls"]
    assert call["name"] == "updateComment" and call["params"]["comment_id"] == 3
    assert "new plan" in call["params"]["body"]


def test_a_failed_plan_still_gets_a_comment_with_its_errors(tmp_path: Path) -> None:
    result = _comment(tmp_path, "contoso", [], {
        "plan.md": "", "exit-code": "1",
        "errors.txt": "Error: cannot read live state: sign-in refused\n"})
    body = result["calls"][0]["params"]["body"]
    assert "No plan for **contoso**" in body and "sign-in refused" in body


def test_the_comment_for_a_plan_of_5000_changes_fits_github(tmp_path: Path) -> None:
    # The renderer keeps the plan under the limit; the comment adds the marker and a footer to
    # it, and must still fit, with the summary and the first changes.
    result = _comment(tmp_path, "contoso", [], {"plan.md": render_markdown(_big_plan(5000))})
    body = result["calls"][0]["params"]["body"]
    assert len(body) < GITHUB_COMMENT_LIMIT
    assert body.startswith("<!-- reconciler-plan:contoso -->\n")
    assert "| **total** | | **5000** |" in body
    assert "box00000@contoso.com" in body
    assert "more changes not shown" in body


def _drift(tmp_path: Path, code: str | None, issues: list[dict[str, Any]],
           report: str = "### Drift\n\nchanged outside git\n") -> dict[str, Any]:
    folder = tmp_path / "drift"
    folder.mkdir(exist_ok=True)
    if code is not None:
        (folder / "exit-code").write_text(code + "\n")
        (folder / "report.md").write_text(report)
    return run_github_script(script_of(TEMPLATES / "drift.yml", "issue"), tmp_path,
                             env={"CUSTOMER": "contoso"}, context=CONTEXT, issues=issues)


OPEN = {"number": 12, "state": "open", "labels": [{"name": "drift:contoso"}]}


def test_drift_opens_an_issue_labelled_for_the_customer(tmp_path: Path) -> None:
    other = {"number": 5, "state": "open", "labels": [{"name": "drift:fabrikam"}]}
    result = _drift(tmp_path, "2", [other])
    [call] = result["calls"]
    assert call["name"] == "create"
    assert call["params"]["labels"] == ["drift:contoso"]
    assert "changed outside git" in call["params"]["body"]
    assert result["failed"] is None


def test_drift_again_updates_the_open_issue(tmp_path: Path) -> None:
    result = _drift(tmp_path, "2", [OPEN], report="### Drift\n\nsomething else\n")
    [call] = result["calls"]
    assert call["name"] == "update" and call["params"]["issue_number"] == 12
    assert "something else" in call["params"]["body"]


def test_no_drift_closes_the_open_issue(tmp_path: Path) -> None:
    result = _drift(tmp_path, "0", [OPEN])
    assert [c["name"] for c in result["calls"]] == ["createComment", "update"]
    assert result["calls"][1]["params"]["state"] == "closed"
    assert _drift(tmp_path, "0", [])["calls"] == []


@pytest.mark.parametrize("code", ["1", None])
def test_an_error_fails_and_leaves_the_issue_alone(tmp_path: Path, code: str | None) -> None:
    result = _drift(tmp_path, code, [OPEN])
    assert result["calls"] == []
    assert result["failed"] and "could not be determined" in result["failed"]


def test_a_huge_drift_report_is_cut_to_fit_an_issue(tmp_path: Path) -> None:
    result = _drift(tmp_path, "2", [], report="x" * 100_000)
    body = result["calls"][0]["params"]["body"]
    assert len(body) < GITHUB_COMMENT_LIMIT and "cut here" in body
