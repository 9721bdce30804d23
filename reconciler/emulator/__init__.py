"""An in-process Exchange Online: the cmdlets the reconciler uses, over a tenant snapshot.

One emulator serves three uses (docs/design.md): the ``sandbox`` backend (persisted to a file), the
read-only ``snapshot`` backend, and the fake Exchange Online HTTP service the tests talk to.

Public API:

- :class:`Emulator` — ``Emulator(snapshot, *, lag_seconds=0.0, clock=time.monotonic)``;
  ``invoke(cmdlet, parameters=None, select=None) -> CmdletResult``; ``to_snapshot()``;
  ``calls`` (a Counter of invocations per cmdlet); ``tenant_id``; thread-safe.
- :func:`check_call` — reject what the official cmdlet reference would reject.
- :func:`load_snapshot` / :func:`validate_snapshot` — read and check a snapshot file
  (docs/format.md §9, ``schemas/snapshot.schema.json``); :class:`SnapshotError` on a bad one.
"""

# The handlers register themselves in reconciler.emulator.handlers when imported.
from reconciler.emulator import calendars as _calendars  # noqa: F401
from reconciler.emulator import cmdlets as _cmdlets  # noqa: F401
from reconciler.emulator.reference import check_call
from reconciler.emulator.tenant import Emulator
from reconciler.live.snapshot_format import (
    SNAPSHOT_FORMAT,
    SnapshotError,
    load_snapshot,
    validate_snapshot,
)

__all__ = [
    "SNAPSHOT_FORMAT",
    "Emulator",
    "SnapshotError",
    "check_call",
    "load_snapshot",
    "validate_snapshot",
]
