"""Hostile values in YAML reach the terminal, the CI log and the pull request as text to read,
never as commands to obey (terminal escapes, workflow commands, HTML)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pyte

from reconciler import safe
from tests.hostile.corpus import ERASE, PAYLOADS, WORKFLOW_COMMAND, every_payload, q, shared_with
from tests.hostile.harness import assert_clean, every_command, example_repo, run, write

HOSTILE = "customers/contoso/hostile.yaml"


def _screen(text: str, columns: int = 400) -> str:
    """What a terminal shows after printing ``text``, a wrapped row joined to the next."""
    screen = pyte.Screen(columns, 4_000)
    screen.set_mode(pyte.modes.LNM)  # a newline also returns the carriage, as a tty does
    pyte.Stream(screen).feed(text)
    rows = screen.display
    return "".join(row if len(row.rstrip()) == columns else row.rstrip() + "\n"
                   for row in rows)


def _heads(plan: dict) -> list[str]:
    markers = {"create": "+", "update": "~", "delete": "-", "move": ">", "unmanaged": "?"}
    # an unmanaged resource is listed as "? customer / site: type id"
    return [f"{markers[c['action']]} {c['type']} {c['id']}" if c["action"] != "unmanaged"
            else f"{c['type']} {c['id']}" for c in plan["changes"]]


def test_every_payload_through_every_command_is_shown_not_obeyed(tmp_path: Path) -> None:
    repo = example_repo(tmp_path, {HOSTILE: every_payload()})
    runs = every_command(repo, tmp_path / "plan.json")
    for result in runs:
        assert_clean(result)
    assert runs[0].exit_code == 0
    plan = json.loads(runs[4].stdout)
    # JSON stays data: the very bytes of each payload, escaped the JSON way.
    messages = {c["id"]: c["after"]["auto_reply"]["internal_message"]
                for c in plan["changes"] if c["id"].startswith("hostile-")}
    assert messages == {f"hostile-{name}@contoso.com": p for name, p in PAYLOADS.items()}
    # The long value is cut where a person reads it, saying how long it was.
    assert "… (100,000 characters)" in runs[2].stdout
    assert "\\x1b[1A\\x1b[2K" in runs[2].stdout  # shown as text


def test_a_terminal_shows_every_change_of_the_json_plan(tmp_path: Path) -> None:
    repo = example_repo(tmp_path, {HOSTILE: every_payload()})
    plan = json.loads(run(["plan", str(repo), "--format", "json"]).stdout)
    coloured = {"FORCE_COLOR": "1", "NO_COLOR": ""}
    for args in (["plan", str(repo)], ["apply", str(repo)]):  # apply shows it before asking
        shown = _screen(run(args, coloured).stdout)
        for head in _heads(plan):
            assert head in shown, (args[0], head)
        for change in plan["changes"]:
            for op in change["operations"]:
                assert f"{op['cmdlet']} -Identity '{op['parameters'].get('Identity', '')}" \
                    in shown or op["cmdlet"] in shown
        forwards = [c for c in plan["changes"]
                    if (c["after"] or {}).get("forwarding", {}).get("external")]
        assert len(forwards) > len(PAYLOADS)
        # each forward shows in its attribute lines and in its Set-Mailbox call
        assert shown.count("attacker@example.org") >= 2 * len(PAYLOADS)


def test_erasing_escapes_in_exchange_calls_hide_nothing(tmp_path: Path) -> None:
    repo = example_repo(tmp_path, {HOSTILE: shared_with(ERASE)})
    shown = _screen(run(["plan", str(repo)]).stdout)
    assert "+ shared_mailbox quiet-forward@contoso.com" in shown
    assert "-ForwardingSmtpAddress 'attacker@example.org'" in shown


def test_a_file_name_cannot_inject_a_workflow_command(tmp_path: Path) -> None:
    name = f"x\n{WORKFLOW_COMMAND}\n.yaml"
    repo = example_repo(tmp_path, {
        f"customers/contoso/{name}": "shared_mailboxes:\n  - name: A\n    bogus: 1\n",
        "customers/contoso/keys.yaml": "shared_mailboxes:\n  - name: B\n"
                                       f"    {q(chr(10) + '::error::forged')}: 1\n"})
    result = run(["validate", str(repo)])
    assert result.exit_code == 1
    assert_clean(result)
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert len(annotations) == 2
    assert any("file=" in a and "%2Cline=1%3A%3ALooks good" in a for a in annotations)
    assert not any(line.lstrip().startswith(("::warning", "::error::forged"))
                   for line in result.output.splitlines())


def test_a_huge_value_is_cut_in_errors(tmp_path: Path) -> None:
    grantee = "g" * 100_000 + "@contoso.com"
    repo = example_repo(tmp_path, {HOSTILE: "shared_mailboxes:\n  - name: A\n    permissions:\n"
                                            f"      - {{user: {grantee}, access: [SendAs]}}\n"})
    result = run(["validate", str(repo)])
    assert result.exit_code == 1
    assert "is 100012 characters long; at most 320" in result.stderr  # Exchange's own limit
    write(repo, {HOSTILE: f"shared_mailboxes:\n  - name: A\n    template: {'k' * 100_000}\n"})
    for args in (["validate", str(repo)], ["plan", str(repo)]):
        result = run(args)
        assert result.exit_code == 1
        assert_clean(result)
        assert max(len(line) for line in result.output.splitlines()) < 1_000
        assert re.search(r"… \(100,00\d characters\)", result.output), result.output


def _outside_fences(markdown: str) -> str:
    """The Markdown GitHub interprets: what lies outside its code fences."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            out.append(line)
    assert not fenced, "a code fence was left open"
    return "\n".join(out)


