"""What apply remembers between runs, per customer: ``<repo>/.reconciler/state/<customer>.json``;
read by plan, apply and drift alike, so it lives below all three.

Two things a plan cannot learn from Exchange alone:

- **Applied locations.** A ``move`` has no operations, so nothing in the tenant records it. The
  location each resource was last applied at is kept here and given to the planner as the
  previous location, so the next plan does not show the same move again.
- **Writes not yet visible.** Exchange can take minutes to show a write. An operation that
  apply carried out but could not read back is recorded with its time; a plan made within the
  pending window (default 30 minutes, ``RECONCILER_PENDING_MINUTES``) that calls for the very
  same operation again shows it as pending propagation (a plan warning) instead of planning it
  twice. After the window it is planned normally: a write that never shows is drift.

Operations are recorded by fingerprint (a hash of cmdlet and parameters), never by value.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from reconciler.errors import ReconcilerError
from reconciler.live.atomic import write_snapshot_atomically
from reconciler.model import Location
from reconciler.words import plural

# What this record reads of a plan (reconciler.plan.plan's types have these), named here so that
# the record, which plan, apply and drift all read, depends on none of them.


class Operation(Protocol):
    cmdlet: str
    parameters: Mapping[str, Any]


class Change(Protocol):
    address: str
    action: str
    operations: tuple[Operation, ...]
    notes: tuple[str, ...]


class Plan(Protocol):
    changes: list[Any]
    warnings: list[str]


STATE_FORMAT = "reconciler-state/1"
STATE_DIRECTORY = Path(".reconciler") / "state"
DEFAULT_PENDING_MINUTES = 30.0
PENDING_ENV = "RECONCILER_PENDING_MINUTES"


def fingerprint(cmdlet: str, parameters: Mapping[str, Any]) -> str:
    """A stable identity for one operation that does not reveal its parameter values."""
    canonical = json.dumps({"cmdlet": cmdlet, "parameters": parameters}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def op_fingerprint(op: Operation) -> str:
    return fingerprint(op.cmdlet, dict(op.parameters))


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def pending_window(minutes: float | None = None) -> timedelta:
    if minutes is None:
        raw = os.environ.get(PENDING_ENV)
        try:
            minutes = float(raw) if raw else DEFAULT_PENDING_MINUTES
        except ValueError as e:
            raise ReconcilerError(f"{PENDING_ENV} must be a number of minutes, not {raw!r}") from e
    return timedelta(minutes=minutes)


def parse_location(text: str) -> Location:
    customer, _, site = text.partition("/")
    return Location(customer, site or "-")


@dataclass(frozen=True, slots=True)
class PendingOperation:
    """An operation apply carried out whose effect Exchange did not yet show."""

    address: str
    cmdlet: str
    fingerprint: str
    applied_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "cmdlet": self.cmdlet,
                "fingerprint": self.fingerprint, "applied_at": iso(self.applied_at)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingOperation:
        return cls(address=str(data["address"]), cmdlet=str(data["cmdlet"]),
                   fingerprint=str(data["fingerprint"]),
                   applied_at=parse_iso(str(data["applied_at"])))


@dataclass
class CustomerRecord:
    locations: dict[str, Location] = field(default_factory=dict)
    pending: list[PendingOperation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT,
                "locations": {rid: str(loc) for rid, loc in sorted(self.locations.items())},
                "pending": [p.to_dict() for p in sorted(
                    self.pending, key=lambda p: (p.address, p.applied_at, p.fingerprint))]}


def state_path(root: Path, customer: str) -> Path:
    return Path(root) / STATE_DIRECTORY / f"{customer}.json"


class AppliedState:
    """The applied-state record of a repository's customers."""

    def __init__(self, root: Path, records: dict[str, CustomerRecord] | None = None) -> None:
        self.root = Path(root)
        self.records: dict[str, CustomerRecord] = records or {}

    @classmethod
    def load(cls, root: Path, customers: Iterable[str]) -> AppliedState:
        """Read each customer's record; a missing file is an empty record. An unreadable one
        is an error: guessing would re-plan moves or writes that already happened."""
        state = cls(root)
        for cid in customers:
            path = state_path(root, cid)
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                state.records[cid] = CustomerRecord()
                continue
            except OSError as e:
                raise ReconcilerError(f"cannot read the applied-state record {path}: "
                                      f"{e.strerror}") from e
            try:
                data = json.loads(text)
                if data.get("format") != STATE_FORMAT:
                    raise ValueError(f"unknown format {data.get('format')!r}")
                state.records[cid] = CustomerRecord(
                    locations={rid: parse_location(str(loc))
                               for rid, loc in (data.get("locations") or {}).items()},
                    pending=[PendingOperation.from_dict(p) for p in data.get("pending") or ()])
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ReconcilerError(
                    f"the applied-state record {path} is damaged ({e}); move it aside to plan "
                    f"without it (moves and pending writes it remembers are then forgotten)"
                ) from e
        return state

    def record(self, customer: str) -> CustomerRecord:
        return self.records.setdefault(customer, CustomerRecord())

    def save(self, customer: str) -> None:
        path = state_path(self.root, customer)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Any JSON document, despite the name: replaced all or nothing, fsynced.
            write_snapshot_atomically(path, self.record(customer).to_dict())
        except OSError as e:
            raise ReconcilerError(f"cannot write the applied-state record {path}: "
                                  f"{e.strerror}") from e

    def previous_locations(
        self, overrides: Mapping[str, Mapping[str, Location]] | None = None,
    ) -> dict[str, dict[str, Location]]:
        """Locations to plan against: where each resource was last applied, except where
        ``overrides`` (e.g. ``--changed-since``'s base) say otherwise."""
        out = {cid: dict(rec.locations) for cid, rec in self.records.items()}
        for cid, locations in (overrides or {}).items():
            out.setdefault(cid, {}).update(locations)
        return out

    def mark_pending(self, plan: Plan, *, now: datetime | None = None,
                     window: timedelta | None = None) -> None:
        """Take out of ``plan`` the operations applied within the pending window that Exchange
        does not show yet, and say so in ``plan.warnings``. A change left with no operation is
        dropped; one left with some keeps them and gains a note. The plan stays
        schema-compatible: no new action, no new key."""
        now = now or now_utc()
        window = window if window is not None else pending_window()
        recent: dict[tuple[str, str], PendingOperation] = {}
        for rec in self.records.values():
            for p in rec.pending:
                if now - p.applied_at < window:
                    recent[(p.address, p.fingerprint)] = p
        if not recent:
            return
        kept: list[Change] = []
        for change in plan.changes:
            pending = [recent[(change.address, op_fingerprint(op))] for op in change.operations
                       if (change.address, op_fingerprint(op)) in recent]
            if not pending or change.action == "unmanaged":
                kept.append(change)
                continue
            hit = {p.fingerprint for p in pending}
            remaining = tuple(op for op in change.operations if op_fingerprint(op) not in hit)
            latest = max(p.applied_at for p in pending)
            text = (f"pending propagation: {plural(len(pending), 'operation')} applied at "
                    f"{iso(latest)} "
                    f"({', '.join(sorted({p.cmdlet for p in pending}))}) not yet visible in "
                    f"Exchange; not planned again before {iso(latest + window)}")
            plan.warnings.append(f"{change.address}: {text}")
            if remaining:
                kept.append(replace(change, operations=remaining,  # type: ignore[type-var]
                                    notes=(*change.notes, text)))
        plan.changes[:] = kept

    def set_locations(self, customer: str, locations: Mapping[str, Location | None]) -> None:
        """Remember where resources were applied (None: deleted, forgotten)."""
        rec = self.record(customer)
        for rid, loc in locations.items():
            if loc is None:
                rec.locations.pop(rid, None)
            else:
                rec.locations[rid] = loc

    def settle_pending(self, customer: str, *, visible: Collection[str],
                       pending: Iterable[PendingOperation], now: datetime | None = None,
                       window: timedelta | None = None) -> None:
        """After a verification: addresses seen converged lose their pending entries, new
        pending operations are added, and expired ones are dropped."""
        now = now or now_utc()
        window = window if window is not None else pending_window()
        rec = self.record(customer)
        fresh = {(p.address, p.fingerprint): p for p in pending}
        rec.pending = [p for p in rec.pending
                       if p.address not in visible and now - p.applied_at < window
                       and (p.address, p.fingerprint) not in fresh] + list(fresh.values())
