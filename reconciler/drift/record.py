"""The record of what was last applied, per customer: a git ref, and apply's state file.

CI moves the ref ``refs/tags/reconciler/applied/<customer>`` to the commit it applied after a
successful apply (docs/drift.md gives the commands). The desired state at that ref is what the
tenant should look like if nobody touched it since; comparing it with the desired state of the
main branch tells "YAML changed since the last apply" from "Exchange changed behind git's back".

Apply's own record (``<repo>/.reconciler/state/<customer>.json``) adds two things when it is
present: where each resource was last applied, and writes carried out but not yet visible.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from reconciler.desired.cache import ParseCache
from reconciler.errors import ReconcilerError
from reconciler.model import CustomerState, DesiredState, Location

DEFAULT_APPLIED_REF = "refs/tags/reconciler/applied/{customer}"


@dataclass
class AppliedRecord:
    """What is known of one customer's last apply. ``state`` is None when there is no usable
    record; ``note`` then says why."""

    customer: str
    ref: str
    commit: str | None = None
    state: CustomerState | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"customer": self.customer, "ref": self.ref, "commit": self.commit,
                "note": self.note}


@dataclass
class PendingRecord:
    """Apply's record of one customer: applied locations, and recent writes not yet visible
    as ``(address, operation fingerprint) -> applied at``."""

    locations: dict[str, Location] = field(default_factory=dict)
    pending: dict[tuple[str, str], datetime] = field(default_factory=dict)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=False)
    except FileNotFoundError as e:
        raise ReconcilerError("drift needs git to read the record of the last apply, and git "
                              "is not installed") from e


def resolve_commit(root: Path, ref: str) -> str | None:
    """The commit ``ref`` names in the repository holding ``root``; None if it names none."""
    done = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return done.stdout.strip() or None if done.returncode == 0 else None


def in_git(root: Path) -> bool:
    done = _git(root, "rev-parse", "--show-toplevel")
    return done.returncode == 0


def applied_records(root: Path, desired: DesiredState, customers: Iterable[str],
                    ref_pattern: str | None, *,
                    cache: ParseCache | None = None) -> dict[str, AppliedRecord]:
    """The applied record of each customer. ``ref_pattern`` may contain ``{customer}``; when
    the user gave it explicitly and it names no commit, that is an error, while a missing
    default ref only means "no record yet"."""
    from reconciler.plan.scope import load_at_ref

    explicit = ref_pattern is not None
    pattern = ref_pattern if explicit else DEFAULT_APPLIED_REF
    git_ok = in_git(root)
    loaded: dict[str, DesiredState | None] = {}
    out: dict[str, AppliedRecord] = {}
    for cid in customers:
        ref = pattern.replace("{customer}", cid)
        record = AppliedRecord(cid, ref)
        out[cid] = record
        if not git_ok:
            if explicit:
                raise ReconcilerError(f"--applied-ref {ref}: {root} is not in a git repository")
            record.note = (f"no record of the last apply: {root} is not in a git repository, so "
                           f"every difference is shown as changed outside git")
            continue
        commit = resolve_commit(root, ref)
        if commit is None:
            if explicit:
                raise ReconcilerError(f"--applied-ref {ref} names no commit in this repository")
            record.note = (f"no record of the last apply: {ref} does not exist (CI creates it "
                           f"after a successful apply); every difference is shown as changed "
                           f"outside git, though some may be YAML not yet applied")
            continue
        record.commit = commit
        if commit not in loaded:
            loaded[commit] = load_at_ref(root, commit, cache=cache)
        base = loaded[commit]
        if base is None:
            record.note = (f"the desired state at {ref} ({commit[:12]}) cannot be loaded (the "
                           f"folder did not exist there, or its YAML was invalid); every "
                           f"difference is shown as changed outside git")
            record.commit = commit
            continue
        # A customer added to the repository after the commit applied has nothing applied.
        record.state = base.customers.get(cid) or CustomerState(desired.customers[cid].customer)
    return out


def pending_records(root: Path, customers: Iterable[str],
                    now: datetime | None = None) -> dict[str, PendingRecord]:
    """Apply's record per customer, when apply is installed and has written one. Only writes
    within apply's pending window count: after it, a write that never showed is drift."""
    try:
        from reconciler.live import applied as apply_state
    except ImportError:
        return {}
    customers = list(customers)
    recorded = apply_state.AppliedState.load(root, customers)
    now = now or apply_state.now_utc()
    window = apply_state.pending_window()
    out: dict[str, PendingRecord] = {}
    for cid in customers:
        rec = recorded.records.get(cid)
        if rec is None:
            continue
        pending = {(p.address, p.fingerprint): p.applied_at for p in rec.pending
                   if now - p.applied_at < window}
        out[cid] = PendingRecord(locations=dict(rec.locations), pending=pending)
    return out


def operation_fingerprint(cmdlet: str, parameters: Mapping[str, object]) -> str | None:
    """Apply's fingerprint of one operation (None when apply is not installed)."""
    try:
        from reconciler.live.applied import fingerprint
    except ImportError:
        return None
    return fingerprint(cmdlet, parameters)
