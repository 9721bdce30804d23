"""Apply a plan: execute each customer's operations, verify by reading back, record state.

Verification re-plans the resources the plan touched. An operation apply carried out that the
new plan still calls for is not visible yet (Exchange's replication lag): it is read again with
backoff up to a bound, and then reported as "applied, not yet visible" and recorded in the
applied-state record, so that a plan made in the next minutes shows it as pending propagation
instead of planning it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from reconciler import collector
from reconciler.apply import executor
from reconciler.apply.executor import (
    FAILED,
    NOT_STARTED,
    SKIPPED,
    SUCCEEDED,
    ExecutionOptions,
    Executor,
    OpRef,
    OpResult,
    ProgressCallback,
)
from reconciler.errors import ReconcilerError
from reconciler.live.applied import AppliedState, PendingOperation, now_utc, op_fingerprint
from reconciler.live.journal import JOURNAL_DIRECTORY, Journal
from reconciler.model import CustomerState, DesiredState, Location
from reconciler.plan.plan import Change, Plan
from reconciler.plan.planner import BackendFactory, plan_desired

DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class ApplyOptions:
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    journal_dir: Path | None = None  # default: <repo>/.reconciler/journal
    verify_attempts: int = 5  # reads of what is not yet visible, after the first
    verify_delay: float = 2.0  # first wait, doubled up to verify_max_delay
    verify_max_delay: float = 30.0
    sleep: Callable[[float], None] = lambda seconds: executor.pause(seconds)
    now: Callable[[], datetime] = now_utc


@dataclass
class CustomerReport:
    customer: str
    results: list[OpResult] = field(default_factory=list)
    not_visible: list[OpResult] = field(default_factory=list)
    still_differs: list[str] = field(default_factory=list)
    verify_error: str | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. a torn journal line ignored
    interrupted: bool = False  # Ctrl-C during its operations


@dataclass
class ApplyReport:
    customers: list[CustomerReport] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C: some operations were not started

    def _all(self, status: str) -> list[OpResult]:
        return [r for c in self.customers for r in c.results if r.status == status]

    @property
    def succeeded(self) -> list[OpResult]:
        return self._all(SUCCEEDED)

    @property
    def failed(self) -> list[OpResult]:
        return self._all(FAILED)

    @property
    def skipped(self) -> list[OpResult]:
        return self._all(SKIPPED)

    @property
    def not_started(self) -> list[OpResult]:
        return self._all(NOT_STARTED)

    @property
    def not_visible(self) -> list[OpResult]:
        return [r for c in self.customers for r in c.not_visible]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.interrupted


def apply_plan(
    plan: Plan,
    desired: DesiredState,
    backend_for: BackendFactory,
    *,
    root: Path,
    options: ApplyOptions | None = None,
    progress: ProgressCallback | None = None,
) -> ApplyReport:
    """Carry out ``plan``'s actionable changes, customer by customer (tenants are independent;
    CI runs one job per customer to go wider)."""
    options = options or ApplyOptions()
    root = Path(root)
    journal_dir = options.journal_dir or root / JOURNAL_DIRECTORY
    by_customer: dict[str, list[Change]] = {}
    for change in plan.actionable:
        by_customer.setdefault(change.customer, []).append(change)
    applied = AppliedState.load(root, by_customer)
    # Before anything is written anywhere: a read-only source cannot take any of it.
    for cid in sorted(by_customer):
        probe = backend_for(desired.customers[cid])
        read_only = getattr(probe, "read_only", False)
        probe.close()
        if read_only:
            raise ReconcilerError(f"customer {cid}: its live source is read-only (a snapshot); "
                                  f"apply to exchange or a sandbox. Nothing was changed.")
    report = ApplyReport()
    for cid in sorted(by_customer):
        if report.interrupted:  # Ctrl-C: the customers after it are not started either
            report.customers.append(CustomerReport(cid, [
                OpResult(OpRef(c, i), NOT_STARTED, "interrupted before it started")
                for c in by_customer[cid] for i in range(len(c.operations))]))
            continue
        customer_report = _apply_customer(plan.checksum, desired.customers[cid],
                                          by_customer[cid], backend_for, journal_dir, options,
                                          progress)
        report.customers.append(customer_report)
        report.interrupted = customer_report.interrupted
        if report.interrupted:
            continue  # no verification: the next run plans what remains from live state
        try:
            _verify_and_record(customer_report, by_customer[cid], desired, backend_for,
                               applied, options)
        except KeyboardInterrupt:
            report.interrupted = True
            customer_report.verify_error = "interrupted while reading back"
    return report


def _apply_customer(checksum: str, state: CustomerState, changes: list[Change],
                    backend_for: BackendFactory, journal_dir: Path, options: ApplyOptions,
                    progress: ProgressCallback | None) -> CustomerReport:
    """Run one customer's operations (journaled); a Ctrl-C ends it with the rest not started."""
    cid = state.customer.id
    concurrency = state.customer.tenant.concurrency or DEFAULT_CONCURRENCY
    journal = Journal(journal_dir, cid)
    backend = backend_for(state)
    try:
        executor = Executor(backend, journal, checksum,
                            replace(options.execution, concurrency=concurrency), progress)
        with collector.resumed():  # it may run for hours, making garbage as it goes
            results = executor.run(changes)
        if all(r.status == SUCCEEDED for r in results):
            # Replaying this plan later is then answered from the journal (saved.py).
            journal.append("complete", plan=checksum)
    finally:
        journal.close()
        backend.close()
    return CustomerReport(cid, results, warnings=list(journal.warnings),
                          interrupted=executor.interrupted)


