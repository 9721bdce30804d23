"""A seeded schedule of faults for the fake Exchange Online service.

The connector has to survive what Exchange does under load: throttling, 5xx, slow answers and
connections dropped mid-call, sometimes after a write has already committed. The schedule draws
every decision from one ``random.Random(seed)``, so a failing test replays exactly: the same seed
gives the same faults in the same order of requests.
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


class Phase(StrEnum):
    """When a fault strikes relative to the cmdlet running. After-commit faults on writes are the
    ambiguous case: the change happened but the caller cannot know."""

    BEFORE = "before"
    AFTER = "after"


ALL_KINDS: tuple[FaultKind, ...] = tuple(FaultKind)


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

    def next(self, cmdlet: str, *, write: bool) -> Fault | None:
        cfg = self.config
        with self._lock:
            fault = None
            # Always draw the same number of values per request, so a change of fault kinds or
            # of the write/read mix does not shift every later decision.
            roll, kind_roll, phase_roll, after_roll = (self._random.random() for _ in range(4))
            if cfg.rate and roll < cfg.rate:
                kind = cfg.kinds[int(kind_roll * len(cfg.kinds))]
                phase = Phase.BEFORE
                # A 429 is refused before processing; the others can strike either side of a
                # write's commit.
                if write and kind is not FaultKind.THROTTLE and phase_roll < cfg.after_commit_share:
                    phase = Phase.AFTER
                retry_after = None
                if kind is FaultKind.THROTTLE:
                    choices = cfg.retry_after_choices
                    retry_after = choices[int(after_roll * len(choices))]
                fault = Fault(kind, phase, retry_after)
            self.history.append(ScheduledFault(len(self.history), cmdlet, fault))
            return fault

    def injected(self) -> list[ScheduledFault]:
        """The history entries that carried a fault."""
        with self._lock:
            return [entry for entry in self.history if entry.fault is not None]
