"""Ctrl-C during apply: a real SIGINT to an apply process ends it with the summary of what
succeeded, failed, was skipped and was not started, exit 130; the same command run again
finishes the job with no write twice."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.apply.test_kill import ROOT, _env, _key, _reconciler, _setup


def test_ctrl_c_ends_with_the_summary_and_the_same_command_finishes(tmp_path: Path):
    repo, live, ledger, plan_file, planned = _setup(tmp_path)
    journal = repo.root / ".reconciler" / "journal" / "contoso.jsonl"
    args = ["apply", str(plan_file), "--path", str(repo.root), "--live", live]
    process = subprocess.Popen([sys.executable, "-m", "tests.apply.kill_harness", *args],
                               cwd=ROOT, env=_env(ledger, KILL_SLOW="0.25"), text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and (
            not journal.exists() or journal.read_text().count('"event": "done"') < 2):
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    head = re.search(r"Apply interrupted: (\d+) succeeded.*, (\d+) failed, (\d+) skipped, "
                     r"(\d+) not started\.", out)
    assert head, out + err
    succeeded, failed, skipped, not_started = map(int, head.groups())
    assert succeeded >= 2 and not_started >= 1
    assert succeeded + failed + skipped + not_started == sum(planned.values())
    assert "Not started (interrupted):" in out
    assert "run the same command again to finish" in out
    assert "Traceback" not in err
    # Every operation that was on the wire finished and has its end line.
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    starts = Counter((r["address"], r["op"]) for r in records if r["event"] == "start")
    ends = Counter((r["address"], r["op"]) for r in records
                   if r["event"] in ("done", "failed"))
    assert starts and starts == ends

    again = _reconciler(args, ledger)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "done by an earlier run" in again.stdout
    writes = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert Counter(_key(w["cmdlet"], w["parameters"]) for w in writes) == planned
