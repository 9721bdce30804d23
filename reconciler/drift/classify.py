"""Make a drift report: plan the main branch's desired state against live state, then tell
each difference's cause apart using the record of the last apply.

The rule, per resource and per setting: if the YAML of that setting differs between the
applied ref and PATH, the difference is *not yet applied*; if it is the same, live must have
changed behind git's back (*changed outside git*). A resource declared nowhere is *unmanaged*;
a write apply carried out within its pending window and not yet visible is *pending
propagation*. A change whose settings fall in both classes is split in two, so each part shows
exactly its own attribute-level difference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.desired.cache import ParseCache
from reconciler.drift.forwarding import forwarding_findings
from reconciler.drift.record import (
    AppliedRecord,
    PendingRecord,
    applied_records,
    operation_fingerprint,
    pending_records,
)
from reconciler.drift.report import (
    CHANGED_OUTSIDE_GIT,
    NOT_YET_APPLIED,
    PENDING_PROPAGATION,
    SECURITY_FINDING,
    UNMANAGED,
    DriftItem,
    DriftReport,
)
from reconciler.model import CustomerState, DesiredState, Location, Resource
from reconciler.plan.plan import Change
from reconciler.plan.planner import (
    BackendFactory,
    PlanResult,
    ProgressCallback,
    plan_desired,
    select_customers,
)
from reconciler.plan.serialize import settings_json
from reconciler.words import plural

# The plan names the location setting "location"; the model calls it located_at.
_MODEL_FIELD = {"location": "located_at"}


def drift_desired(desired: DesiredState, backend_for: BackendFactory, *,
                  root: Path, customers: Collection[str] | None = None,
                  applied_ref: str | None = None, now: datetime | None = None,
                  progress: ProgressCallback | None = None,
                  cache: ParseCache | None = None) -> DriftReport:
    """The drift report of ``desired`` (loaded from ``root``) against each customer's tenant."""
    selected = select_customers(desired, customers)
    records = applied_records(root, desired, selected, applied_ref, cache=cache)
    pending = pending_records(root, selected, now=now)
    previous = _previous_locations(desired, records, pending)
    result = plan_desired(desired, backend_for, customers=selected,
                          previous_locations=previous, progress=progress)
    report = DriftReport(customers=selected, records=records,
                         warnings=list(result.plan.warnings))
    for cid, record in records.items():
        if record.note:
            report.warnings.append(f"{cid}: {record.note}")
    for change in result.plan.changes:
        record = records[change.customer]
        current = desired.customers[change.customer]
        items = classify(change, record, current, pending.get(change.customer))
        report.items.extend(items)  # sources are relative to the repository already
    for cid in selected:
        report.items += [DriftItem(SECURITY_FINDING, change)
                         for change in _findings(desired, cid, backend_for, result, root)]
    report.sort()
    return report


def _findings(desired: DesiredState, cid: str, backend_for: BackendFactory,
              result: PlanResult, root: Path) -> list[Change]:
    live = result.live.get(cid)
    if live is None:
        return []
    state = desired.customers[cid]
    backend = backend_for(state)
    try:
        return forwarding_findings(state, backend, live.directory, str(root))
    finally:
        backend.close()


def make_drift_report(root: str | Path, *, live_source: str | None = None,
                      customers: Collection[str] | None = None,
                      applied_ref: str | None = None,
                      progress: ProgressCallback | None = None,
                      use_cache: bool = False) -> DriftReport:
    """Load the repository at ``root`` and report its drift against each customer's source;
    ``use_cache``: through the repository's parse cache, here and at the applied ref."""
    from reconciler.desired import load
    from reconciler.sources.backends import open_backend

    root = Path(root)
    cache = ParseCache.of_repository(root) if use_cache else None
    desired = load(root, cache=cache)
    return drift_desired(desired, lambda state: open_backend(live_source, state.customer, root),
                         root=root, customers=customers, applied_ref=applied_ref,
                         progress=progress, cache=cache)


