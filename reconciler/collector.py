"""How Python's cyclic garbage collector runs during one command.

A plan builds a few large structures that live until the command ends and hold no garbage
cycles worth finding: the desired state, the tenant as read, the emulator of a snapshot. The
collector would rescan all of them again and again as new objects are made (13% of a plan of
10,000 mailboxes, a third at 50,000). So for the length of one command:

- ``pause`` (the default): the collector does not run while the command builds and compares
  those structures; a phase that may run for long and makes garbage as it goes (apply carrying
  out its operations, a server answering requests) runs with it again (:func:`resumed`), all
  that was built before frozen out of its scans;
- ``freeze``: once such a structure is built (:func:`settled`), everything alive moves to the
  collector's permanent generation, which it no longer scans; objects made later are still
  collected (at 50,000 mailboxes the tenant being read is rescanned as it grows: a plan takes
  half as long again as with ``pause``);
- ``normal``: Python's own behaviour.

``RECONCILER_GC`` chooses (``bench/bench_plan.py`` measures each); outside a command
(:func:`whole_run`) nothing changes, so library callers and tests keep Python's behaviour.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

POLICIES = ("pause", "freeze", "normal")
VARIABLE = "RECONCILER_GC"

_active: str | None = None  # the policy of the command running, None outside one


def policy() -> str:
    """The policy ``RECONCILER_GC`` names, ``pause`` when unset or unknown."""
    chosen = os.environ.get(VARIABLE, "").strip().lower()
    return chosen if chosen in POLICIES else POLICIES[0]


@contextmanager
def whole_run() -> Iterator[None]:
    """Apply the policy for the length of one command; restore the collector afterwards."""
    global _active
    if _active is not None:  # nested: the outer command decides
        yield
        return
    _active = policy()
    enabled = gc.isenabled()
    if _active == "pause":
        gc.disable()
    try:
        yield
    finally:
        if _active != "normal":
            gc.unfreeze()
        _active = None
        if enabled:
            gc.enable()


def settled() -> None:
    """A large structure that lives until the command ends is built: stop rescanning it."""
    if _active == "freeze":
        gc.freeze()


@contextmanager
def resumed() -> Iterator[None]:
    """A long phase that makes garbage as it goes: under ``pause``, the collector runs again
    for its length, with everything built so far frozen out of its scans."""
    if _active != "pause":
        yield
        return
    gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        gc.disable()
