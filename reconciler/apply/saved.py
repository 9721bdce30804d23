"""Saved plans: read one, and refuse it unless it is still exactly what should be applied.

A saved plan is refused (nothing is changed) when:

- its ``format_version`` has a major number this version does not know;
- its checksum does not match its own changes (edited or damaged after it was made);
- the live or desired state it was planned against has moved: the resources it touches are
  planned again, and any change that now differs from the saved one is listed. Reading live
  state is fail-closed: a read error refuses the plan.

A plan that an earlier, interrupted apply already partly carried out (the journal records
operations of this very plan as done) is compared by what remains: every operation not yet
done must still be called for, and nothing new may be.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from reconciler.desired.schema import SCHEMA_DIR
from reconciler.errors import ReconcilerError
from reconciler.live.applied import AppliedState, parse_location
from reconciler.live.journal import JournalView
from reconciler.live.reader import LiveTenant
from reconciler.model import DesiredState, Location
from reconciler.plan.diff import existing_count, safety_refusals
from reconciler.plan.plan import SUPPORTED_MAJOR, Change, Plan, Refusal, checksum_of
from reconciler.plan.planner import BackendFactory, plan_desired
from reconciler.safe import message

# Keys that do not change what apply does: where in YAML a resource is declared moves with
# unrelated edits to the same file.
IGNORED_KEYS = ("source",)


class PlanRefused(ReconcilerError):
    """The saved plan must not be applied; the message says why."""


@dataclass
class SavedPlan:
    plan: Plan
    checksum: str
    path: Path


def _check_shape(data: Mapping[str, Any], path: Path) -> None:
    """The plan file against the published plan schema: a field of the wrong shape (a list
    where parameters are a mapping) is named, never met later as a crash."""
    schema = json.loads((SCHEMA_DIR / "plan.schema.json").read_text(encoding="utf-8"))
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is not None:
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                        for p in error.absolute_path).lstrip(".") or "(the top level)"
        raise PlanRefused(f"{path} is not a valid plan: {field}: {message(error.message)}; "
                          "make the plan again")


def load_saved_plan(path: Path) -> SavedPlan:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise PlanRefused(f"cannot read the plan {path}: {e.strerror}") from e
    except ValueError as e:
        raise PlanRefused(f"{path} is not a plan: not JSON ({e})") from e
    except RecursionError as e:  # the decoder's own limit: no plan nests this deep
        raise PlanRefused(f"{path} is not a plan: nested too deep to be one") from e
    if not isinstance(data, dict) or "changes" not in data:
        raise PlanRefused(f"{path} is not a plan: no changes (write one with "
                          f"`reconciler plan --out {path}`)")
    version = str(data.get("format_version", ""))
    major = version.partition(".")[0]
    if not major.isdigit() or int(major) != SUPPORTED_MAJOR:
        raise PlanRefused(f"plan {path} has format_version {version or '(none)'}; this "
                          f"reconciler applies format {SUPPORTED_MAJOR}.x only. Make the plan "
                          f"again with this version.")
    changes = data.get("changes")
    if not isinstance(changes, list):
        raise PlanRefused(f"{path} is not a plan: changes is not a list")
    basis = data.get("basis") or {}
    if not isinstance(basis, dict) or not all(isinstance(v, str) for v in basis.values()):
        raise PlanRefused(f"{path} is not a valid plan: basis is not a mapping of customers "
                          "to plan checksums; make the plan again")
    expected = checksum_of(version, changes, basis)
    if data.get("checksum") != expected:
        raise PlanRefused(f"plan {path} does not match its checksum: it was changed after it "
                          f"was made (tampered or damaged). Make the plan again.")
    _check_shape(data, path)
    try:
        plan = Plan(changes=[Change.from_dict(c) for c in changes],
                    warnings=list(data.get("warnings") or ()),
                    # Not covered by the checksum, so never read: apply works the safety
                    # limits out again from live counts.
                    refusals=[],
                    customers=sorted(data.get("customers") or {c.customer for c in
                                                                 [Change.from_dict(x)
                                                                  for x in changes]}),
                    basis=dict(basis))
    except (KeyError, TypeError, AttributeError) as e:
        raise PlanRefused(f"{path} is not a valid plan: {e}") from e
    twice = duplicates(plan)
    if twice:
        raise PlanRefused(f"plan {path} lists a change more than once, which the planner never "
                          f"does ({'; '.join(twice)}): it was edited after it was made. Make "
                          f"the plan again.")
    return SavedPlan(plan=plan, checksum=expected, path=Path(path))


def _comparable(change: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in change.items() if k not in IGNORED_KEYS}


def _what_differs(saved: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    if saved.get("action") != now.get("action"):
        return f"now {now.get('action')} (the plan says {saved.get('action')})"
    keys = sorted(k for k in set(saved) | set(now) if k not in IGNORED_KEYS
                  and saved.get(k) != now.get(k))
    parts = []
    before = {k for k in set(saved.get("before") or {}) | set(now.get("before") or {})
              if (saved.get("before") or {}).get(k) != (now.get("before") or {}).get(k)}
    after = {k for k in set(saved.get("after") or {}) | set(now.get("after") or {})
             if (saved.get("after") or {}).get(k) != (now.get("after") or {}).get(k)}
    if before:
        parts.append(f"live {', '.join(sorted(before))} changed")
    if after:
        parts.append(f"desired {', '.join(sorted(after))} changed")
    rest = [k for k in keys if k not in ("before", "after")]
    if rest:
        parts.append(f"{', '.join(rest)} differ")
    return "; ".join(parts) or "differs"


def _remaining_ok(saved: Change, now: Change | None, done: Collection[int],
                  in_flight: Collection[int]) -> bool:
    """For a partly applied change: the operations called for now are the saved ones in
    order, leaving out only ones already done or in flight, and include all the others."""
    wanted = [op.to_dict() for op in (now.operations if now is not None else ())]
    pos = 0
    for index, op in enumerate(saved.operations):
        if pos < len(wanted) and wanted[pos] == op.to_dict():
            pos += 1
        elif index not in done and index not in in_flight:
            return False
    return pos == len(wanted)


@dataclass
class Recheck:
    """What planning the saved plan's resources again found."""

    differences: list[str]  # addresses, with what moved; empty: the plan is current
    # The safety limits worked out again from live counts: the checksum does not cover a
    # plan's refusals, and a file's refusals or limits are never read.
    refusals: list[Refusal]
    # When the journal says this very plan was carried out in full: the time its last
    # operation was done. Its differences then say what moved since.
    applied_on: str | None = None


