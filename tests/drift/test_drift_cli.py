"""The drift command: exit codes 0 (clean), 2 (drift) and 1 (error), and its formats."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli
from tests.drift.conftest import LONDON, SUPPORT_YAML, DriftScenario


def _run(s: DriftScenario, tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    s.write()
    live = s.save_tenant(tmp_path / "live")
    result = CliRunner().invoke(cli, ["drift", str(s.root), "--live", f"snapshot:{live}",
                                      *extra])
    return result.exit_code, result.stdout, result.stderr


def _applied(s: DriftScenario) -> DriftScenario:
    s.yaml(LONDON, SUPPORT_YAML)
    s.converge()
    return s.commit().mark_applied()


def test_exit_0_when_clean(drift_scenario: DriftScenario, tmp_path: Path) -> None:
    code, out, _ = _run(_applied(drift_scenario), tmp_path)
    assert code == 0, out
    assert out.startswith("No drift")


def test_exit_2_on_drift(drift_scenario: DriftScenario, tmp_path: Path) -> None:
    s = _applied(drift_scenario)
    s.live("Add-RecipientPermission", Identity="support@contoso.com", Trustee="carol",
           AccessRights=["SendAs"], Confirm=False)
    code, out, _ = _run(s, tmp_path)
    assert code == 2, out
    assert "[changed outside git] shared_mailbox support@contoso.com" in out
    # Added in the portal: it reads as added outside git, not as a red removal.
    assert "+   carol@contoso.com: access SendAs  (added outside git)" in out
    assert "-   carol@contoso.com" not in out


def test_exit_1_on_error(drift_scenario: DriftScenario, tmp_path: Path) -> None:
    s = _applied(drift_scenario)
    code, _, err = _run(s, tmp_path, "--applied-ref", "refs/tags/missing")
    assert code == 1
    assert "names no commit" in err
    s.yaml(LONDON, "shared_mailboxes: [{}]\n")
    code, _, err = _run(s, tmp_path)
    assert code == 1 and "error" in err


def test_formats_and_out_file(drift_scenario: DriftScenario, tmp_path: Path) -> None:
    s = _applied(drift_scenario)
    s.live("New-Mailbox", Shared=True, Name="Old", Alias="old",
           PrimarySmtpAddress="old@contoso.com")
    code, out, _ = _run(s, tmp_path, "--format", "json")
    assert code == 2
    assert json.loads(out)["summary"]["unmanaged"] == 1
    code, out, _ = _run(s, tmp_path, "--format", "markdown")
    assert code == 2 and out.startswith("### Drift report")
    assert "| contoso | - | 0 | 0 | 0 | 0 | 1 |" in out
    target = tmp_path / "drift.json"
    code, out, err = _run(s, tmp_path, "--format", "json", "--out", str(target))
    assert code == 2 and out == ""
    assert json.loads(target.read_text())["drift"] is True
    assert "Wrote the drift report" in err


def test_external_forwarding_outside_git_is_a_security_finding_managed_or_not(
        drift_scenario: DriftScenario, tmp_path: Path) -> None:
    s = _applied(drift_scenario)
    code, _, _ = _run(s, tmp_path)
    assert code == 0  # forwarding inside the customer's domains is no finding
    # Set in the portal, on mailboxes whose YAML leaves forwarding unmanaged (or that are
    # declared nowhere); one allowed by policy, one to an internal recipient.
    s.live("Set-Mailbox", Identity="alice@contoso.com",
           ForwardingSmtpAddress="smtp:drop@evil.example")
    s.live("Set-Mailbox", Identity="support@contoso.com",
           ForwardingSmtpAddress="smtp:desk@partner.example")
    s.live("Set-Mailbox", Identity="bob@contoso.com", ForwardingAddress="alice@contoso.com")
    s.policy("allowed_forwarding_domains: [partner.example]\n")
    code, out, _ = _run(s, tmp_path)
    assert code == 2, out
    assert "[security finding] user_mailbox alice@contoso.com" in out
    assert ("forwards mail to drop@evil.example, outside contoso.co.uk, contoso.com, "
            "contoso.onmicrosoft.com, partner.example") in out
    assert "desk@partner.example" not in out and "bob@contoso.com" not in out
    code, out, _ = _run(s, tmp_path, "--format", "json")
    [finding] = [i for i in json.loads(out)["items"] if i["class"] == "security_finding"]
    assert finding["id"] == "alice@contoso.com"
    assert finding["before"]["forwarding"]["to"] == "drop@evil.example"
    code, out, _ = _run(s, tmp_path, "--format", "markdown")
    assert code == 2 and "security finding" in out and "drop@evil.example" in out
    code, out, _ = _run(s, tmp_path, "--format", "html")
    assert code == 2 and "drop@evil.example" in out


def test_html_says_when_it_was_made_and_what_to_do_per_class(
        drift_scenario: DriftScenario, tmp_path: Path) -> None:
    from reconciler.drift.report import ADVICE, CLASSES

    code, out, _ = _run(_applied(drift_scenario), tmp_path, "--format", "html")
    assert code == 0
    made = re.search(r"Made at (\d{4}-\d\d-\d\dT\d\d:\d\dZ)\.", out)
    assert made is not None
    for drift_class in CLASSES:
        assert f"What to do: {html.escape(ADVICE[drift_class], quote=True)}." in out
