"""A drift report: every difference between live state and the desired state, classified.

Each item is a plan :class:`~reconciler.plan.plan.Change` (so every renderer's attribute-level
difference applies unchanged) with the class of the difference:

- ``changed_outside_git``: live differs from what was last applied, and that YAML has not
  changed since: someone changed Exchange behind git's back.
- ``not_yet_applied``: the YAML differs from what was last applied; the next apply does it.
- ``pending_propagation``: apply carried it out recently and Exchange does not show it yet.
- ``unmanaged``: exists live, declared nowhere.
- ``security_finding``: a mailbox of the tenant forwards mail outside the customer's domains
  and ``allowed_forwarding_domains``, whether or not its forwarding is managed here.

Pending propagation is reported but is not drift: it resolves itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from reconciler.drift.record import AppliedRecord
from reconciler.plan.plan import Change
from reconciler.safe import json_text
from reconciler.words import plural

FORMAT_VERSION = "1.0"
REPORT_KIND = "reconciler-drift"

CHANGED_OUTSIDE_GIT = "changed_outside_git"
NOT_YET_APPLIED = "not_yet_applied"
PENDING_PROPAGATION = "pending_propagation"
UNMANAGED = "unmanaged"
SECURITY_FINDING = "security_finding"
CLASSES = (SECURITY_FINDING, CHANGED_OUTSIDE_GIT, NOT_YET_APPLIED, PENDING_PROPAGATION, UNMANAGED)
LABELS = {
    CHANGED_OUTSIDE_GIT: "changed outside git",
    NOT_YET_APPLIED: "not yet applied",
    PENDING_PROPAGATION: "pending propagation",
    UNMANAGED: "unmanaged",
    SECURITY_FINDING: "security finding",
}
EXPLANATIONS = {
    CHANGED_OUTSIDE_GIT: "live differs from what was last applied",
    NOT_YET_APPLIED: "the YAML changed since the last apply",
    PENDING_PROPAGATION: "applied, not yet visible in Exchange",
    UNMANAGED: "exists live, declared nowhere",
    SECURITY_FINDING: "forwards mail outside the customer's domains and "
                      "allowed_forwarding_domains, managed here or not",
}

ADVICE = {
    SECURITY_FINDING: "if nobody meant it, remove the forwarding in Exchange (or declare "
                      "forwarding: none); if it is meant, add the domain to the policy's "
                      "allowed_forwarding_domains",
    CHANGED_OUTSIDE_GIT: "put the change in YAML to keep it, or let the next apply revert it",
    NOT_YET_APPLIED: "nothing: the next apply does it (or find out why it has not run)",
    PENDING_PROPAGATION: "nothing: Exchange shows it within apply's pending window",
    UNMANAGED: "reconciler import it to manage it, or delete it with policy prune: true",
}


@dataclass(frozen=True, slots=True)
class DriftItem:
    drift_class: str
    change: Change

    @property
    def is_drift(self) -> bool:
        return self.drift_class != PENDING_PROPAGATION

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.drift_class, **self.change.to_dict()}


@dataclass
class DriftReport:
    customers: list[str] = field(default_factory=list)
    records: dict[str, AppliedRecord] = field(default_factory=dict)
    items: list[DriftItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def sort(self) -> None:
        order = {c: i for i, c in enumerate(CLASSES)}
        self.items.sort(key=lambda i: (i.change.customer, i.change.site, i.change.address,
                                       order[i.drift_class]))

    @property
    def has_drift(self) -> bool:
        return any(item.is_drift for item in self.items)

    @property
    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(CLASSES, 0)
        for item in self.items:
            counts[item.drift_class] += 1
        return counts

    def by_site(self) -> Iterator[tuple[tuple[str, str], list[DriftItem]]]:
        """Items grouped by (customer, site), in address order."""
        ordered = sorted(self.items, key=lambda i: (i.change.customer, i.change.site,
                                                    i.change.address))
        for key, items in groupby(ordered, key=lambda i: (i.change.customer, i.change.site)):
            yield key, list(items)

    def site_summary(self) -> list[dict[str, Any]]:
        """Counts per customer and site; every customer appears, clean ones with zeros."""
        rows: dict[tuple[str, str], dict[str, int]] = {}
        for cid in self.customers:
            if not any(i.change.customer == cid for i in self.items):
                rows[(cid, "-")] = dict.fromkeys(CLASSES, 0)
        for (cid, site), items in self.by_site():
            counts = dict.fromkeys(CLASSES, 0)
            for item in items:
                counts[item.drift_class] += 1
            rows[(cid, site)] = counts
        return [{"customer": c, "site": s, **counts} for (c, s), counts in sorted(rows.items())]

    def summary_line(self) -> str:
        s = self.summary
        total = sum(s.values())
        if not self.items:
            return "No drift: the live mailboxes match the desired state."
        if not self.has_drift:
            return (f"No drift: {total} difference{'s' if total != 1 else ''} applied and not "
                    f"yet visible in Exchange (pending propagation).")
        parts = ", ".join(plural(s[c], LABELS[c]) if c == SECURITY_FINDING
                          else f"{s[c]} {LABELS[c]}" for c in CLASSES)
        return f"Drift: {total} difference{'s' if total != 1 else ''} ({parts})."

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "kind": REPORT_KIND,
            "customers": sorted(self.customers),
            "drift": self.has_drift,
            "summary": self.summary,
            "sites": self.site_summary(),
            "records": [self.records[c].to_dict() for c in sorted(self.records)],
            "items": [i.to_dict() for i in self.items],
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        return json_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False)) + "\n"
