"""The HTML drift report opened in headless Chromium: it renders, logs nothing to the console
(no script errors, no blocked resource), and shows hostile text as text."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from reconciler.drift.page import render_html
from reconciler.drift.record import AppliedRecord
from reconciler.drift.report import CLASSES, DriftItem, DriftReport
from reconciler.plan.plan import Change
from tests.drift.conftest import DriftScenario

CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<script>document.title='owned'</script>\"&'<img src=x onerror=alert(1)>"


def open_in_chromium(page: Path) -> tuple[str, list[str]]:
    """(the rendered DOM, the console lines Chromium logged) for ``page``."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does)")
    binary = CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr",
             "--v=0", "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def _change(site: str, rid: str, action: str, **kw: object) -> Change:
    return Change(customer="contoso", site=site, type="shared_mailbox", id=rid, action=action,
                  before=kw.get("before"), after=kw.get("after"),  # type: ignore[arg-type]
                  notes=tuple(kw.get("notes", ())))  # type: ignore[arg-type]


def _report() -> DriftReport:
    items = [
        DriftItem("changed_outside_git", _change(
            "london", "support@contoso.com", "update",
            before={"permissions": [{"user": "carol@contoso.com", "access": ["FullAccess"]}],
                    "name": HOSTILE},
            after={"permissions": [], "name": "Support"})),
        DriftItem("not_yet_applied", _change(
            "london", "sales@contoso.com", "create", after={"name": "Sales & <Co>"})),
        DriftItem("pending_propagation", _change(
            "paris", "accueil@contoso.com", "update", before={"archive": False},
            after={"archive": True}, notes=["1 operation(s) applied, not yet visible"])),
        DriftItem("security_finding", _change(
            "-", "dave@contoso.com", "update", before={"forwarding": {"to": "x@evil.example"}},
            after={"forwarding": {"to": "x@evil.example"}}, notes=[HOSTILE])),
        DriftItem("unmanaged", _change("-", "old@contoso.com", "unmanaged",
                                       before={"name": HOSTILE}, notes=[HOSTILE])),
    ]
    return DriftReport(customers=["contoso", "fabrikam"],
                       records={"contoso": AppliedRecord("contoso", "refs/tags/x/contoso",
                                                         "0123456789abcdef")},
                       items=items, warnings=[f"fabrikam: {HOSTILE}"])


def test_html_report_renders_in_chromium_without_console_errors(tmp_path: Path) -> None:
    report = _report()
    assert {i.drift_class for i in report.items} == set(CLASSES)
    page = tmp_path / "drift.html"
    page.write_text(render_html(report), encoding="utf-8")
    dom, console = open_in_chromium(page)
    assert console == []
    assert "<svg" in dom and "Summary per customer and site" in dom
    for rid in ("support@contoso.com", "sales@contoso.com", "accueil@contoso.com",
                "old@contoso.com"):
        assert rid in dom
    # Hostile text is text: no element was made from it, and the title is untouched.
    assert "<title>Drift report</title>" in dom
    assert "<script" not in dom and "<img" not in dom
    assert "&lt;script&gt;document.title=" in dom


def test_the_console_check_does_see_errors(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><title>t</title></head><body>"
                    "<script>undefinedFunction()</script></body></html>")
    _, console = open_in_chromium(page)
    assert any("undefinedFunction" in line for line in console)


def test_drift_command_writes_the_html_page(drift_scenario: DriftScenario,
                                           tmp_path: Path) -> None:
    from click.testing import CliRunner

    from reconciler.cli import cli
    from tests.drift.conftest import LONDON, SUPPORT_YAML

    s = drift_scenario.yaml(LONDON, SUPPORT_YAML)
    s.converge()
    s.commit().mark_applied()
    s.live("New-Mailbox", Room=True, Name="Old Room", Alias="old-room",
           PrimarySmtpAddress="old-room@contoso.com")
    live = s.save_tenant(tmp_path / "live")
    page = tmp_path / "drift.html"
    result = CliRunner().invoke(cli, ["drift", str(s.root), "--live", f"snapshot:{live}",
                                      "--format", "html", "--out", str(page)])
    assert result.exit_code == 2, result.stderr
    dom, console = open_in_chromium(page)
    assert console == []
    assert "old-room@contoso.com" in dom
