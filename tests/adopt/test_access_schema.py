"""schemas/access.schema.json: real `reconciler access --format json` answers, covering every
right, direct and via a group, both questions and both origins, validate against it; the schema
is valid draft 2020-12, agrees with the code, and rejects a wrong answer."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.adopt.access import CSV_COLUMNS, RIGHT_ORDER, Access
from reconciler.model import ResourceType
from tests.adopt.conftest import EXAMPLE, fresh_live, run
from tests.schemas import assert_valid_schema, schema_errors

SCHEMA_FILE = Path(__file__).parents[2] / "schemas" / "access.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
# A customer-level mailbox a group holds grants on, so that its members are reached "via" it.
TEAM_INBOX = """
  - name: Team Inbox
    alias: team-inbox
    permissions:
      - {user: london-all@contoso.com, access: [SendAs, SendOnBehalf]}
"""
DESIRED_QUESTIONS = (
    ("--mailbox", "support-london@contoso.com"),  # FullAccess, SendAs, calendar with Default
    ("--mailbox", "london-all@contoso.com"),  # a group: owner and members
    ("--mailbox", "team-inbox@contoso.com"),  # grants to a group reach its members
    ("--user", "bob@contoso.com"),  # every kind of row, direct and via
    ("--user", "alice@contoso.com"),  # owner; a room's calendar delegate
    ("--user", "greta@fabrikam.de"),  # SendOnBehalf, another customer
    ("--user", "sales@partner.example"),  # receives forwarded mail
    ("--user", "nobody@contoso.com"),  # nothing at all
)
LIVE_QUESTIONS = (
    ("--mailbox", "support-london@contoso.com"),
    ("--user", "alice@contoso.com"),
)


def _access_json(*args: str) -> dict[str, Any]:
    result = run("access", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture
def answers(example_repo: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """Real answers from the desired state (the example repository plus the team inbox) and
    from live state (the example's sandbox tenants)."""
    with (example_repo / "customers/contoso/mailboxes.yaml").open("a", encoding="utf-8") as f:
        f.write(TEAM_INBOX)
    out = [_access_json(str(example_repo), option, value)
           for option, value in DESIRED_QUESTIONS]
    live = fresh_live(tmp_path)
    out += [_access_json(str(example_repo), option, value, "--live", f"sandbox:{live}",
                         "--customer", "contoso")
            for option, value in LIVE_QUESTIONS]
    return out


def _errors(instance: Any) -> list[str]:
    return schema_errors(SCHEMA, instance)


def test_schema_is_valid_draft_2020_12() -> None:
    assert_valid_schema(SCHEMA)


def test_schema_agrees_with_the_code() -> None:
    row = SCHEMA["$defs"]["row"]
    assert tuple(SCHEMA["$defs"]["right"]["enum"]) == RIGHT_ORDER
    assert tuple(row["required"]) == CSV_COLUMNS
    assert tuple(f.name for f in dataclasses.fields(Access)) == CSV_COLUMNS
    assert row["properties"]["type"]["enum"] == [t.value for t in ResourceType]


def test_real_answers_validate(answers: list[dict[str, Any]]) -> None:
    for answer in answers:
        assert _errors(answer) == [], answer["query"]


def test_the_answers_cover_every_kind_of_row(answers: list[dict[str, Any]]) -> None:
    rows = [row for answer in answers for row in answer["access"]]
    assert {row["right"] for row in rows} == set(RIGHT_ORDER)
    assert {row["right"] for row in rows if row["via"]} == {"SendAs", "SendOnBehalf"}
    assert {row["type"] for row in rows} == {t.value for t in ResourceType}
    assert "-" in {row["site"] for row in rows}
    assert {row["detail"] for row in rows if row["right"] == "ForwardsTo"} == {"keeps a copy"}
    assert any(", delegate" in row["detail"] for row in rows if row["right"] == "Calendar")
    assert "Default" in {row["principal"] for row in rows}
    assert {a["origin"] for a in answers} == {"desired state", "live state"}
    assert {next(iter(a["query"])) for a in answers} == {"mailbox", "user"}
    assert any(a["access"] == [] for a in answers)
    by_origin = {a["origin"]: {bool(row["source"]) for row in a["access"]} for a in answers
                 if a["access"]}
    assert by_origin == {"desired state": {True}, "live state": {False}}


def _row(answer: dict[str, Any], right: str) -> dict[str, Any]:
    return next(row for row in answer["access"] if row["right"] == right and not row["via"])


def _on_row(right: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(answer: dict[str, Any]) -> None:
        _row(answer, right)[key] = value
    return mutate


def _top(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(answer: dict[str, Any]) -> None:
        answer[key] = value
    return mutate


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(answer: dict[str, Any]) -> None:
        del answer["access"][0][key]
    return mutate


# Applied to the answer to `--user bob@contoso.com`, which has a row of every right but Owner.
MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown right": _on_row("FullAccess", "right", "ReadPermission"),
    "wrong kind": _top("kind", "reconciler-drift"),
    "unknown origin": _top("origin", "live"),
    "both questions": _top("query", {"mailbox": "a@contoso.com", "user": "b@contoso.com"}),
    "no question": _top("query", {}),
    "format_version not a string": _top("format_version", 1),
    "access not a list": _top("access", {}),
    "row without via": _without("via"),
    "row without source": _without("source"),
    "unknown resource type": _on_row("SendAs", "type", "public_folder"),
    "site not an id": _on_row("SendAs", "site", "London HQ"),
    "membership of a mailbox": _on_row("Member", "type", "shared_mailbox"),
    "membership via a group": _on_row("Member", "via", "london-all@contoso.com"),
    "forwarding with an unknown delivery": _on_row("ForwardsTo", "detail", "sometimes"),
    "forwarding from a group": _on_row("ForwardsTo", "type", "distribution_group"),
    "detail on a FullAccess grant": _on_row("FullAccess", "detail", "Owner"),
    "source without a line": _on_row("Calendar", "source", "users.yaml"),
    "empty principal": _on_row("Calendar", "principal", ""),
}


@pytest.fixture
def bob() -> dict[str, Any]:
    return _access_json(str(EXAMPLE), "--user", "bob@contoso.com")


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_wrong_answer_is_rejected(bob: dict[str, Any], mutation: str) -> None:
    assert _errors(bob) == []
    wrong = copy.deepcopy(bob)
    MUTATIONS[mutation](wrong)
    assert _errors(wrong) != []


def test_unknown_keys_are_allowed(answers: list[dict[str, Any]]) -> None:
    """Consumers ignore keys they do not know, so a later minor version may add some."""
    answer = copy.deepcopy(answers[0])
    answer["generated_by"] = "a later version"
    answer["access"][0]["inherited"] = False
    answer["query"]["customer"] = "contoso"
    assert _errors(answer) == []


def test_check_jsonschema_accepts_a_real_answer_file(example_repo: Path,
                                                     tmp_path: Path) -> None:
    result = run("access", str(example_repo), "--user", "bob@contoso.com", "--format", "json")
    assert result.exit_code == 0, result.stderr
    real = tmp_path / "access.json"
    real.write_text(result.stdout, encoding="utf-8")
    tool = [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA_FILE)]
    proc = subprocess.run([*tool, str(real)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wrong = json.loads(result.stdout)
    wrong["access"][0]["right"] = "ReadPermission"
    bad = tmp_path / "wrong.json"
    bad.write_text(json.dumps(wrong), encoding="utf-8")
    proc = subprocess.run([*tool, str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    proc = subprocess.run([str(CHECK_JSONSCHEMA), "--check-metaschema", str(SCHEMA_FILE)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
