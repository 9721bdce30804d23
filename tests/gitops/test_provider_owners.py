"""`reconciler codeowners` takes the provider rule from reconciler.yaml's `owners`;
--default-owner, when given, replaces them."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.desired import load
from reconciler.desired.codeowners import render_codeowners
from tests.desired.conftest import BASE, write_repo
from tests.gitops.conftest import EXAMPLE, TEMPLATES


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["codeowners", *args])


def _rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _repo(root: Path, provider: str | None, customer_owners: str | None = None,
          hq_owners: str | None = None) -> Path:
    files: dict[str, str | bytes | None] = {}
    if provider is not None:
        files["reconciler.yaml"] = f"owners: {provider}\n"
    if customer_owners:
        files["customers/acme/customer.yaml"] = str(BASE["customers/acme/customer.yaml"]).replace(
            "  name: Acme\n", f"  name: Acme\n  owners: {customer_owners}\n")
    if hq_owners:
        files["customers/acme/sites/hq/site.yaml"] = str(
            BASE["customers/acme/sites/hq/site.yaml"]).replace(
            "  name: Headquarters\n", f"  name: Headquarters\n  owners: {hq_owners}\n")
    return write_repo(root, files)


def test_the_provider_rule_comes_from_reconciler_yaml(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", "['@msp/platform', '@msp/noc', '@msp/platform']",
                 "['@acme/it']", "['@acme/hq']")
    text = render_codeowners(load(repo))
    assert "No provider owner" not in text
    assert _rules(text) == [
        "* @msp/platform @msp/noc",  # in the order declared, each once
        "/customers/acme/ @acme/it",
        "/customers/acme/sites/hq/ @acme/hq @acme/it",
    ]
    # The command, with no option, writes the same.
    written = _run(str(repo))
    assert written.exit_code == 0, written.output
    assert (repo / ".github" / "CODEOWNERS").read_text() == text
    assert _run(str(repo), "--check").exit_code == 0


def test_a_site_of_a_customer_without_owners_falls_back_to_reconciler_yaml(
        tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", "['@msp/platform']", None, "['@acme/hq']")
    assert _rules(render_codeowners(load(repo))) == [
        "* @msp/platform",
        "/customers/acme/sites/hq/ @acme/hq @msp/platform",
    ]


def test_default_owner_replaces_reconciler_yamls_owners(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", "['@msp/platform']", None, "['@acme/hq']")
    shown = _run(str(repo), "--out", "-", "--default-owner", "@msp/override",
                 "--default-owner", "ops@msp.example")
    assert shown.exit_code == 0, shown.output
    # Replaced, not added to: reconciler.yaml's owner appears nowhere, the site's fallback
    # included.
    assert _rules(shown.output) == [
        "* @msp/override ops@msp.example",
        "/customers/acme/sites/hq/ @acme/hq @msp/override ops@msp.example",
    ]
    assert "@msp/platform" not in shown.output

    # A file written from reconciler.yaml is stale for a check that overrides the owner...
    assert _run(str(repo)).exit_code == 0
    stale = _run(str(repo), "--check", "--default-owner", "@msp/override")
    assert stale.exit_code == 1
    assert "+* @msp/override" in stale.output and "-* @msp/platform" in stale.output
    # ...and current for one that names the same owner.
    assert _run(str(repo), "--check", "--default-owner", "@msp/platform").exit_code == 0


def test_without_either_the_provider_rule_is_missing_and_said_so(tmp_path: Path) -> None:
    text = render_codeowners(load(_repo(tmp_path / "repo", None, "['@acme/it']")))
    assert _rules(text) == ["/customers/acme/ @acme/it"]
    assert "No provider owner" in text and "reconciler.yaml" in text


def test_a_changed_owner_in_reconciler_yaml_makes_the_file_stale(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", "['@msp/platform']")
    assert _run(str(repo)).exit_code == 0
    (repo / "reconciler.yaml").write_text("owners: ['@msp/platform-v2']\n")
    stale = _run(str(repo), "--check")
    assert stale.exit_code == 1
    assert "+* @msp/platform-v2" in stale.output


def test_the_example_repository_declares_its_provider_owner(tmp_path: Path) -> None:
    declared = yaml.safe_load((EXAMPLE / "reconciler.yaml").read_text())["owners"]
    assert load(EXAMPLE).owners == tuple(declared)
    # The pull-request check reads the provider's owners from reconciler.yaml, as a plain
    # `reconciler codeowners` does, so the two agree on the committed file.
    assert "--default-owner" not in (TEMPLATES / "plan.yml").read_text()
    done = _run(str(EXAMPLE), "--check")
    assert done.exit_code == 0, done.output
    text = (EXAMPLE / ".github" / "CODEOWNERS").read_text()
    assert f"* {' '.join(declared)}" in _rules(text)
    # The committed file is what the command, without options, writes into a copy.
    copy = shutil.copytree(EXAMPLE, tmp_path / "copy")
    (copy / ".github" / "CODEOWNERS").unlink()
    assert _run(str(copy)).exit_code == 0
    assert (copy / ".github" / "CODEOWNERS").read_text() == text