def _verify_and_record(report: CustomerReport, changes: list[Change], desired: DesiredState,
                       backend_for: BackendFactory, applied: AppliedState,
                       options: ApplyOptions) -> None:
    cid = report.customer
    by_address: dict[str, list[OpResult]] = {}
    for r in report.results:
        by_address.setdefault(r.ref.address, []).append(r)
    complete = [c for c in changes
                if all(r.status == SUCCEEDED for r in by_address.get(c.address, []))]
    # Where each fully applied resource now is: a move has no operation to show it.
    locations: dict[str, Location | None] = {
        c.id: None if c.action == "delete" else Location(c.customer, c.site) for c in complete}
    applied.set_locations(cid, locations)
    succeeded = {(r.ref.address, op_fingerprint(r.ref.op)): r for r in report.results
                 if r.status == SUCCEEDED}
    incomplete = {c.address for c in changes} - {c.address for c in complete}
    scope: dict[str, set[str] | None] = {cid: {c.id for c in changes}}
    delay = options.verify_delay
    not_visible: list[OpResult] = []
    still: list[str] = []
    remaining: Plan | None = None
    try:
        for attempt in range(options.verify_attempts + 1):
            if attempt:
                options.sleep(delay)
                delay = min(delay * 2, options.verify_max_delay)
            remaining = plan_desired(desired, backend_for, customers=[cid], scope=scope,
                                     previous_locations=applied.previous_locations()).plan
            not_visible, still = [], []
            for change in remaining.actionable:
                lagging = [succeeded[(change.address, op_fingerprint(op))]
                           for op in change.operations
                           if (change.address, op_fingerprint(op)) in succeeded]
                not_visible.extend(lagging)
                if not lagging and change.address not in incomplete:
                    still.append(f"{change.address}: still {change.action} after apply")
            if not not_visible:
                break
    except Exception as e:  # the writes are done; report that verification could not run
        report.verify_error = str(e) or type(e).__name__
    report.not_visible = not_visible
    report.still_differs = still
    converged = ({c.address for c in changes} - {c.address for c in remaining.actionable}
                 if remaining is not None else set())
    now = options.now()
    applied.settle_pending(
        cid, visible=converged,
        pending=[PendingOperation(r.ref.address, r.ref.op.cmdlet, op_fingerprint(r.ref.op), now)
                 for r in not_visible])
    applied.save(cid)


def group_by_change(results: list[OpResult]) -> Mapping[str, list[OpResult]]:
    out: dict[str, list[OpResult]] = {}
    for r in results:
        out.setdefault(r.ref.address, []).append(r)
    return out
