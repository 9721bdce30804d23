"""Moved: the applied-state record is :mod:`reconciler.live.applied` (plan, apply and drift all
read it). These names stay importable from here."""

from reconciler.live.applied import (
    AppliedState,
    PendingOperation,
    fingerprint,
    iso,
    now_utc,
    op_fingerprint,
    parse_iso,
    pending_window,
    state_path,
)

__all__ = ["AppliedState", "PendingOperation", "fingerprint", "iso", "now_utc",
           "op_fingerprint", "parse_iso", "pending_window", "state_path"]
