"""At the size the performance work is measured at: the benchmark's generated repository of
10,000 mailboxes and 100,000 grants, planned by the command with every fast path on (YAML
parsed on two worker processes, the snapshot read meanwhile, the collector paused), gives the
plan JSON the plain path gives (one process, a checking and copying emulator, Python's own
collection), byte for byte, and the one main gave before this work (54b85c4).

If a change to the plan's content is intended, the digest below changes with it: record the new
one from the plain path (``reference_json``) in the same commit, saying why."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.perf.conftest import generated_case
from tests.perf.test_same_output import reference_json

# The plan JSON of the 10k case as main made it at 54b85c4.
BEFORE = "26590ffa0213d14de8370d4e32bf06ea73ee43d2a3d8fb852f6063b2c4ae32b7"


@pytest.fixture(scope="module")
def case_10k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generated_case(tmp_path_factory.mktemp("case-10k"), 10_000, 100, 50, 0.01)


def test_a_10k_plan_is_the_same_before_and_after_byte_for_byte(
        case_10k: tuple[Path, Path]) -> None:
    root, live = case_10k
    env = {**os.environ, "RECONCILER_JOBS": "2", "RECONCILER_GC": "pause"}
    done = subprocess.run([sys.executable, "-m", "reconciler", "plan", str(root), "--live",
                           f"snapshot:{live}", "--format", "json", "--no-cache"],
                          capture_output=True, env=env, check=False, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    fast = done.stdout.decode()
    assert json.loads(fast)["summary"]["update"] == 100  # the 1% drift
    plain = reference_json(root, live)
    assert fast.rstrip("\n") == plain.rstrip("\n")
    assert hashlib.sha256(plain.encode()).hexdigest() == BEFORE