def test_markdown_and_html_keep_their_escaping(tmp_path: Path) -> None:
    repo = example_repo(tmp_path, {HOSTILE: every_payload()})
    for args in (["plan", str(repo), "--format", "markdown"],
                 ["drift", str(repo), "--format", "markdown"]):
        markdown = run(args).stdout
        # Every fence is the renderer's own: a value cannot close one and write HTML after.
        assert all(line in ("```", "```diff", "```powershell")
                   for line in markdown.splitlines() if line.startswith("```")), args
        interpreted = _outside_fences(markdown)
        assert "<img" not in interpreted and "<script" not in interpreted, args
        assert interpreted.count("<details") == interpreted.count("</details>")
    page = run(["drift", str(repo), "--format", "html"]).stdout
    assert "<img" not in page and "<script>x()" not in page


# --- the layer itself ------------------------------------------------------------------------


def test_annotations_are_escaped_as_the_runner_decodes_them() -> None:
    line = safe.annotation("error", "50% done\r\nnext", file="a,b:c.yaml", line=3, col=2)
    assert line == "::error file=a%2Cb%3Ac.yaml,line=3,col=2::50%25 done\\x0d%0Anext" \
        or line == "::error file=a%2Cb%3Ac.yaml,line=3,col=2::50%25 done\\x0d\\x0anext"
    assert "\n" not in line and "\r" not in line


def test_visible_shows_every_control_character() -> None:
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x202E, 0x2066]:
        shown = safe.visible(f"a{chr(code)}b")
        assert chr(code) not in shown and shown.startswith("a\\") and shown.endswith("b")
    assert safe.visible("tab\tand\nnewline\x1b", multiline=True) == "tab\tand\nnewline\\x1b"
    assert safe.visible(f"x\n{WORKFLOW_COMMAND}", multiline=True) == \
        "x\n\\x3a:warning file=README.md,line=1::Looks good"
    assert safe.cut("y" * 300, 10) == "yyyyyyyyyy… (300 characters)"


def test_json_text_is_the_same_data() -> None:
    value = {"k": "".join(map(chr, range(0x00, 0xA0))) + "\u202e\u2028"}
    text = safe.json_text(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert safe.screen(text) == text


def test_log_lines_show_data_not_its_escapes() -> None:
    record = logging.LogRecord("reconciler", logging.INFO, __file__, 1,
                               "read %s", (f"x\x1b[2K\n{WORKFLOW_COMMAND}",), None)
    line = safe.LogFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO read x\\x1b[2K\\x0a" + WORKFLOW_COMMAND


def test_hostile_values_from_exchange_are_shown_not_obeyed(tmp_path: Path) -> None:
    """A live mailbox's name is Exchange's data, written by whoever manages the tenant."""
    repo = example_repo(tmp_path)
    seed = repo / "sandbox" / "contoso.json"
    hostile = f"Old Room{ERASE}\n{WORKFLOW_COMMAND}\n</details><img src=x onerror=alert(1)>|"
    seed.write_text(seed.read_text().replace('"Old Room"', json.dumps(hostile)))
    assert run(["sandbox", "reset", str(repo)]).exit_code == 0
    runs = every_command(repo, tmp_path / "plan.json")
    for result in runs:
        assert_clean(result)
    plan = json.loads(runs[4].stdout)
    # the JSON plan keeps Exchange's value exactly
    assert any((c.get("before") or {}).get("name") == hostile for c in plan["changes"])
    shown = _screen(run(["plan", str(repo)], {"FORCE_COLOR": "1", "NO_COLOR": ""}).stdout)
    for head in _heads(plan):
        assert head in shown, head
    for markdown in (runs[3].stdout, runs[8].stdout):  # plan and drift as Markdown
        assert "<img" not in _outside_fences(markdown)


def test_an_error_of_several_lines_keeps_them_and_starts_no_command() -> None:
    text = safe.message_lines(f"snapshot invalid:\n  a: bad\x1b[2K\n{WORKFLOW_COMMAND}")
    assert text.split("\n") == ["snapshot invalid:", "  a: bad\\x1b[2K",
                                "\\x3a:warning file=README.md,line=1::Looks good"]
