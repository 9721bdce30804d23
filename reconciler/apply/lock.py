"""One apply per customer at a time: an exclusive lock per customer in ``<repo>/.reconciler/locks``.

Two applies of one customer running side by side would both read the tenant, both find the same
work and both carry it out: every write twice. Each apply therefore holds its customers' locks
from before it reads anything until it exits. The lock is an OS file lock (``flock``) on
``<customer>.lock``, so it is released on any exit, a SIGKILL included: a lock whose holder died
is free, with nothing to clean up. The file holds who has it (pid, host, start time), for the
message a second apply gives. The lock covers applies sharing a working copy (a machine, a CI
runner's workspace); separate clones on separate machines are kept apart by CI's concurrency
groups (docs/gitops.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from reconciler.errors import ReconcilerError
from reconciler.live.applied import iso, now_utc

LOCK_DIRECTORY = Path(".reconciler") / "locks"


class LockBusy(ReconcilerError):
    """Another apply holds a customer's lock; the message names it."""


def lock_path(root: Path, customer: str) -> Path:
    return Path(root) / LOCK_DIRECTORY / f"{customer}.lock"


def _holder_text(fh: IO[str]) -> str:
    fh.seek(0)
    try:
        holder: dict[str, Any] = json.loads(fh.read() or "{}")
    except ValueError:
        holder = {}
    if not holder:
        return "another apply (it has not said who yet)"
    return (f"another apply: pid {holder.get('pid')} on {holder.get('host')}, started "
            f"{holder.get('started')}")


class CustomerLock:
    """The lock of one customer's applies."""

    def __init__(self, root: Path, customer: str) -> None:
        self.path = lock_path(root, customer)
        self.customer = customer
        self._fh: IO[str] | None = None

    def acquire(self, wait: float = 0.0, *, sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.monotonic) -> None:
        """Take the lock, waiting up to ``wait`` seconds for its holder; LockBusy after."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        except OSError as e:
            raise ReconcilerError(f"cannot open the apply lock {self.path}: {e.strerror}") from e
        deadline = clock() + wait
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    holder = _holder_text(fh)
                    fh.close()
                    raise LockBusy(
                        f"customer {self.customer} is being applied by {holder} (lock "
                        f"{self.path}). Nothing was changed. Wait for it to finish, or give "
                        f"--lock-wait SECONDS to wait for it.") from None
                sleep(min(0.2, max(0.0, deadline - clock())))
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": iso(now_utc())}))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is None:
            return
        # The file stays (removing it would let a waiter lock a name nobody else sees); only
        # the holder's details go.
        with contextlib.suppress(OSError):
            fh.seek(0)
            fh.truncate()
            fh.flush()
        fh.close()  # closing releases the flock


@contextlib.contextmanager
def customer_locks(root: Path, customers: Iterable[str], wait: float = 0.0) -> Iterator[None]:
    """Hold every named customer's lock for the duration (taken in sorted order, so two
    applies of overlapping customers cannot each wait for the other)."""
    held: list[CustomerLock] = []
    deadline = time.monotonic() + wait
    try:
        for cid in sorted(set(customers)):
            lock = CustomerLock(root, cid)
            lock.acquire(max(0.0, deadline - time.monotonic()))
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            lock.release()
