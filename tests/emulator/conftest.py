from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "examples" / "desired-state" / "sandbox"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


_CACHE: dict[str, dict[str, Any]] = {}


def seed(customer: str = "contoso") -> dict[str, Any]:
    if customer not in _CACHE:
        _CACHE[customer] = json.loads((SEEDS / f"{customer}.json").read_text("utf-8"))
    return copy.deepcopy(_CACHE[customer])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


@pytest.fixture
def em(clock: FakeClock, wall: WallClock) -> Emulator:
    return Emulator(seed(), clock=clock, wall_clock=wall)
