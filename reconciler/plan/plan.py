"""The Plan: a first-class, versioned, deterministic object (docs/format.md §8).

It counts its changes, checks the safety limits, serialises to JSON byte-identically for the same
inputs, and carries a checksum over its changes; each change's ``before`` is the live state it
was planned against, so the checksum covers that too and apply can refuse a stale plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.safe import json_text

FORMAT_VERSION = "1.0"
SUPPORTED_MAJOR = 1
ACTIONS = ("create", "update", "delete", "move", "unmanaged")


@dataclass(frozen=True, slots=True)
class Operation:
    """One Exchange cmdlet call, exactly as apply will make it."""

    cmdlet: str
    parameters: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"cmdlet": self.cmdlet, "parameters": dict(self.parameters)}


@dataclass(frozen=True, slots=True)
class Change:
    customer: str
    site: str
    type: str
    id: str
    action: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    operations: tuple[Operation, ...] = ()
    moved_from: str | None = None
    notes: tuple[str, ...] = ()
    source: str | None = None  # file:line of the declaring entry

    @property
    def address(self) -> str:
        return f"{self.customer}/{self.site}/{self.type}/{self.id}"

    @property
    def changed_keys(self) -> list[str]:
        """Settings whose values differ between before and after."""
        before, after = self.before or {}, self.after or {}
        return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.address,
            "customer": self.customer,
            "site": self.site,
            "type": self.type,
            "id": self.id,
            "action": self.action,
            "before": self.before,
            "after": self.after,
            "operations": [op.to_dict() for op in self.operations],
        }
        if self.moved_from is not None:
            out["moved_from"] = self.moved_from
        if self.notes:
            out["notes"] = list(self.notes)
        if self.source is not None:
            out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(
            customer=data["customer"], site=data["site"], type=data["type"], id=data["id"],
            action=data["action"], before=data.get("before"), after=data.get("after"),
            operations=tuple(Operation(o["cmdlet"], o.get("parameters") or {})
                             for o in data.get("operations") or ()),
            moved_from=data.get("moved_from"), notes=tuple(data.get("notes") or ()),
            source=data.get("source"))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A safety limit the plan exceeds (docs/format.md §7)."""

    customer: str
    message: str


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    # Per customer, the last plan the journal says was carried out in full before this one
    # was made. Two plans with the same changes, one made before an apply and one after it
    # (live was put back by hand meanwhile), are then different plans: replaying the first
    # is answered from the journal, the second is applied.
    basis: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.changes.sort(key=lambda c: c.address)

    @property
    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(ACTIONS, 0)
        for change in self.changes:
            counts[change.action] += 1
        return counts

    @property
    def actionable(self) -> list[Change]:
        """Changes apply would carry out (unmanaged ones are only reported)."""
        return [c for c in self.changes if c.action != "unmanaged"]

    @property
    def has_changes(self) -> bool:
        return bool(self.actionable)

    @property
    def operation_count(self) -> int:
        return sum(len(c.operations) for c in self.changes)

    @property
    def checksum(self) -> str:
        return checksum_of(FORMAT_VERSION, [c.to_dict() for c in self.changes], self.basis)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "customers": sorted(self.customers),
            "summary": self.summary,
            "changes": [c.to_dict() for c in self.changes],
            "warnings": list(self.warnings),
            "refusals": [{"customer": r.customer, "message": r.message} for r in self.refusals],
        }
        if self.basis:
            out["basis"] = dict(sorted(self.basis.items()))
        out["checksum"] = self.checksum
        return out

    def to_json(self) -> str:
        # Escaped where a terminal would obey a character: the same data, safe to print.
        return json_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False)) + "\n"


def checksum_of(format_version: str, changes: Iterable[Mapping[str, Any]],
                basis: Mapping[str, str] | None = None) -> str:
    """sha256 over the format version, the changes and (when there is one) the basis."""
    covered: dict[str, Any] = {"format_version": format_version, "changes": list(changes)}
    if basis:
        covered["basis"] = dict(basis)
    canonical = json.dumps(covered, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
