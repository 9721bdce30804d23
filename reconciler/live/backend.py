"""The one interface every live backend implements: run an Exchange cmdlet.

The Exchange Online connector, the sandbox and the read-only snapshot all answer the same
cmdlets with the same shapes, so the reader, the planner and apply never know which they talk to.
Errors are typed by what they mean, not by transport, so callers can decide what is safe to retry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from reconciler.errors import ReconcilerError

call_log = logging.getLogger("reconciler.calls")


@dataclass(slots=True)
class CmdletResult:
    """What a cmdlet returned: its objects (every page drained) and Exchange's warnings."""

    value: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def describe_call(cmdlet: str, parameters: Mapping[str, Any] | None) -> str:
    """A call as a log line names it: the cmdlet and the object it is about, when one is."""
    identity = (parameters or {}).get("Identity")
    return f"{cmdlet} {identity}" if identity else cmdlet


def log_call(where: str, cmdlet: str, parameters: Mapping[str, Any] | None,
             result: CmdletResult, seconds: float) -> None:
    """Every call to a tenant, whatever the backend, at info level (``-v``)."""
    call_log.info("%s: %s: %d object%s in %.3fs", where, describe_call(cmdlet, parameters),
                  len(result.value), "" if len(result.value) == 1 else "s", seconds)


@runtime_checkable
class Backend(Protocol):
    """A connection to one tenant. A backend may also say how many calls can usefully run at
    once (``concurrency``); in-process backends say 1."""

    read_only: bool

    def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
    ) -> CmdletResult:
        """Run ``cmdlet`` with ``parameters``; ``select`` trims the returned properties."""
        ...

    def close(self) -> None:
        ...


class ExchangeError(ReconcilerError):
    """Exchange refused or failed a call. ``exception_type`` is Exchange's own name for it
    (e.g. ``ManagementObjectNotFoundException``) when known."""

    def __init__(
        self,
        message: str,
        *,
        cmdlet: str | None = None,
        exception_type: str | None = None,
        error_id: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.cmdlet = cmdlet
        self.exception_type = exception_type
        self.error_id = error_id
        self.status = status


class NotFound(ExchangeError):
    """The object does not exist (404, or 400 with ManagementObjectNotFoundException)."""


class AlreadyExists(ExchangeError):
    """The object or entry is already there (e.g. "is already a member of the group")."""


class NotPresent(ExchangeError):
    """The entry to remove is not there (e.g. "isn't a member of the group")."""


class BadParameter(ExchangeError):
    """A parameter name or value Exchange does not accept (400 naming it)."""


class Forbidden(ExchangeError):
    """RBAC denial or an unknown cmdlet (403)."""


class AuthenticationError(ExchangeError):
    """No token could be obtained; carries the identity provider's error and a hint."""


class Throttled(ExchangeError):
    """429 or a concurrency budget answer; ``retry_after`` in seconds when Exchange said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TransientError(ExchangeError):
    """5xx, timeout or dropped connection on a read: safe to retry."""


class AmbiguousWriteError(ExchangeError):
    """A write failed in a way that leaves unknown whether it committed (timeout, dropped
    connection, 5xx). Never replay it blindly: re-read to learn what happened."""


class ReadOnlyBackend(ExchangeError):
    """A write was sent to a read-only backend (a snapshot)."""


WRITE_VERBS = ("New-", "Set-", "Add-", "Remove-", "Enable-", "Disable-", "Update-", "Undo-")


def is_write(cmdlet: str) -> bool:
    return cmdlet.startswith(WRITE_VERBS)
