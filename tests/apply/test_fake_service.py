"""The example repository's plan applied through the real connector (msal + httpx) to the fake
Exchange Online service, with 20% of requests faulted (429, 5xx, dropped connections, slow
answers, either side of a write's commit) and 5 s of read-after-write lag: apply converges, and
the service's own counters show every write committed exactly once."""

from __future__ import annotations

import copy
import json
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.executor import ExecutionOptions
from reconciler.apply.runner import ApplyOptions, apply_plan
from reconciler.cli.apply_cmd import render_report
from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.emulator.faults import FaultConfig, Phase
from reconciler.live.applied import AppliedState
from reconciler.live.backend import is_write
from reconciler.live.exchange import ExchangeBackend, ExchangeSettings, RetryPolicy
from reconciler.plan.planner import plan_desired
from tests.exchange.conftest import AppCertificate, Pki, serve_customer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "desired-state"
DATA = Path(__file__).parent / "data"
# Waits are on the fake clock, so Exchange's longest Retry-After costs nothing to honour.
RETRY = RetryPolicy(attempts=8, throttle_attempts=12, backoff_base=0.5, backoff_cap=4.0,
                    max_retry_after=5.0)


class FakeClock:
    """Monotonic seconds that move only when something waits: lag passes without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)


def _example_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE / "customers", root / "customers")
    shutil.copy(EXAMPLE / "reconciler.yaml", root / "reconciler.yaml")
    return root


# With one request at a time the order of requests, and so which of them the seeded schedule
# faults, is the same on every run; with four it varies from run to run.
@pytest.mark.parametrize(("seed", "concurrency"), [(1, 4), (2, 4), (3, 4), (7, 1)])
def test_example_plan_converges_through_faults_and_lag_exactly_once(
        tmp_path: Path, seed: int, concurrency: int, start_service, pki: Pki,
        app_cert: AppCertificate, key_env: str):
    root = _example_repo(tmp_path)
    desired = load(root)
    clock = FakeClock()
    services: dict[str, Any] = {}
    for cid, state in desired.customers.items():
        snapshot = json.loads((DATA / f"{cid}.json").read_text())
        tenant_id = snapshot["tenant"]["id"]
        service = start_service(
            {tenant_id: Emulator(copy.deepcopy(snapshot), clock=clock)}, lag_seconds=5.0,
            faults=FaultConfig(seed=seed, rate=0.2, slow_seconds=0.02))
        services[cid] = service
        # The customer's tenant, pointed at the fake service (and at the test's certificate).
        serve_customer(state, service, tenant_id, app_cert, key_env, concurrency=concurrency)

    def backend_for(state: Any) -> ExchangeBackend:
        settings = ExchangeSettings.for_tenant(state.customer.tenant, verify=pki.client_context,
                                               retry=RETRY)
        return ExchangeBackend(state.customer, settings=settings, sleep=clock.sleep)

    plan = plan_desired(desired, backend_for).plan
    assert plan.operation_count > 20
    options = ApplyOptions(execution=ExecutionOptions(sleep=clock.sleep), sleep=clock.sleep)
    report = apply_plan(plan, desired, backend_for, root=root, options=options)
    assert report.ok, render_report(report)

    clock.sleep(10)  # past the lag: what is applied is visible
    # Planned as `reconciler plan` does: with the locations apply recorded (the plan's move).
    applied = AppliedState.load(root, desired.customers)
    again = plan_desired(desired, backend_for,
                         previous_locations=applied.previous_locations()).plan
    assert not again.has_changes, [c.address for c in again.actionable]

    injected = [e for s in services.values() for e in s.schedule.injected()]
    assert len(injected) > 10  # the faults really happened
    write_faults = {e.fault.phase for e in injected if e.fault and is_write(e.cmdlet)}
    assert write_faults
    if concurrency == 1:  # a reproducible run with writes faulted before and after commit
        assert write_faults == set(Phase)
    for cid, service in services.items():
        planned = Counter(op.cmdlet for c in plan.actionable if c.customer == cid
                          for op in c.operations)
        committed = Counter({k: v for k, v in service.commits.items() if is_write(k)})
        assert committed == planned, (cid, committed - planned, planned - committed)
        assert all(n == 1 for n in service.commits_by_request.values())
