"""A seeded schedule of faults for the fake Exchange Online service.

The connector has to survive what Exchange does under load: throttling, 5xx, slow answers and
connections dropped mid-call, sometimes after a write has already committed; answers that do not
prove a read (a 200 with an empty, corrupt, cut or valueless body, pages that never end); and
Exchange's error shapes (``x-ExceptionType``, a 500 holding a CmdletProxyException that names
the inner exception, a body with only ``innererror``, the JSON form of ``details``). The
schedule draws every decision from one ``random.Random(seed)``, so a failing test replays
exactly: the same seed gives the same faults in the same order of requests. ``force`` adds
faults by hand, for one cmdlet, a number of times or for ever.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from enum import StrEnum


class FaultKind(StrEnum):
    THROTTLE = "throttle"  # 429 with Retry-After, never processed
    SERVER_ERROR = "server_error"  # 500
    UNAVAILABLE = "unavailable"  # 503
    SLOW = "slow"  # answered after FaultConfig.slow_seconds
    DROP = "drop"  # socket closed without a response
    # 200s that do not prove a read
    EMPTY_BODY = "empty_body"  # no body at all
    BAD_JSON = "bad_json"  # a body that is not JSON
    CORRUPT_GZIP = "corrupt_gzip"  # labelled gzip, not gzip
    TRUNCATED_GZIP = "truncated_gzip"  # a gzip stream cut short (its length says so)
    TRUNCATED = "truncated"  # Content-Length promises more than is sent; then the socket closes
    NO_VALUE = "no_value"  # a JSON object without `value`
    LOOPING_NEXTLINK = "looping_nextlink"  # the page's nextLink is the request's own URL
    ENDLESS_NEXTLINK = "endless_nextlink"  # a fresh nextLink on every page, for ever
    # Exchange's error shapes, naming Fault.exception_type (see ErrorShape)
    EXCHANGE_ERROR = "exchange_error"
    EMPTY_GZIP_403 = "empty_gzip_403"  # 403, empty body labelled gzip
    # a 200 with the cmdlet's answer and its non-terminating errors (`@adminapi.errors`),
    # each an error object worded as Fault.shape, naming Fault.exception_type
    NONTERMINATING_ERROR = "nonterminating_error"


class ErrorShape(StrEnum):
    """How the service words an error (docs/exchange.md, "What an Exchange error means")."""

    STANDARD = "standard"  # details[0].message "<ErrorId>|<ExceptionType>|<text>" + innererror
    HEADER = "header"  # the type only in the x-ExceptionType header; details hold the text
    PROXY = "proxy"  # 500; details name CmdletProxyException, the inner type is in the text
    INNER_ONLY = "inner_only"  # 500; a body with only innererror.type and its message
    JSON_DETAILS = "json_details"  # details[0].message as {localizedString, ClassName, Message}


class Phase(StrEnum):
    """When a fault strikes relative to the cmdlet running. After-commit faults on writes are the
    ambiguous case: the change happened but the caller cannot know."""

    BEFORE = "before"
    AFTER = "after"


# What a seeded schedule draws by default: transport trouble, which reads always survive.
ALL_KINDS: tuple[FaultKind, ...] = (FaultKind.THROTTLE, FaultKind.SERVER_ERROR,
                                    FaultKind.UNAVAILABLE, FaultKind.SLOW, FaultKind.DROP)
# 200s a reader must not take for an answer; each is retried like a 5xx.
UNREADABLE_KINDS: tuple[FaultKind, ...] = (
    FaultKind.EMPTY_BODY, FaultKind.BAD_JSON, FaultKind.CORRUPT_GZIP, FaultKind.TRUNCATED_GZIP,
    FaultKind.TRUNCATED, FaultKind.NO_VALUE)
# Exchange's own words for a passing condition, which real clients retry.
TRANSIENT_TYPE = "Microsoft.Exchange.Data.Directory.ADTransientException"


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """What the fake service injects. ``rate`` is the probability that a request gets a fault;
    ``latency_seconds`` is added to every request (benchmarks), faulty or not."""

    seed: int = 0
    rate: float = 0.0
    kinds: tuple[FaultKind, ...] = ALL_KINDS
    retry_after_choices: tuple[str, ...] = ("1", "0.5", "2")  # Exchange sends fractions too
    slow_seconds: float = 0.2
    latency_seconds: float = 0.0
    after_commit_share: float = 0.5  # of faults on writes, the share striking after the commit
    # EXCHANGE_ERROR faults drawn by the schedule: each picks a type and a shape from these.
    exception_types: tuple[str, ...] = (TRANSIENT_TYPE,)
    error_shapes: tuple[ErrorShape, ...] = tuple(ErrorShape)
    # Of those types, the ones that may strike after a write committed (a passing condition met
    # on the way back); any other Exchange error is given instead of running the cmdlet.
    after_commit_types: tuple[str, ...] = (TRANSIENT_TYPE,)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, not {self.rate}")
        if self.rate and not self.kinds:
            raise ValueError("a fault rate needs at least one fault kind")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    phase: Phase = Phase.BEFORE
    retry_after: str | None = None
    # EXCHANGE_ERROR: the exception (full or short name), how it is worded, and the status
    # (None: the shape's own, 500 for PROXY and INNER_ONLY, else 400).
    exception_type: str | None = None
    shape: ErrorShape = ErrorShape.STANDARD
    status: int | None = None
    message: str | None = None


@dataclass
class _Forced:
    fault: Fault
    cmdlet: str | None
    remaining: int | None  # None: for ever


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """One entry of the schedule's history: the n-th request, its cmdlet and what it got."""

    sequence: int
    cmdlet: str
    fault: Fault | None