def _previous_locations(desired: DesiredState, records: Mapping[str, AppliedRecord],
                        pending: Mapping[str, PendingRecord],
                        ) -> dict[str, dict[str, Location]]:
    """Where each resource is live: where apply recorded it, else where the applied ref
    declared it. Without this a YAML move not yet applied would not show at all."""
    out: dict[str, dict[str, Location]] = {}
    for cid, record in records.items():
        locations: dict[str, Location] = {}
        if record.state is not None:
            current = desired.customers[cid].resources
            for rid, old in record.state.resources.items():
                new = current.get(rid)
                # Removed from YAML since: still where it was applied, until apply removes it.
                if new is None or new.located_at != old.located_at:
                    locations[rid] = old.located_at
        if cid in pending:
            locations.update(pending[cid].locations)
        out[cid] = locations
    return out


def classify(change: Change, record: AppliedRecord, current: CustomerState,
             pending: PendingRecord | None) -> list[DriftItem]:
    """The drift item(s) one plan change is."""
    applied = record.state
    if change.action == "unmanaged":
        return [DriftItem(UNMANAGED, change)]
    if change.action == "delete":
        # Only policy prune: true plans deletes; declared at the applied ref means the YAML
        # entry was removed since, otherwise nobody ever declared it.
        if applied is not None and change.id in applied.resources:
            return [DriftItem(NOT_YET_APPLIED, change)]
        return [DriftItem(UNMANAGED, _noted(change, "policy prune: true: the next apply "
                                                    "deletes it"))]
    change, pending_item = _split_pending(change, pending)
    items = [pending_item] if pending_item is not None else []
    if change is None:
        return items
    if applied is None:
        return [*items, DriftItem(CHANGED_OUTSIDE_GIT, _noted(
            change, "no record of the last apply: this may also be YAML not yet applied"))]
    old = applied.resources.get(change.id)
    new = current.resources.get(change.id)
    if old is None or new is None:
        return [*items, DriftItem(NOT_YET_APPLIED, change)]
    if change.action == "create":
        if old != new:
            return [*items, DriftItem(NOT_YET_APPLIED, change)]
        return [*items, DriftItem(CHANGED_OUTSIDE_GIT, _noted(
            change, "declared when last applied, but missing live: deleted outside git?"))]
    moved_in_yaml = old.located_at != new.located_at
    if change.action == "move":
        return [*items, DriftItem(NOT_YET_APPLIED if moved_in_yaml else CHANGED_OUTSIDE_GIT,
                                  change)]
    return [*items, *_split_update(change, old, new, moved_in_yaml)]


# Settings made of elements (grants by user, owners, members, attributes by number): a YAML
# edit to one element says nothing about another, so they are classified element by element.
ELEMENT_KEYS = frozenset({"permissions", "calendar_permissions", "owners", "members",
                          "custom_attributes"})

_Part = dict[str, tuple[Any, Any]]  # setting -> (live value, YAML value)


def _split_update(change: Change, old: Resource, new: Resource,
                  moved_in_yaml: bool) -> list[DriftItem]:
    before, after = change.before or {}, change.after or {}
    yaml_part: _Part = {}
    outside_part: _Part = {}
    for key in change.changed_keys:
        live, wanted = before.get(key), after.get(key)
        if _setting(old, key) == _setting(new, key):
            outside_part[key] = (live, wanted)
            continue
        split = _split_elements(key, live, wanted, settings_json(old, [key]).get(key))
        if split is None:
            yaml_part[key] = (live, wanted)
            continue
        in_yaml, outside = split
        if in_yaml is not None:
            yaml_part[key] = in_yaml
        if outside is not None:
            outside_part[key] = outside
    moved = change.moved_from is not None
    groups = [(drift_class, part, with_move) for drift_class, part, with_move in (
        (NOT_YET_APPLIED, yaml_part, moved and moved_in_yaml),
        (CHANGED_OUTSIDE_GIT, outside_part, moved and not moved_in_yaml)) if part or with_move]
    if len(groups) < 2:  # one class covers every changed setting: the change as planned
        return [DriftItem(groups[0][0] if groups else CHANGED_OUTSIDE_GIT, change)]
    return [DriftItem(c, _restricted(change, part, with_move)) for c, part, with_move in groups]


