"""Run ``reconciler`` with the sandbox backend instrumented, for the SIGKILL test.

Every write the sandbox commits (persisted to its file) is appended to a ledger, fsynced,
before the call returns. ``KILL_AT=n`` and ``KILL_PHASE`` make the process SIGKILL itself:
``before`` the n-th write reaches the tenant, ``after`` it committed (and was ledgered) but
before apply learns the answer, or at the n-th ``read`` after the first write (reading back,
verifying). Nothing in
the process can catch or clean up after SIGKILL, so what survives is what was on disk.

``KILL_SLOW=s`` adds ``s`` seconds before each write, so that a SIGKILL sent from outside at a
random moment lands while operations are running.

Usage: python -m tests.apply.kill_harness <reconciler arguments>
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.emulator import sandbox_backend as sandbox
from reconciler.live.backend import CmdletResult, is_write


def main() -> None:
    ledger = os.environ["KILL_LEDGER"]
    kill_at = int(os.environ.get("KILL_AT", "0"))
    phase = os.environ.get("KILL_PHASE", "")
    slow = float(os.environ.get("KILL_SLOW", "0"))
    seen = {"write": 0, "read": 0}
    original = sandbox.SandboxBackend.invoke

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    # Commit and ledger line happen under one lock, and the kill is taken holding it: no other
    # thread can be between a commit and its ledger line when the process dies.
    lock = threading.Lock()

    def invoke(self: Any, cmdlet: str, parameters: Mapping[str, Any] | None = None,
               select: Sequence[str] | None = None) -> CmdletResult:
        with lock:
            return locked_invoke(self, cmdlet, parameters, select)

    def locked_invoke(self: Any, cmdlet: str, parameters: Mapping[str, Any] | None,
                      select: Sequence[str] | None) -> CmdletResult:
        kind = "write" if is_write(cmdlet) else "read"
        if kind == "write" or seen["write"]:  # reads count from the first write on
            seen[kind] += 1
        hit = seen[kind] == kill_at
        if hit and phase == "read" and kind == "read":
            die()
        if hit and phase == "before" and kind == "write":
            die()
        if slow and kind == "write":
            time.sleep(slow)  # a wider window for a kill from outside to land in
        result = original(self, cmdlet, parameters, select)
        if kind == "write":
            with open(ledger, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"cmdlet": cmdlet, "parameters": dict(parameters or {}),
                                     "warnings": result.warnings}, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            if hit and phase == "after":
                die()
        return result

    sandbox.SandboxBackend.invoke = invoke  # type: ignore[method-assign]
    from reconciler.cli import main as cli_main

    sys.argv = ["reconciler", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
