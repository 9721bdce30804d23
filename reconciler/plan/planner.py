"""Make a plan: load desired state, read each customer's tenant, diff, check safety.

A pure function of (desired, live) once both are read; all I/O is in the loader and the
backends, so tests can feed either side directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import collector
from reconciler.errors import InputError, Problem, ReconcilerError, did_you_mean
from reconciler.live.backend import Backend
from reconciler.live.reader import LiveTenant, read_live
from reconciler.model import CustomerState, DesiredState, Location
from reconciler.plan.diff import diff_customer
from reconciler.plan.plan import Plan

if TYPE_CHECKING:
    from reconciler.desired.cache import ParseCache

log = logging.getLogger(__name__)

BackendFactory = Callable[[CustomerState], Backend]
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class PlanResult:
    """A plan, and the live state it was made against (apply and drift reuse it)."""

    plan: Plan
    live: dict[str, LiveTenant] = field(default_factory=dict)
    # With --changed-since: how many resources the changes put in scope (None: all were).
    in_scope: int | None = None


def select_customers(desired: DesiredState, wanted: Collection[str] | None) -> list[str]:
    if not wanted:
        return sorted(desired.customers)
    unknown = sorted(set(wanted) - set(desired.customers))
    if unknown:
        known = ", ".join(sorted(desired.customers)) or "none"
        raise InputError([Problem(f"unknown customer {c!r}{did_you_mean(c, desired.customers)}"
                                  f"; customers here: {known}") for c in unknown])
    return sorted(set(wanted))


def plan_desired(
    desired: DesiredState,
    backend_for: BackendFactory,
    *,
    customers: Collection[str] | None = None,
    scope: Mapping[str, set[str] | None] | None = None,
    previous_locations: Mapping[str, Mapping[str, Location]] | None = None,
    progress: ProgressCallback | None = None,
) -> PlanResult:
    """Plan every selected customer. Problems found at plan time (unknown users, the
    same-site rule, missing user mailboxes) are collected across customers and raised
    together as one InputError."""
    result = PlanResult(plan=Plan())
    problems: list[Problem] = []
    for cid in select_customers(desired, customers):
        state = desired.customers[cid]
        tenant = state.customer.tenant
        result.plan.customers.append(cid)
        if not tenant.exchange:
            result.plan.warnings.append(f"{cid}: Exchange management is disabled for this "
                                        f"tenant; nothing planned")
            continue
        # With a scope, a customer it does not name has nothing to plan; None: all of it.
        customer_scope = scope.get(cid, set()) if scope is not None else None
        if customer_scope is not None and not customer_scope:
            continue
        backend = backend_for(state)
        try:
            live = read_live(state, backend,
                             previous_locations=(previous_locations or {}).get(cid),
                             scope=customer_scope,
                             workers=tenant.concurrency or 4, progress=progress)
        except ReconcilerError as e:
            raise ReconcilerError(f"reading the tenant of customer {cid} failed: {e}") from e
        finally:
            backend.close()
        collector.settled()
        result.live[cid] = live
        diff = diff_customer(state, live, scope=customer_scope, root=desired.root)
        problems.extend(diff.problems)
        result.plan.changes.extend(diff.changes)
        result.plan.warnings.extend(diff.warnings)
        result.plan.refusals.extend(diff.refusals)
    if problems:
        raise InputError(problems)
    result.plan.changes.sort(key=lambda c: c.address)
    return result


def plan_basis(root: Path, plan: Plan) -> dict[str, str]:
    """Per customer the plan changes, the last plan the repository's journal says was carried
    out in full (reconciler.live.journal): a plan made after an apply is not that apply's."""
    from reconciler.live.journal import JOURNAL_DIRECTORY, last_completed

    basis = {cid: last_completed(root / JOURNAL_DIRECTORY, cid)
             for cid in sorted({c.customer for c in plan.actionable})}
    return {cid: checksum for cid, checksum in basis.items() if checksum}


def _adopting(backend: Backend, preloaded: object, cache: ParseCache | None) -> Backend:
    """``backend``, serving the snapshot read ahead for it if it is that snapshot's, and
    recording the snapshot's validation in ``cache`` if it reads the file itself."""
    from reconciler.emulator.snapshot_backend import Preloaded, SnapshotBackend

    if isinstance(backend, SnapshotBackend):
        backend.cache = cache
        if isinstance(preloaded, Preloaded):
            backend.adopt(preloaded)
    return backend


def _customer_folders(root: Path) -> list[str]:
    """The customers a repository may declare (the loader checks each folder)."""
    folder = root / "customers"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def make_plan(
    root: str | Path,
    *,
    live_source: str | None = None,
    customers: Collection[str] | None = None,
    changed_since: str | None = None,
    progress: ProgressCallback | None = None,
    use_cache: bool = False,
) -> PlanResult:
    """Load the repository at ``root`` and plan it against each customer's live source;
    with ``changed_since``, only what differs from that git ref. ``use_cache``: parse only
    the YAML files not in the repository's parse cache (reconciler.desired.cache)."""
    from reconciler.desired import load
    from reconciler.desired.cache import ParseCache
    from reconciler.emulator.snapshot_backend import Preloaded
    from reconciler.plan.scope import changed_since as scope_since
    from reconciler.sources.backends import open_backend, preloads

    root = Path(root)
    cache = ParseCache.of_repository(root) if use_cache else None
    # While the YAML is parsed on other cores, this process reads the snapshots it will plan
    # against (a customer a pull request leaves alone costs only that otherwise idle time).
    preloaded: dict[str, Preloaded] = {}
    meanwhile = preloads(live_source, customers or _customer_folders(root), preloaded, cache)
    desired = load(root, cache=cache, meanwhile=meanwhile)
    collector.settled()
    scope = scope_since(root, changed_since, desired, cache) if changed_since else None
    # --- applied-state record (reconciler.live.applied), kept out of plan_desired so that it
    # stays a pure function of its inputs: where apply last put each resource (a move has no
    # operation to show it live), and writes applied but not yet visible, which this plan shows
    # as pending propagation instead of planning them again.
    from reconciler.live.applied import AppliedState

    applied = AppliedState.load(root, select_customers(desired, customers))
    result = plan_desired(
        desired, lambda state: _adopting(open_backend(live_source, state.customer, root),
                                         preloaded.pop(state.customer.id, None), cache),
        customers=customers, scope=scope.ids if scope else None,
        previous_locations=applied.previous_locations(
            scope.previous_locations if scope else None), progress=progress)
    preloaded.clear()  # those of customers not read: their memory goes now
    applied.mark_pending(result.plan)
    result.plan.basis = plan_basis(root, result.plan)
    if scope is not None:
        result.in_scope = sum(
            len(desired.customers[cid].resources) if ids is None else len(ids)
            for cid, ids in scope.ids.items() if cid in select_customers(desired, customers))
    return result
