"""Drift scenarios: the planner's scenario harness (a tiny YAML tree, the emulator as the
tenant) inside a git repository, so that the applied ref can be tagged and moved."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reconciler.desired import load
from reconciler.drift import DriftReport, drift_desired
from tests.plan.conftest import Scenario, _Unclosable

APPLIED_TAG = "reconciler/applied/contoso"
LONDON = "sites/london/mailboxes.yaml"
SUPPORT_YAML = """\
shared_mailboxes:
  - name: Support
    alias: support
    permissions:
      - {user: alice@contoso.com, access: [FullAccess]}
"""


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout


class DriftScenario(Scenario):
    def commit(self, message: str = "change") -> DriftScenario:
        self.write()
        if not (self.root / ".git").exists():
            git(self.root, "init", "-q")
        git(self.root, "add", "-A")
        git(self.root, "-c", "user.email=ci@example.invalid", "-c", "user.name=CI", "commit",
            "-q", "--allow-empty", "-m", message)
        return self

    def mark_applied(self) -> DriftScenario:
        """What CI does after a successful apply: move the customer's applied tag."""
        git(self.root, "tag", "-f", APPLIED_TAG, "HEAD")
        return self

    def record_pending(self) -> DriftScenario:
        """What apply records when it ran the plan's one operation and could not read it back
        yet: the write is in the applied-state record, not visible live."""
        from reconciler.live import applied as state

        [change] = self.plan().changes
        [op] = change.operations
        record = state.AppliedState(self.root)
        record.record("contoso").pending.append(state.PendingOperation(
            address=change.address, cmdlet=op.cmdlet, fingerprint=state.op_fingerprint(op),
            applied_at=state.now_utc()))
        record.save("contoso")
        return self

    def drift(self, **kw: object) -> DriftReport:
        desired = load(self.write())
        backend = _Unclosable(self.emulator)
        return drift_desired(desired, lambda state: backend, root=self.root, **kw)  # type: ignore[arg-type]

    def save_tenant(self, directory: Path) -> Path:
        """The emulated tenant as a sandbox directory, for the command line."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "contoso.json").write_text(json.dumps(self.emulator.to_snapshot()))
        return directory


@pytest.fixture
def drift_scenario(tmp_path: Path) -> DriftScenario:
    root = tmp_path / "repo"
    root.mkdir()
    return DriftScenario(root)


def classes(report: DriftReport) -> dict[str, list[str]]:
    """address -> the classes reported for it."""
    out: dict[str, list[str]] = {}
    for item in report.items:
        out.setdefault(item.change.address, []).append(item.drift_class)
    return out