def duplicates(saved: Plan) -> list[str]:
    """Changes a plan lists twice: one address, or one resource, under two changes. The
    planner never writes such a plan; applying one would run a change nobody reviewed."""
    addresses = Counter(c.address for c in saved.changes)
    out = [f"{a}: listed {n} times in the plan" for a, n in sorted(addresses.items()) if n > 1]
    distinct = {c.address: c for c in saved.actionable}.values()
    ids = Counter(f"{c.customer}/{c.id.lower()}" for c in distinct)
    out += [f"{r}: changed by {n} different changes of the plan"
            for r, n in sorted(ids.items()) if n > 1]
    return out


def completed_on(saved: Plan, journal: Mapping[str, JournalView]) -> str | None:
    """When the journal says this plan was carried out in full (for each of its customers,
    an apply that ended with all of it succeeded): the latest such time; None otherwise."""
    times = []
    for cid in sorted({c.customer for c in saved.actionable}):
        view = journal.get(cid)
        if view is None or view.completed is None:
            return None
        times.append(view.completed)
    return max(times) if times else None


def _scope(saved: Plan) -> dict[str, set[str] | None]:
    scope: dict[str, set[str] | None] = {}
    for c in saved.actionable:
        scope.setdefault(c.customer, set()).add(c.id)  # type: ignore[union-attr]
    return scope


def _limits(saved: Plan, desired: DesiredState, live: Mapping[str, LiveTenant]) -> list[Refusal]:
    out: list[Refusal] = []
    for cid in sorted({c.customer for c in saved.actionable}):
        tenant = live.get(cid)
        existing = existing_count(tenant) if tenant is not None else 0
        out.extend(safety_refusals(desired.customers[cid], existing, saved.actionable))
    return out


def recheck_saved(
    saved: Plan,
    desired: DesiredState,
    backend_for: BackendFactory,
    applied: AppliedState,
    journal: Mapping[str, JournalView],
) -> Recheck:
    """Verify a saved plan against a fresh plan of its resources: each change must be what
    planning its address now gives, one for one and operation for operation; the safety
    limits are worked out again from live counts. A plan the journal says was carried out in
    full is checked for what moved since instead. Raises on any read error (fail closed)."""
    applied_on = completed_on(saved, journal)
    if applied_on is not None:
        return _replayed(saved, desired, backend_for, applied, applied_on)
    # Unmanaged resources are only reported, never touched: their moving is no reason to refuse.
    actionable = saved.actionable
    overrides: dict[str, dict[str, Location]] = {}
    for c in actionable:
        if c.moved_from:
            overrides.setdefault(c.customer, {})[c.id] = parse_location(c.moved_from)
    result = plan_desired(desired, backend_for, customers=saved.customers, scope=_scope(saved),
                          previous_locations=applied.previous_locations(overrides))
    applied.mark_pending(result.plan)
    problems = _compare(actionable, result.plan.changes, journal)
    return Recheck(problems, _limits(saved, desired, result.live))


def _replayed(saved: Plan, desired: DesiredState, backend_for: BackendFactory,
              applied: AppliedState, applied_on: str) -> Recheck:
    """A completed plan applied again: current when a fresh plan of its resources (against
    the applied-state record, as `reconciler plan` would make it) has nothing to do."""
    result = plan_desired(desired, backend_for, customers=saved.customers, scope=_scope(saved),
                          previous_locations=applied.previous_locations())
    applied.mark_pending(result.plan)
    moved = [f"{c.address}: changed since it was applied (now needs {c.action})"
             for c in result.plan.actionable]
    return Recheck(moved, [], applied_on)


def _compare(actionable: list[Change], now: list[Change],
             journal: Mapping[str, JournalView]) -> list[str]:
    now_by = {c.address: c for c in now}
    saved_by = {c.address: c for c in actionable}
    problems: list[str] = []
    for address in sorted(set(now_by) | set(saved_by)):
        old, new = saved_by.get(address), now_by.get(address)
        view = journal.get((old or new).customer)  # type: ignore[union-attr]
        done = {i for (a, i) in (view.done if view else {}) if a == address}
        flying = {i for (a, i) in (view.in_flight if view else set()) if a == address}
        if old is not None and (done or flying):
            if not _remaining_ok(old, new, done, flying):
                problems.append(f"{address}: what remains to do differs from the plan")
            continue
        if old is None:
            problems.append(f"{address}: now needs a change the plan does not have "
                            f"({new.action})")  # type: ignore[union-attr]
        elif new is None:
            problems.append(f"{address}: no longer needs the planned {old.action} (live or "
                            f"desired state already changed, or the repository no longer "
                            f"declares it)")
        elif _comparable(old.to_dict()) != _comparable(new.to_dict()):
            problems.append(f"{address}: {_what_differs(old.to_dict(), new.to_dict())}")
    return problems