def _restricted(change: Change, part: _Part, with_move: bool) -> Change:
    """The part of an update that concerns ``part`` (and the move, if ``with_move``). Its
    operations are left out: one call may serve settings of both parts."""
    return dataclasses.replace(
        change, action="update" if part else "move",
        before={k: live for k, (live, _) in part.items()},
        after={k: wanted for k, (_, wanted) in part.items()}, operations=(),
        moved_from=change.moved_from if with_move else None)


def _elements(key: str, value: Any) -> dict[str, Any] | None:
    """A setting's elements by their key; None when it is not made of elements."""
    if value is None or value == "none":
        return {}
    if key in ("permissions", "calendar_permissions") and isinstance(value, list):
        if not all(isinstance(i, dict) and "user" in i for i in value):
            return None
        return {_principal_key(str(i["user"])): i for i in value}
    if key in ("owners", "members") and isinstance(value, list):
        return {_principal_key(str(v)): v for v in value}
    if key == "custom_attributes" and isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    return None


def _principal_key(principal: str) -> str:
    return principal if principal in ("Default", "Anonymous") else principal.lower()


def _body(element: Any) -> Any:
    """What an element grants, whoever it names (the YAML may spell the name differently)."""
    if isinstance(element, dict):
        return {k: v for k, v in element.items() if k != "user"}
    return element if not isinstance(element, str) else True


def _split_elements(key: str, live: Any, wanted: Any, applied: Any,
                    ) -> tuple[tuple[Any, Any] | None, tuple[Any, Any] | None] | None:
    """(the YAML-changed part, the changed-outside part) of one setting, each as (live, YAML)
    values restricted to its elements; None when the setting has no elements."""
    have, want, was = _elements(key, live), _elements(key, wanted), _elements(key, applied)
    if have is None or want is None or was is None:
        return None
    differing = {e for e in set(have) | set(want)
                 if (e in have) != (e in want) or _body(have.get(e)) != _body(want.get(e))}
    in_yaml = {e for e in differing
               if (e in was) != (e in want) or _body(was.get(e)) != _body(want.get(e))}

    def part(elements: set[str]) -> tuple[Any, Any] | None:
        if not elements:
            return None
        if key == "custom_attributes":
            return ({e: have[e] for e in sorted(elements) if e in have},
                    {e: want[e] for e in sorted(elements) if e in want})
        return ([have[e] for e in sorted(elements) if e in have],
                [want[e] for e in sorted(elements) if e in want])

    return part(in_yaml), part(differing - in_yaml)


def _setting(resource: Resource, key: str) -> Any:
    return getattr(resource, _MODEL_FIELD.get(key, key), None)


def _split_pending(change: Change, pending: PendingRecord | None,
                   ) -> tuple[Change | None, DriftItem | None]:
    """Take out the operations apply already carried out and Exchange does not show yet.
    Returns what is left of the change (None: nothing) and the pending part."""
    if pending is None or not pending.pending or not change.operations:
        return change, None
    hits = []
    for op in change.operations:
        fp = operation_fingerprint(op.cmdlet, dict(op.parameters))
        if fp is not None and (change.address, fp) in pending.pending:
            hits.append((op, pending.pending[(change.address, fp)]))
    if not hits:
        return change, None
    latest = max(at for _, at in hits).strftime("%Y-%m-%dT%H:%M:%SZ")
    note = (f"{plural(len(hits), 'operation')} applied at {latest} "
            f"({', '.join(sorted({op.cmdlet for op, _ in hits}))}) not yet visible in Exchange")
    hit_ops = tuple(op for op, _ in hits)
    if len(hits) == len(change.operations):
        return None, DriftItem(PENDING_PROPAGATION, _noted(change, note))
    rest = tuple(op for op in change.operations if op not in hit_ops)
    pending_part = dataclasses.replace(change, operations=hit_ops, notes=(*change.notes, note))
    return dataclasses.replace(change, operations=rest), DriftItem(PENDING_PROPAGATION,
                                                                   pending_part)


def _noted(change: Change, note: str) -> Change:
    return dataclasses.replace(change, notes=(*change.notes, note))

