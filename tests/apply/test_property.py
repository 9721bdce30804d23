"""Property: whatever faults strike, in whatever order, applying the example plan through the
real connector (msal + httpx over TLS) to the fake Exchange Online service never writes to an
object the plan does not name, never commits an operation twice, and ends either converged or
with an error naming everything that is left.

Hypothesis draws the interleaving: which faults the service injects (throttling, 5xx, dropped
connections, slow answers, 200s that prove nothing, Exchange errors with transient and permanent
inner types in every error shape, either side of a write's commit), how often, in what seeded
order, and how long a new object stays invisible, to reads only or to writes too."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import shutil
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply.executor import ExecutionOptions
from reconciler.apply.runner import ApplyOptions, apply_plan
from reconciler.cli.apply_cmd import render_report
from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.emulator.faults import (
    ALL_KINDS,
    TRANSIENT_TYPE,
    UNREADABLE_KINDS,
    ErrorShape,
    FaultConfig,
    FaultKind,
)
from reconciler.emulator.service import FakeExchangeService
from reconciler.live.applied import AppliedState
from reconciler.live.backend import CmdletResult, is_write
from reconciler.live.exchange import ExchangeBackend, ExchangeSettings
from reconciler.plan.planner import plan_desired
from tests.apply.test_fake_service import DATA, EXAMPLE, RETRY, FakeClock
from tests.exchange.conftest import AppCertificate, Pki, serve_customer

CUSTOMER = "contoso"
PERMANENT_TYPE = "System.ArgumentException"  # refused, never retried, whatever the status
KINDS = (*ALL_KINDS, *UNREADABLE_KINDS, FaultKind.EXCHANGE_ERROR)
_runs = itertools.count()


@dataclasses.dataclass
class Ledger:
    """The emulator behind the service, recording every write that changed the tenant."""

    emulator: Emulator
    committed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def invoke(self, cmdlet: str, parameters: Mapping[str, Any] | None = None,
               select: Sequence[str] | None = None) -> CmdletResult:
        result = self.emulator.invoke(cmdlet, parameters, select)
        if is_write(cmdlet):
            with self.lock:
                self.committed.append((cmdlet, json.dumps(dict(parameters or {}),
                                                          sort_keys=True)))
        return result

    def close(self) -> None:
        pass

    read_only = False


faults = st.builds(
    FaultConfig,
    seed=st.integers(0, 2**16),
    rate=st.floats(0.05, 0.3),
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=4, unique=True).map(tuple),
    exception_types=st.lists(st.sampled_from([TRANSIENT_TYPE, PERMANENT_TYPE]), min_size=1,
                             max_size=2, unique=True).map(tuple),
    error_shapes=st.lists(st.sampled_from(tuple(ErrorShape)), min_size=1, max_size=3,
                          unique=True).map(tuple),
    slow_seconds=st.just(0.01),
)


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(config=faults, lag=st.sampled_from([0.0, 5.0]), writes_lag=st.booleans(),
       concurrency=st.sampled_from([1, 4]))
def test_faults_in_any_order_never_write_outside_the_plan_or_twice(
        tmp_path: Path, pki: Pki, app_cert: AppCertificate, key_env: str,
        config: FaultConfig, lag: float, writes_lag: bool, concurrency: int):
    root = tmp_path / f"run{next(_runs)}"
    shutil.copytree(EXAMPLE / "customers", root / "customers")
    shutil.copy(EXAMPLE / "reconciler.yaml", root / "reconciler.yaml")
    desired = load(root)
    clock = FakeClock()
    snapshot = json.loads((DATA / f"{CUSTOMER}.json").read_text())
    ledger = Ledger(Emulator(copy.deepcopy(snapshot), clock=clock, lag_seconds=lag,
                             lag_applies_to_writes=writes_lag))
    # The plan is made on a quiet tenant: what is reviewed is the example's plan.
    plan = plan_desired(desired, lambda state: ledger, customers=[CUSTOMER]).plan
    planned = Counter((op.cmdlet, json.dumps(dict(op.parameters), sort_keys=True))
                      for c in plan.actionable for op in c.operations)
    assert sum(planned.values()) > 10

    tenant_id = snapshot["tenant"]["id"]
    service = FakeExchangeService({tenant_id: ledger}, faults=config)
    service.start(ssl_context=pki.server_context)
    try:
        state = desired.customers[CUSTOMER]
        serve_customer(state, service, tenant_id, app_cert, key_env, concurrency=concurrency)

        def backend_for(state: Any) -> ExchangeBackend:
            settings = ExchangeSettings.for_tenant(state.customer.tenant,
                                                   verify=pki.client_context, retry=RETRY)
            return ExchangeBackend(state.customer, settings=settings, sleep=clock.sleep)

        options = ApplyOptions(execution=ExecutionOptions(sleep=clock.sleep), sleep=clock.sleep)
        report = apply_plan(plan, desired, backend_for, root=root, options=options)
    finally:
        service.stop()

    committed = Counter(ledger.committed)
    # Only what the plan names, each at most once.
    assert not committed - planned, (committed - planned, config)
    clock.sleep(lag + 10)  # past the lag: what was applied is visible
    applied = AppliedState.load(root, [CUSTOMER])
    left = plan_desired(desired, lambda state: ledger, customers=[CUSTOMER],
                        previous_locations=applied.previous_locations()).plan.actionable
    summary = render_report(report)
    if report.ok:
        assert not left, ([c.address for c in left], summary)
    else:
        assert report.failed or report.skipped, summary
        named = {r.ref.address for r in (*report.failed, *report.skipped)}
        assert {c.address for c in left} <= named, (summary, [c.address for c in left])
