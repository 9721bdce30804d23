"""Scenario harness: a tiny desired-state tree per test, the Exchange emulator as the tenant.

A scenario writes YAML into a temporary repository, shapes the live tenant by calling the
emulator's own cmdlets (so the tenant carries Exchange's real noise), plans, and can carry the
plan out on the emulator to show that its operations converge.
"""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler.desired import load
from reconciler.emulator import Emulator, check_call
from reconciler.live.backend import CmdletResult
from reconciler.plan.plan import Plan
from reconciler.plan.planner import plan_desired
from tests.trees import write_customer_tree

DATA = Path(__file__).parent / "data"
BASE_SNAPSHOT: dict[str, Any] = json.loads((DATA / "contoso.json").read_text())

CUSTOMER_YAML = """\
customer:
  name: Contoso Ltd
  tenant:
    id: 6f1c1f2e-0000-4000-8000-000000000001
    initial_domain: contoso.onmicrosoft.com
    app_id: 2b8c0000-0000-4000-8000-000000000002
    certificate_thumbprint: 3F2A9C11223344556677889900AABBCCDDEEFF00
    certificate_key: env:CONTOSO_EXO_KEY
    exchange: enabled
    connection: exchange
  mail_domains: [contoso.com, contoso.co.uk]
"""
SITES = {
    "london": "site:\n  name: London HQ\n  placement:\n    office: [London]\n",
    "paris": "site:\n  name: Paris\n  placement:\n    office: [Paris]\n",
}


class _Unclosable:
    """The emulator as a backend the planner may close without losing the tenant."""

    read_only = False

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def invoke(self, cmdlet: str, parameters: Any = None, select: Any = None) -> CmdletResult:
        return self.emulator.invoke(cmdlet, parameters, select)

    def close(self) -> None:
        pass


class Scenario:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.emulator = Emulator(copy.deepcopy(BASE_SNAPSHOT))
        self.customer_extra = ""
        self.files: dict[str, str] = {}

    def yaml(self, relative: str, text: str) -> Scenario:
        self.files[relative] = textwrap.dedent(text)
        return self

    def policy(self, text: str) -> Scenario:
        self.customer_extra = "  policy:\n" + textwrap.indent(textwrap.dedent(text), "    ")
        return self

    def live(self, cmdlet: str, **parameters: Any) -> Scenario:
        """Shape the live tenant with a real cmdlet call."""
        self.emulator.invoke(cmdlet, parameters)
        return self

    def write(self) -> Path:
        write_customer_tree(self.root, "contoso", CUSTOMER_YAML + self.customer_extra, SITES,
                            self.files)
        return self.root

    def plan(self) -> Plan:
        """Plan the scenario; every operation of every plan is held to the cmdlet reference."""
        desired = load(self.write())
        backend = _Unclosable(self.emulator)
        plan = plan_desired(desired, lambda state: backend).plan
        assert_accepted_by_reference(plan)
        return plan

    def apply(self, plan: Plan) -> None:
        """Carry out the plan's operations in order, as apply would on a healthy tenant."""
        for change in plan.actionable:
            for op in change.operations:
                self.emulator.invoke(op.cmdlet, dict(op.parameters))

    def converge(self) -> Plan:
        """Plan, apply, and plan again: the second plan must have nothing to do."""
        first = self.plan()
        self.apply(first)
        second = self.plan()
        assert not second.has_changes, [c.to_dict() for c in second.actionable]
        return first


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path)


def by_address(plan: Plan) -> dict[str, Any]:
    return {c.address: c for c in plan.changes}


def cmdlets(change: Any) -> list[str]:
    return [op.cmdlet for op in change.operations]


def assert_accepted_by_reference(plan: Plan) -> None:
    """Every planned call uses parameters, sets and values the official reference lists."""
    for change in plan.changes:
        for op in change.operations:
            check_call(op.cmdlet, dict(op.parameters))