@dataclass
class FaultSchedule:
    """Hands out faults, one decision per request, in request order."""

    config: FaultConfig = field(default_factory=FaultConfig)
    history: list[ScheduledFault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.config.seed)
        self._lock = threading.Lock()
        self._forced: list[_Forced] = []

    def force(self, fault: Fault, *, cmdlet: str | None = None, times: int | None = 1) -> None:
        """Give ``fault`` to the next ``times`` requests (of ``cmdlet``, if given); None: to
        every one. Forced faults come before the seeded ones, in the order forced."""
        with self._lock:
            self._forced.append(_Forced(fault, cmdlet, times))

    def next(self, cmdlet: str, *, write: bool) -> Fault | None:
        with self._lock:
            # Always draw the same number of values per request, so a change of fault kinds, of
            # the write/read mix or a forced fault does not shift every later decision.
            rolls = tuple(self._random.random() for _ in range(4))
            fault = self._take_forced(cmdlet) or self._draw(rolls, write=write)
            self.history.append(ScheduledFault(len(self.history), cmdlet, fault))
            return fault

    def _take_forced(self, cmdlet: str) -> Fault | None:
        for forced in self._forced:
            if forced.cmdlet not in (None, cmdlet) or forced.remaining == 0:
                continue
            if forced.remaining is not None:
                forced.remaining -= 1
            return forced.fault
        return None

    def _draw(self, rolls: tuple[float, ...], *, write: bool) -> Fault | None:
        cfg = self.config
        roll, kind_roll, phase_roll, after_roll = rolls
        if not cfg.rate or roll >= cfg.rate:
            return None
        kind = cfg.kinds[int(kind_roll * len(cfg.kinds))]
        phase = Phase.BEFORE
        # A 429 is refused before processing; the others can strike either side of a write's
        # commit, except a permanent error, which Exchange gives instead of running the cmdlet.
        after_allowed = kind is not FaultKind.THROTTLE
        exception_type = shape = None
        if kind is FaultKind.EXCHANGE_ERROR:
            exception_type = cfg.exception_types[int(after_roll * len(cfg.exception_types))]
            shape = cfg.error_shapes[int(phase_roll * len(cfg.error_shapes))]
            after_allowed = exception_type in cfg.after_commit_types
        if write and after_allowed and phase_roll < cfg.after_commit_share:
            phase = Phase.AFTER
        retry_after = None
        if kind is FaultKind.THROTTLE:
            choices = cfg.retry_after_choices
            retry_after = choices[int(after_roll * len(choices))]
        return Fault(kind, phase, retry_after, exception_type, shape or ErrorShape.STANDARD)

    def injected(self) -> list[ScheduledFault]:
        """The history entries that carried a fault."""
        with self._lock:
            return [entry for entry in self.history if entry.fault is not None]
