"""An ``apply`` process SIGKILLed at random points (seeded), then run again: the tenant
converges, and the ledger of writes the sandbox committed shows every planned operation exactly
once: none duplicated, none lost."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.apply.conftest import LONDON, Repo
from tests.apply.test_confirm import EVERYTHING

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


def _env(ledger: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "KILL_LEDGER": str(ledger), "NO_COLOR": "1", **extra}


def _reconciler(args: list[str], ledger: Path, *, kill_at: int = 0, phase: str = ""
                ) -> subprocess.CompletedProcess[str]:
    env = _env(ledger, KILL_AT=str(kill_at), KILL_PHASE=phase)
    return subprocess.run([sys.executable, "-m", "tests.apply.kill_harness", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)


def _key(cmdlet: str, parameters: dict) -> str:
    return cmdlet + " " + json.dumps(parameters, sort_keys=True)


def _setup(tmp_path: Path) -> tuple[Repo, str, Path, Path, Counter[str]]:
    repo = Repo(tmp_path / "repo")
    repo.yaml(LONDON, EVERYTHING)
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    shutil.copy(DATA / "contoso.json", tenants / "contoso.json")
    live = f"sandbox:{tenants}"
    ledger = tmp_path / "ledger.jsonl"
    plan_file = tmp_path / "plan.json"
    made = _reconciler(["plan", str(repo.root), "--live", live, "--out", str(plan_file)], ledger)
    assert made.returncode == 0, made.stderr
    plan = json.loads(plan_file.read_text())
    planned = Counter(_key(op["cmdlet"], op["parameters"])
                      for c in plan["changes"] for op in c["operations"])
    assert sum(planned.values()) > 15
    return repo, live, ledger, plan_file, planned


@pytest.mark.parametrize("seed", range(6))
def test_killed_apply_converges_without_duplicates(tmp_path: Path, seed: int):
    repo, live, ledger, plan_file, planned = _setup(tmp_path)

    rng = random.Random(seed)
    phase = ["before", "after", "read"][seed % 3]
    # Writes: any of the plan's; reads: among the first of the read-back that verifies it.
    kill_at = rng.randint(1, sum(planned.values()) if phase != "read" else 12)
    saved = seed % 2 == 0  # resume the saved plan, or plan again (each phase gets both)
    first = (["apply", str(plan_file), "--path", str(repo.root)] if saved
             else ["apply", str(repo.root), "--auto-approve"])
    killed = _reconciler([*first, "--live", live], ledger, kill_at=kill_at, phase=phase)
    assert killed.returncode == -signal.SIGKILL, (phase, kill_at, killed.stdout, killed.stderr)

    again = _reconciler([*first, "--live", live], ledger)
    assert again.returncode == 0, again.stdout + again.stderr
    final = _reconciler(["plan", str(repo.root), "--live", live, "--detailed-exitcode"], ledger)
    assert final.returncode == 0 and "No changes." in final.stdout, final.stdout

    writes = [json.loads(line) for line in ledger.read_text().splitlines()]
    committed = Counter(_key(w["cmdlet"], w["parameters"]) for w in writes)
    assert committed == planned, (phase, kill_at, committed - planned, planned - committed)
    # No call was a repeat that Exchange answered as a no-op either.
    assert not [w for w in writes if w["warnings"]], (phase, kill_at)


@pytest.mark.parametrize("seed", range(3))
def test_apply_killed_from_outside_at_a_random_moment(tmp_path: Path, seed: int):
    """The parent sends SIGKILL at a seeded random moment once operations are running. A kill
    can then land between a write's commit and its ledger line, so the ledger may miss one
    write (convergence shows it happened); it can never show one twice."""
    repo, live, ledger, plan_file, planned = _setup(tmp_path)
    journal = repo.root / ".reconciler" / "journal" / "contoso.jsonl"
    delay = random.Random(seed).uniform(0.0, 0.12)
    args = ["apply", str(plan_file), "--path", str(repo.root), "--live", live]
    process = subprocess.Popen([sys.executable, "-m", "tests.apply.kill_harness", *args],
                               cwd=ROOT, env=_env(ledger, KILL_SLOW="0.03"),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not journal.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL  # it was still running: the kill landed
    ran = sum(1 for line in journal.read_text().splitlines() if '"event": "done"' in line)
    assert ran < sum(planned.values())  # and before the last operation finished

    again = _reconciler(["apply", str(repo.root), "--auto-approve", "--live", live], ledger)
    assert again.returncode == 0, again.stdout + again.stderr
    final = _reconciler(["plan", str(repo.root), "--live", live, "--detailed-exitcode"], ledger)
    assert final.returncode == 0 and "No changes." in final.stdout, final.stdout

    writes = [json.loads(line) for line in ledger.read_text().splitlines()]
    committed = Counter(_key(w["cmdlet"], w["parameters"]) for w in writes)
    assert not committed - planned, committed - planned  # nothing twice, nothing unplanned
    assert sum((planned - committed).values()) <= 1
    assert not [w for w in writes if w["warnings"]]
