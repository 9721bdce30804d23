"""The ``sandbox`` backend: a simulated tenant persisted as ``<directory>/<customer>.json``.

The Exchange emulator answers the cmdlets; after each write that succeeded, the tenant is written
back atomically (a temporary file in the same directory, flushed and fsynced, then renamed over
the old one with :func:`os.replace`), so that a crash or a kill mid-write leaves the previous
tenant intact, never half a file. Writes from several processes are serialised by a lock on the
directory, and each backend reloads the file when another process has replaced it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.emulator.snapshot_backend import EmulatedBackend, snapshot_path
from reconciler.errors import ReconcilerError, did_you_mean
from reconciler.live.atomic import write_snapshot_atomically
from reconciler.live.backend import CmdletResult, is_write
from reconciler.live.snapshot_format import load_snapshot


class SandboxBackend(EmulatedBackend):
    """A read-write :class:`~reconciler.live.backend.Backend` over the emulator, persisted to
    ``<directory>/<customer_id>.json``. Loaded on the first call; ``lag_seconds`` emulates
    Exchange's read-after-write lag within this process."""

    read_only = False
    kind = "sandbox"

    def __init__(self, directory: Path, customer_id: str, *, lag_seconds: float = 0.0) -> None:
        super().__init__(directory, customer_id)
        self.lag_seconds = lag_seconds
        self._lock = threading.Lock()

    def _missing(self) -> ReconcilerError:
        return ReconcilerError(
            f"no sandbox tenant for customer '{self.customer_id}': {self.path} does not exist. "
            f"Create the sandbox with `reconciler sandbox init` (it copies the seed snapshots "
            f"from <repo>/sandbox/).")

    def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
    ) -> CmdletResult:
        return self._logged(cmdlet, parameters,
                            lambda: self._invoke(cmdlet, parameters, select))

    def _invoke(self, cmdlet: str, parameters: Mapping[str, Any] | None,
                select: Sequence[str] | None) -> CmdletResult:
        with self._lock:
            if not is_write(cmdlet):
                return self._load().invoke(cmdlet, parameters, select)
            # Read, change and write back under a lock on the directory, so that two
            # processes writing one sandbox (an apply and `sandbox serve`) lose no update.
            with _directory_lock(self.directory):
                emulator = self._load()
                result = emulator.invoke(cmdlet, parameters, select)
                try:
                    write_snapshot_atomically(self.path, emulator.to_snapshot())
                except BaseException:
                    # The file is the truth: forget a change that could not be saved.
                    self.close()
                    raise
                self._stamp = self._file_stamp()
                return result


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``directory`` (POSIX flock); a no-op where there is none."""
    try:
        import fcntl
    except ImportError:  # Windows: one process at a time, as documented
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# --- the sandbox directory of a desired-state repository ----------------------------------------

SEED_DIRECTORY = "sandbox"
SANDBOX_DIRECTORY = Path(".reconciler") / "sandbox"


def seed_directory(repo_root: Path) -> Path:
    """Where a repository keeps its seed snapshots: ``<repo>/sandbox/<customer>.json``."""
    return Path(repo_root) / SEED_DIRECTORY


def sandbox_directory(repo_root: Path) -> Path:
    """Where the default sandbox lives: ``<repo>/.reconciler/sandbox/``."""
    return Path(repo_root) / SANDBOX_DIRECTORY


def seed_sandbox(repo_root: Path, *, reset: bool = False,
                 customers: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Copy the repository's seed snapshots into its sandbox directory.

    Existing sandbox tenants are kept unless ``reset``. Each seed is validated before it is
    copied. Returns ``(customer, what happened)`` pairs, ``what`` being ``created``,
    ``reset`` or ``kept``."""
    seeds = seed_directory(repo_root)
    if not seeds.is_dir():
        raise ReconcilerError(
            f"no seed snapshots: {seeds} does not exist (it holds one <customer>.json tenant "
            f"snapshot per customer, see docs/format.md §9)")
    seeded = sorted(seed.stem for seed in seeds.glob("*.json"))
    unknown = sorted(set(customers or ()) - set(seeded))
    if unknown:
        raise ReconcilerError("; ".join(
            f"no seed snapshot for customer {c!r}{did_you_mean(c, seeded)} in {seeds}"
            for c in unknown) + f" (seeded customers: {', '.join(seeded) or 'none'})")
    target = sandbox_directory(repo_root)
    target.mkdir(parents=True, exist_ok=True)
    done: list[tuple[str, str]] = []
    for seed in sorted(seeds.glob("*.json")):
        customer = seed.stem
        if customers is not None and customer not in customers:
            continue
        dest = snapshot_path(target, customer)
        existed = dest.exists()
        if existed and not reset:
            done.append((customer, "kept"))
            continue
        write_snapshot_atomically(dest, load_snapshot(seed))
        done.append((customer, "reset" if existed else "created"))
    return done
