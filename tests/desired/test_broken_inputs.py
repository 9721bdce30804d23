"""A corpus of broken inputs, one small case per kind of mistake: each must exit 1, name the
right file and line, say what is wrong in words a person acts on, and never show a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import CUSTOMER, run_validate, write_repo

HQ = "customers/acme/sites/hq/mailboxes.yaml"
TOP = "customers/acme/mailboxes.yaml"
CUST = "customers/acme/customer.yaml"

CUSTOMER_ID_MISMATCH_TEXT = "customer:\n  id: globex\n  name: Acme\n  tenant:\n" \
    "    id: 00000000-0000-4000-8000-000000000001\n    initial_domain: acme.onmicrosoft.com\n" \
    "  mail_domains: [acme.com]\n"
SECRET_PEM = "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-----END PRIVATE KEY-----"
CUSTOMER_WITH_SECRET_TEXT = "customer:\n  name: Acme\n  tenant:\n" \
    "    id: 00000000-0000-4000-8000-000000000001\n    initial_domain: acme.onmicrosoft.com\n" \
    f"    certificate_key: \"{SECRET_PEM}\"\n  mail_domains: [acme.com]\n"

# (case id, files, file that must be named, line, words the message must contain)
CASES: list[tuple[str, dict[str, str | bytes | None], str, int, list[str]]] = [
    ("malformed-yaml", {HQ: "shared_mailboxes:\n  - name: A\n    alias: [a\n"},
     HQ, 4, ["YAML"]),
    ("unquoted-colon", {HQ: "shared_mailboxes:\n  - name: Support: London\n"},
     HQ, 2, ["quotes"]),
    ("empty-file", {HQ: ""}, HQ, 1, ["empty"]),
    ("comments-only", {HQ: "# nothing yet\n"}, HQ, 1, ["empty"]),
    ("empty-customer", {CUST: ""}, CUST, 1, ["empty"]),
    ("tab-indentation", {HQ: "shared_mailboxes:\n\t- name: A\n"}, HQ, 2, ["tab", "spaces"]),
    ("duplicate-key", {HQ: "shared_mailboxes:\n  - name: A\n    alias: a\n    alias: b\n"},
     HQ, 4, ["alias", "twice", "line 3"]),
    ("non-utf8", {HQ: b"shared_mailboxes:\n  - name: Caf\xe9\n"}, HQ, 2, ["UTF-8"]),
    ("utf16", {HQ: "shared_mailboxes: []\n".encode("utf-16")}, HQ, 1, ["UTF-16"]),
    ("two-documents", {HQ: "shared_mailboxes: []\n---\nroom_mailboxes: []\n"},
     HQ, 2, ["more than one"]),
    ("top-level-list", {HQ: "- name: A\n"}, HQ, 1, ["mapping"]),
    ("wrong-type-capacity", {HQ: "room_mailboxes:\n  - name: R\n    capacity: twelve\n"},
     HQ, 3, ["capacity", "whole number", "twelve"]),
    ("wrong-type-list", {HQ: "shared_mailboxes:\n  name: A\n"}, HQ, 2, ["list"]),
    ("wrong-type-number-as-text", {HQ: "shared_mailboxes:\n  - name: 2024\n"},
     HQ, 2, ["text", "quotes"]),
    ("missing-name", {HQ: "shared_mailboxes:\n  - alias: a\n"}, HQ, 2, ["'name' is missing"]),
    ("unknown-key", {HQ: "shared_mailboxes:\n  - name: A\n    permisions: []\n"},
     HQ, 3, ["unknown key 'permisions'", "did you mean 'permissions'"]),
    ("unknown-top-key", {HQ: "shared_mailbox:\n  - name: A\n"},
     HQ, 1, ["did you mean 'shared_mailboxes'"]),
    ("unknown-enum", {HQ: "shared_mailboxes:\n  - name: A\n    permissions:\n"
                          "      - {user: a@acme.com, access: [FullAcess]}\n"},
     HQ, 4, ["FullAcess", "did you mean 'FullAccess'"]),
    ("duplicate-identity-across-files",
     {HQ: "shared_mailboxes:\n  - name: Support\n",
      "customers/acme/sites/branch/more.yaml": "\nshared_mailboxes:\n  - name: X\n"
                                               "    alias: support\n"},
     "customers/acme/sites/hq/mailboxes.yaml", 2,
     ["support@acme.com", "declared twice", "branch/more.yaml:3"]),
    ("duplicate-user-mailbox",
     {HQ: "user_mailboxes:\n  - user: ann@acme.com\n  - user: Ann@acme.com\n"},
     HQ, 3, ["ann@acme.com", "declared twice", ":2:"]),
    ("alias-clash-after-derivation",
     {HQ: "shared_mailboxes:\n  - name: Sales Team\n  - name: sales  team!\n"},
     HQ, 3, ["sales-team@acme.com", "derived from the name", "alias:"]),
    ("alias-not-derivable", {HQ: "shared_mailboxes:\n  - name: '***'\n"},
     HQ, 2, ["no alias can be derived", "alias:"]),
    ("bad-alias", {HQ: "shared_mailboxes:\n  - name: A\n    alias: a b\n"},
     HQ, 3, ["alias"]),
    ("other-customer", {HQ: "customer: globex\nshared_mailboxes:\n  - name: A\n"},
     HQ, 1, ["globex", "acme", "move it"]),
    ("other-site", {HQ: "site: branch\nshared_mailboxes:\n  - name: A\n"},
     HQ, 1, ["branch", "hq", "move it"]),
    ("site-at-customer-level", {TOP: "site: hq\nshared_mailboxes:\n  - name: A\n"},
     TOP, 1, ["customer level", "sites/hq"]),
    ("customer-id-mismatch", {CUST: CUSTOMER_ID_MISMATCH_TEXT}, CUST, 2, ["folder"]),
    ("forwarding-both",
     {HQ: "shared_mailboxes:\n  - name: A\n    forwarding: {internal: b@acme.com, "
          "external: c@example.org}\n"},
     HQ, 3, ["both internal and external", "keep one"]),
    ("forwarding-neither",
     {HQ: "shared_mailboxes:\n  - name: A\n    forwarding: {deliver_to_mailbox: true}\n"},
     HQ, 3, ["internal", "external", "none"]),
    ("forwarding-bad-word", {HQ: "shared_mailboxes:\n  - name: A\n    forwarding: off\n"},
     HQ, 3, ["forwarding", "the word none", "off, no and false"]),
    ("role-and-rights",
     {HQ: "shared_mailboxes:\n  - name: A\n    calendar_permissions:\n"
          "      - {user: b@acme.com, role: Reviewer, rights: [ReadItems]}\n"},
     HQ, 4, ["role or rights, not both"]),
    ("delegate-not-editor",
     {HQ: "shared_mailboxes:\n  - name: A\n    calendar_permissions:\n"
          "      - {user: b@acme.com, role: Reviewer, delegate: true}\n"},
     HQ, 4, ["delegate", "Editor", "Reviewer"]),
    ("private-items-without-delegate",
     {HQ: "shared_mailboxes:\n  - name: A\n    calendar_permissions:\n"
          "      - {user: b@acme.com, role: Editor, private_items: true}\n"},
     HQ, 4, ["private_items needs delegate: true"]),
    ("calendar-on-group",
     {HQ: "distribution_groups:\n  - name: G\n    owners: [a@acme.com]\n"
          "    calendar_permissions: []\n"},
     HQ, 4, ["distribution groups have no calendar"]),
    ("fullaccess-on-group",
     {HQ: "distribution_groups:\n  - name: G\n    owners: [a@acme.com]\n    permissions:\n"
          "      - {user: b@acme.com, access: [FullAccess, SendAs]}\n"},
     HQ, 5, ["FullAccess", "distribution group", "SendAs and SendOnBehalf"]),
    ("custom-attribute-16",
     {HQ: "user_mailboxes:\n  - user: a@acme.com\n    custom_attributes: {16: x}\n"},
     HQ, 3, ["custom attribute '16'", "1 to 15"]),
    ("custom-attribute-0",
     {HQ: "user_mailboxes:\n  - user: a@acme.com\n    custom_attributes:\n      0: x\n"},
     HQ, 4, ["custom attribute '0'", "1 to 15"]),
    ("custom-attribute-too-long",
     {HQ: "user_mailboxes:\n  - user: a@acme.com\n    custom_attributes:\n      3: "
          + "x" * 1025 + "\n"},
     HQ, 4, ["1025 characters", "1024"]),
    ("domain-not-in-mail-domains",
     {HQ: "shared_mailboxes:\n  - name: A\n    domain: globex.com\n"},
     HQ, 3, ["globex.com", "mail_domains"]),
    ("unknown-template",
     {HQ: "user_mailboxes:\n  - user: a@acme.com\n    template: lever\n"},
     HQ, 3, ["unknown template 'lever'", "did you mean 'leaver'"]),
    ("template-wrong-type",
     {HQ: "shared_mailboxes:\n  - name: A\n    template: leaver\n"},
     HQ, 3, ["convert_to", "shared mailboxes do not have"]),
    ("secret-inline",
     {CUST: CUSTOMER_WITH_SECRET_TEXT}, CUST, 6, ["env:", "file:", "not shown"]),
    ("exchange-disabled-site",
     {"customers/acme/sites/hq/site.yaml": "site:\n  name: HQ\n  exchange: disabled\n",
      HQ: "shared_mailboxes:\n  - name: A\n"},
     HQ, 1, ["exchange: disabled", "hq"]),
    ("scheduled-without-end",
     {HQ: "user_mailboxes:\n  - user: a@acme.com\n    auto_reply: {state: Scheduled, "
          "start: 2026-12-20T00:00:00Z}\n"},
     HQ, 3, ["Scheduled", "start and end"]),
    ("timestamp-without-zone",
     {HQ: "user_mailboxes:\n  - user: a@acme.com\n    auto_reply: {state: Scheduled, "
          "start: 2026-12-20T00:00:00, end: 2027-01-04T00:00:00Z}\n"},
     HQ, 3, ["start", "time zone"]),
    ("automapping-without-fullaccess",
     {HQ: "shared_mailboxes:\n  - name: A\n    permissions:\n"
          "      - {user: b@acme.com, access: [SendAs], automapping: false}\n"},
     HQ, 4, ["automapping", "FullAccess"]),
    ("grantee-twice",
     {HQ: "shared_mailboxes:\n  - name: A\n    permissions:\n"
          "      - {user: b@acme.com, access: [SendAs]}\n"
          "      - {user: B@acme.com, access: [FullAccess]}\n"},
     HQ, 5, ["twice in permissions"]),
    ("member-twice",
     {HQ: "distribution_groups:\n  - name: G\n    owners: [a@acme.com]\n    members:\n"
          "      - a@acme.com\n      - b@acme.com\n      - A@acme.com\n"},
     HQ, 7, ["twice in members"]),
    ("group-without-owner",
     {HQ: "distribution_groups:\n  - name: G\n    owners: []\n"}, HQ, 3, ["at least 1"]),
    ("python-tag", {HQ: "shared_mailboxes: !!python/object/apply:os.system [ls]\n"},
     HQ, 1, ["tag", "not allowed"]),
    ("custom-tag", {HQ: "shared_mailboxes:\n  - name: !secret x\n"}, HQ, 2, ["tag"]),
    ("merge-key",
     {HQ: "shared_mailboxes:\n  - &a {name: A}\n  - <<: *a\n    alias: b\n"},
     HQ, 3, ["merge keys", "template"]),
    ("alias-bomb",
     {HQ: "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
          + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10)
                    + "]\n" for i in range(8))
          + "shared_mailboxes: *i\n"},
     HQ, 1, ["expands to too many values"]),
    ("recursive-alias", {HQ: "shared_mailboxes: &a\n  - *a\n"}, HQ, 1, ["alias"]),
    ("missing-customer-yaml", {CUST: None}, "customers/acme", 1, ["no customer.yaml"]),
    ("file-in-sites-folder",
     {"customers/acme/sites/mailboxes.yaml": "shared_mailboxes:\n  - name: Lost\n"},
     "customers/acme/sites/mailboxes.yaml", 1, ["lies in sites/ itself", "sites/<site>/"]),
    ("bad-site-folder", {"customers/acme/sites/Big_Site/site.yaml": "site: {name: B}\n"},
     "customers/acme/sites/Big_Site", 1, ["not a valid site id"]),
    ("placement-unknown-attribute",
     {"customers/acme/sites/hq/site.yaml": "site:\n  name: HQ\n  placement:\n"
                                           "    building: [A]\n"},
     "customers/acme/sites/hq/site.yaml", 4, ["unknown key 'building'", "office, city"]),
    ("bad-template-name", {CUST: CUSTOMER + "    Bad Name: {archive: true}\n"},
     CUST, 10, ["'Bad Name'", "customer.templates", "not a valid name", "lower-case"]),
]

@pytest.mark.parametrize(("files", "file", "line", "words"),
                         [pytest.param(f, fi, li, w, id=c) for c, f, fi, li, w in CASES])
def test_broken_input_is_reported_with_file_and_line(
    tmp_path: Path, files: dict[str, str | bytes | None], file: str, line: int,
    words: list[str],
) -> None:
    root = write_repo(tmp_path / "repo", files)
    result = run_validate(root)
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    expected_file = str(root / file)
    matching = [p for p in result.problems
                if Path(str(p["file"])).resolve() == Path(expected_file).resolve()
                and p["line"] == line]
    assert matching, f"no problem at {file}:{line}; got {result.problems}"
    message = " ".join(str(p["message"]) for p in matching)
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    # the text output names the same place, as file:line:col
    assert f":{line}:" in result.stderr
    assert "problem" in result.stderr.splitlines()[-1]


def test_inline_secret_is_never_echoed(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo",
                      {"customers/acme/customer.yaml": CUSTOMER_WITH_SECRET_TEXT})
    result = run_validate(root)
    assert result.exit_code == 1
    assert "MIIEvQ" not in result.stderr + result.stdout
    assert "PRIVATE KEY" not in result.stderr + result.stdout


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {
        HQ: "shared_mailboxes:\n  - name: A\n    domain: globex.com\n"
            "    forwarding: {internal: b@acme.com, external: c@example.org}\n",
        "customers/acme/sites/branch/x.yaml": "room_mailboxes:\n  - name: R\n    capacity: -1\n",
        TOP: "\t\n",
    })
    result = run_validate(root)
    assert result.exit_code == 1
    files = {Path(str(p["file"])).name for p in result.problems}
    assert files == {"mailboxes.yaml", "x.yaml"}
    assert len(result.problems) >= 4
    assert result.stderr.splitlines()[-1].startswith(f"{len(result.problems)} problems")


def test_github_annotations(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {HQ: "shared_mailboxes:\n  - name: A\n    bogus: 1\n"})
    result = run_validate(root, env={"GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 1
    assert ",line=3,col=5::unknown key 'bogus'" in annotations[0]
    assert "mailboxes.yaml" in annotations[0]


def test_no_annotations_outside_github(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {HQ: "shared_mailboxes:\n  - name: A\n    bogus: 1\n"})
    result = run_validate(root, env={"GITHUB_ACTIONS": ""})
    assert "::error" not in result.stdout


def test_missing_directory(tmp_path: Path) -> None:
    result = run_validate(tmp_path / "nowhere")
    assert result.exit_code == 1
    assert "no such directory" in result.stderr


def test_directory_without_customers(tmp_path: Path) -> None:
    result = run_validate(tmp_path)
    assert result.exit_code == 1
    assert "customers/" in result.stderr


def test_json_output_stays_json_under_github_actions(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {HQ: "shared_mailboxes:\n  - name: A\n    bogus: 1\n"})
    from click.testing import CliRunner

    from reconciler.cli import cli

    result = CliRunner().invoke(cli, ["validate", str(root), "--format", "json"],
                                env={"GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1
    problems = json.loads(result.stdout)
    assert [(p["line"], p["column"]) for p in problems] == [(3, 5)]
    assert "::error file=" in result.stderr


def test_paths_are_shown_relative_to_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_repo(tmp_path / "repo", {HQ: "shared_mailboxes:\n  - name: A\n    bogus: 1\n"})
    monkeypatch.chdir(root)
    result = run_validate(Path("."))
    assert result.stderr.startswith(f"{Path(HQ)}:3:5: error: unknown key 'bogus'")
    assert result.problems[0]["file"] == str(Path(HQ))


def test_huge_file_is_refused_before_parsing(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.desired import yamlfile

    monkeypatch.setattr(yamlfile, "MAX_FILE_BYTES", 1024)
    root = write_repo(tmp_path / "repo", {HQ: "shared_mailboxes:\n" + "  - name: A\n" * 200})
    result = run_validate(root)
    assert result.exit_code == 1
    assert any("larger than" in str(p["message"]) and str(p["file"]).endswith("mailboxes.yaml")
               for p in result.problems)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    deep = "shared_mailboxes:\n" + "".join("  " * i + "- \n" for i in range(1, 80)) + "\n"
    nested = "shared_mailboxes: " + "[" * 80 + "]" * 80 + "\n"
    for text in (deep, nested):
        root = write_repo(tmp_path / f"repo{len(text)}", {HQ: text})
        result = run_validate(root)
        assert result.exit_code == 1
        assert "Traceback" not in result.stderr
        assert any("nested" in str(p["message"]) for p in result.problems), result.problems


def test_a_defect_is_one_line_not_a_traceback(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.desired import loader

    def broken(self: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(loader._Loader, "run", broken)
    root = write_repo(tmp_path / "repo", {})
    from click.testing import CliRunner

    from reconciler.cli import cli

    result = CliRunner().invoke(cli, ["validate", str(root)])
    assert result.exit_code == 1
    assert "internal error" in result.stderr and "boom" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
