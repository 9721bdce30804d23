"""The emulator's table of cmdlet handlers, in a module of its own so that the tenant (which
looks handlers up) and the handler modules (which register themselves and use the tenant) do
not import each other: ``cmdlets`` and ``calendars`` import this and ``tenant``; the package
imports them once, which fills the table.

The table: canonical cmdlet name -> (function, supported parameters in lower case, the same
names in the reference's own spelling). A read-only tenant answers a call spelled as the
reference spells it without checking it against the reference again.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.live.backend import CmdletResult

Handler = Callable[..., CmdletResult]

HANDLERS: dict[str, tuple[Handler, frozenset[str], frozenset[str]]] = {}


def handler(cmdlet: str, *supported: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the emulation of ``cmdlet``, accepting ``supported`` parameters
    (and the ignorable ones)."""
    def register(fn: Handler) -> Handler:
        HANDLERS[cmdlet] = (fn, frozenset(s.lower() for s in supported), frozenset(supported))
        return fn
    return register


__all__ = ["HANDLERS", "Handler", "handler"]
