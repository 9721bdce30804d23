"""The contract cases (docs/format.md) run through the installed ``reconciler`` command, exactly as
the shared conformance runner does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).parent / "conformance"


def test_conformance_cases_pass() -> None:
    binary = Path(sys.executable).parent / "reconciler"
    done = subprocess.run([sys.executable, str(CASES / "run.py"), str(binary)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed" in done.stdout
