"""The one interface every live backend implements: run an Exchange cmdlet.

The Exchange Online connector, the sandbox and the read-only snapshot all answer the same
cmdlets with the same shapes, so the reader, the planner and apply never know which they talk to.
Errors are typed by what they mean, not by transport, so callers can decide what is safe to retry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
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
    if not call_log.isEnabledFor(logging.INFO):  # a plan of 10,000 mailboxes makes 30,000
        return
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


class ErrorKind(StrEnum):
    """What an error means to the caller, whichever class carries it."""

    NOT_FOUND = "not_found"  # the object does not exist
    ALREADY_EXISTS = "already_exists"  # the object, entry or address is already there
    NOT_PRESENT = "not_present"  # the entry to remove is not there
    BAD_PARAMETER = "bad_parameter"  # a parameter Exchange does not accept
    FORBIDDEN = "forbidden"  # RBAC denial, unknown cmdlet
    AUTHENTICATION = "authentication"  # no token, or a token Exchange refuses
    THROTTLED = "throttled"  # refused before processing: waiting and retrying is safe
    TRANSIENT = "transient"  # Exchange or the way to it failed for now (retried for reads)
    AMBIGUOUS = "ambiguous"  # a write that may or may not have committed
    FAILED = "failed"  # any other refusal: permanent, not retried

    @property
    def retryable(self) -> bool:
        return self in (ErrorKind.THROTTLED, ErrorKind.TRANSIENT)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as the service worded it: its kind, Exchange's exception type (the last dotted
    component, e.g. ``ManagementObjectNotFoundException``; for a proxied cmdlet the inner
    exception, not the proxy's wrapper), the message, and the HTTP status it came with."""

    kind: ErrorKind
    exception_type: str | None = None
    message: str = ""
    status: int | None = None
    error_id: str | None = None


class ExchangeError(ReconcilerError):
    """Exchange refused or failed a call. ``exception_type`` is Exchange's own name for it
    (e.g. ``ManagementObjectNotFoundException``) when known; ``info`` is the typed summary."""

    kind = ErrorKind.FAILED

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

    @property
    def info(self) -> ErrorInfo:
        return ErrorInfo(self.kind, self.exception_type, self.message, self.status,
                         self.error_id)


class NotFound(ExchangeError):
    """The object does not exist (404, or 400 with ManagementObjectNotFoundException)."""

    kind = ErrorKind.NOT_FOUND


class AlreadyExists(ExchangeError):
    """The object or entry is already there (e.g. "is already a member of the group")."""

    kind = ErrorKind.ALREADY_EXISTS


class NotPresent(ExchangeError):
    """The entry to remove is not there (e.g. "isn't a member of the group")."""

    kind = ErrorKind.NOT_PRESENT


class BadParameter(ExchangeError):
    """A parameter name or value Exchange does not accept (400 naming it)."""

    kind = ErrorKind.BAD_PARAMETER


class Forbidden(ExchangeError):
    """RBAC denial or an unknown cmdlet (403)."""

    kind = ErrorKind.FORBIDDEN


class AuthenticationError(ExchangeError):
    """No token could be obtained; carries the identity provider's error and a hint."""

    kind = ErrorKind.AUTHENTICATION


class Throttled(ExchangeError):
    """429 or a concurrency budget answer; ``retry_after`` in seconds when Exchange said."""

    kind = ErrorKind.THROTTLED

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TransientError(ExchangeError):
    """5xx, timeout, dropped connection, an unreadable answer, or an exception type Exchange
    uses for a passing condition (ADTransientException, ...): safe to retry a read."""

    kind = ErrorKind.TRANSIENT


class AmbiguousWriteError(ExchangeError):
    """A write failed in a way that leaves unknown whether it committed (timeout, dropped
    connection, 5xx). Never replay it blindly: re-read to learn what happened."""

    kind = ErrorKind.AMBIGUOUS


class UnreadableAnswer(TransientError):
    """A 200 whose body does not prove a read: empty, not JSON, corrupt gzip, cut short, no
    ``value``, or pages that never end. Never read as "no objects"."""


class ReadOnlyBackend(ExchangeError):
    """A write was sent to a read-only backend (a snapshot)."""


WRITE_VERBS = ("New-", "Set-", "Add-", "Remove-", "Enable-", "Disable-", "Update-", "Undo-")


def is_write(cmdlet: str) -> bool:
    return cmdlet.startswith(WRITE_VERBS)
