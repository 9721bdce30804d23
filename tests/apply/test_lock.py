"""One apply per customer at a time, across processes: applies started together each write
nothing the others wrote (the sandbox's ledger shows every planned write exactly once), a second
apply gives up at once naming the holder, and a lock whose holder died is free."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from reconciler.apply.lock import CustomerLock, LockBusy, customer_locks, lock_path
from tests.apply.test_kill import ROOT, _env, _key, _setup


def _start(args: list[str], ledger: Path, slow: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.apply.kill_harness", *args],
                            cwd=ROOT, env=_env(ledger, KILL_SLOW=slow), text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _committed(ledger: Path) -> Counter[str]:
    writes = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert not [w for w in writes if w["warnings"]]  # no repeat answered as a no-op either
    return Counter(_key(w["cmdlet"], w["parameters"]) for w in writes)


@pytest.mark.parametrize("count", [2, 4])
def test_applies_started_together_write_everything_exactly_once(tmp_path: Path, count: int):
    repo, live, ledger, plan_file, planned = _setup(tmp_path)
    saved = ["apply", str(plan_file), "--path", str(repo.root)]
    again = ["apply", str(repo.root), "--auto-approve"]
    # Half apply the saved plan, half plan and apply in one go; all wait for one another.
    runs = [(saved if n % 2 == 0 else again) + ["--live", live, "--lock-wait", "120"]
            for n in range(count)]
    processes = [_start(args, ledger, "0.01") for args in runs]
    outputs = [p.communicate(timeout=180) for p in processes]
    assert [p.returncode for p in processes] == [0] * count, outputs
    assert _committed(ledger) == planned
    applied = [out for out, _ in outputs
               if "Apply complete" in out and "nothing to do." not in out]
    assert len(applied) == 1, outputs
    for out, _ in outputs:
        assert out in applied or "already applied on" in out or "No changes." in out


def test_a_second_apply_gives_up_at_once_naming_the_holder(tmp_path: Path):
    repo, live, ledger, plan_file, planned = _setup(tmp_path)
    args = ["apply", str(plan_file), "--path", str(repo.root), "--live", live]
    first = _start(args, ledger, "0.05")
    lock = lock_path(repo.root, "contoso")
    deadline = time.monotonic() + 60
    while (not lock.exists() or not lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    holder = json.loads(lock.read_text())
    second = subprocess.run([sys.executable, "-m", "tests.apply.kill_harness", *args], cwd=ROOT,
                            env=_env(ledger), capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL, check=False)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert second.returncode == 1
    assert (f"customer contoso is being applied by another apply: pid {first.pid} on "
            f"{socket.gethostname()}, started {holder['started']}") in second.stderr
    assert "--lock-wait" in second.stderr and "Traceback" not in second.stderr
    assert _committed(ledger) == planned
    assert lock.read_text() == ""  # released: the holder's details are gone


def test_a_lock_whose_holder_died_is_free(tmp_path: Path):
    lock = lock_path(tmp_path, "contoso")
    lock.parent.mkdir(parents=True)
    # What a SIGKILLed holder leaves: its details, and no lock (the OS dropped it).
    lock.write_text(json.dumps({"pid": 999999, "host": "gone", "started": "2026-01-01"}))
    with customer_locks(tmp_path, ["contoso"]):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_the_lock_is_released_on_any_exit_and_waited_for_within_bounds(tmp_path: Path):
    with pytest.raises(RuntimeError), customer_locks(tmp_path, ["contoso", "fabrikam"]):
        raise RuntimeError("apply failed")
    holder = CustomerLock(tmp_path, "contoso")
    holder.acquire()
    waits: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds
    with pytest.raises(LockBusy, match=f"pid {os.getpid()}"):
        CustomerLock(tmp_path, "contoso").acquire(1.0, sleep=sleep, clock=lambda: clock[0])
    assert 0.9 <= sum(waits) <= 1.0
    holder.release()
    CustomerLock(tmp_path, "contoso").acquire()
