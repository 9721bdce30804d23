"""Building small repositories for the desired-state tests: a minimal valid one, plus the files
each test changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli

CUSTOMER = """\
customer:
  name: Acme
  tenant:
    id: 00000000-0000-4000-8000-000000000001
    initial_domain: acme.onmicrosoft.com
    certificate_key: env:ACME_KEY
  mail_domains: [acme.com, acme.co.uk]
  templates:
    leaver: {convert_to: shared, auto_reply: {state: Enabled, internal_message: Gone.}}
"""
SITE = """\
site:
  name: Headquarters
  placement:
    office: [HQ]
"""
BASE: dict[str, str | bytes] = {
    "customers/acme/customer.yaml": CUSTOMER,
    "customers/acme/sites/hq/site.yaml": SITE,
    "customers/acme/sites/branch/site.yaml": "site:\n  name: Branch\n",
}


def write_repo(root: Path, files: dict[str, str | bytes | None]) -> Path:
    """The base repository with ``files`` added or replaced (None removes a base file)."""
    merged = {**BASE, **files}
    for rel, content in merged.items():
        if content is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    problems: list[dict[str, object]]


def run_validate(path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """``reconciler validate PATH`` in text format, and again in JSON format."""
    runner = CliRunner()
    text = runner.invoke(cli, ["validate", str(path), *args], env=env)
    as_json = runner.invoke(cli, ["validate", str(path), "--format", "json"])
    assert as_json.exit_code == text.exit_code
    return Result(text.exit_code, text.stdout, text.stderr, json.loads(as_json.stdout))


@pytest.fixture
def repo(tmp_path: Path) -> Callable[[dict[str, str | bytes | None]], Path]:
    return lambda files: write_repo(tmp_path / "repo", files)
