"""The read-only ``snapshot`` backend: plans against an exported tenant, offline.

``snapshot:DIR`` serves ``DIR/<customer>.json`` (docs/format.md §9) through the Exchange emulator,
so the reader parses it exactly as it parses the live service. Writes raise
:class:`~reconciler.live.backend.ReadOnlyBackend`: a plan made from a snapshot can be shown,
never applied through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import collector
from reconciler.desired.cache import ParseCache
from reconciler.emulator.tenant import Emulator
from reconciler.errors import ReconcilerError
from reconciler.live.backend import (
    CmdletResult,
    ReadOnlyBackend,
    call_log,
    is_write,
    log_call,
)
from reconciler.live.snapshot_format import load_snapshot


def snapshot_path(directory: Path, customer_id: str) -> Path:
    """Where a customer's snapshot lives in a sandbox or snapshot directory."""
    return Path(directory) / f"{customer_id}.json"


class EmulatedBackend:
    """What the snapshot and sandbox backends share: a tenant file served by the emulator.

    The file is read on the first call, so opening a backend for a customer that is never read
    costs nothing."""

    read_only = True
    kind = "snapshot"  # how log lines name it
    # Answers come from this process under one lock: parallel callers would only contend.
    concurrency = 1

    def __init__(self, directory: Path, customer_id: str) -> None:
        self.directory = Path(directory)
        self.customer_id = customer_id
        self.path = snapshot_path(self.directory, customer_id)
        self._emulator: Emulator | None = None
        self._lag_seconds = 0.0
        self._stamp: tuple[int, int, int] | None = None  # the file the emulator was loaded from

    @property
    def lag_seconds(self) -> float:
        """Read-after-write lag of the emulator; settable before or after it is loaded."""
        return self._lag_seconds

    @lag_seconds.setter
    def lag_seconds(self, value: float) -> None:
        self._lag_seconds = float(value)
        if self._emulator is not None:
            self._emulator.lag_seconds = self._lag_seconds

    def _missing(self) -> ReconcilerError:
        return ReconcilerError(
            f"no tenant snapshot for customer '{self.customer_id}': {self.path} does not exist "
            f"(write one with `reconciler export --customer {self.customer_id} --out "
            f"{self.path}`)")

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> Emulator:
        """The emulator for the file as it is now: loaded on first use, and again whenever the
        file was replaced since (another process applied to it, or `sandbox reset` ran)."""
        stamp = self._file_stamp()
        if self._emulator is None or stamp != self._stamp:
            if stamp is None:
                raise self._missing()
            self._emulator = None
            self._emulator = Emulator(load_snapshot(self.path), lag_seconds=self.lag_seconds,
                                      validate=False)
            self._stamp = stamp
        return self._emulator

    @property
    def emulator(self) -> Emulator:
        """The emulator serving this tenant (loading it if need be)."""
        return self._load()

    def close(self) -> None:
        self._emulator = None
        self._stamp = None

    def _logged(self, cmdlet: str, parameters: Mapping[str, Any] | None,
                run: Callable[[], CmdletResult]) -> CmdletResult:
        if not call_log.isEnabledFor(logging.INFO):  # not logged: not timed either
            return run()
        started = time.monotonic()
        result = run()
        log_call(f"{self.kind} {self.customer_id}", cmdlet, parameters, result,
                 time.monotonic() - started)
        return result


@dataclass(frozen=True)
class Preloaded:
    """A snapshot's emulator built ahead of its backend, and the file it was built from."""

    emulator: Emulator
    stamp: tuple[int, int, int]


def preload(directory: Path, customer_id: str,
            cache: ParseCache | None = None) -> Preloaded | None:
    """The read-only emulator of ``<directory>/<customer_id>.json`` built now (while this
    process would otherwise wait); None when the file cannot be served as it is, which the
    backend then says when it reads the file itself."""
    backend = SnapshotBackend(directory, customer_id, cache=cache)
    stamp = backend._file_stamp()
    if stamp is None:
        return None
    try:
        emulator = backend._load()
    except ReconcilerError:
        return None
    return Preloaded(emulator, stamp) if backend._file_stamp() == stamp else None


class SnapshotBackend(EmulatedBackend):
    """A read-only :class:`~reconciler.live.backend.Backend` over ``<directory>/<customer>.json``;
    writes raise :class:`~reconciler.live.backend.ReadOnlyBackend`.

    The file is read once per backend, and served by a read-only emulator: it owns the parsed
    rows and answers without copying them (nothing can change them). With ``cache`` (the
    repository's parse cache), the very bytes of a file found valid before are not validated
    again (:func:`~reconciler.live.snapshot_format.load_snapshot`)."""

    def __init__(self, directory: Path, customer_id: str, *,
                 cache: ParseCache | None = None) -> None:
        super().__init__(directory, customer_id)
        self.cache = cache

    def _load(self) -> Emulator:
        if self._emulator is None:
            if self._file_stamp() is None:
                raise self._missing()
            self._emulator = Emulator(load_snapshot(self.path, self.cache),
                                      lag_seconds=self.lag_seconds, validate=False,
                                      read_only=True)
            collector.settled()
        return self._emulator

    def adopt(self, preloaded: Preloaded | None) -> None:
        """Serve the emulator :func:`preload` built, if it was built from the file as it is."""
        if preloaded is not None and self._emulator is None and \
                preloaded.stamp == self._file_stamp():
            self._emulator = preloaded.emulator

    def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
    ) -> CmdletResult:
        if is_write(cmdlet):
            raise ReadOnlyBackend(
                f"{cmdlet} refused: the snapshot {self.path} is read-only (plan with "
                f"--live snapshot:DIR, apply against exchange or sandbox).", cmdlet=cmdlet)
        return self._logged(cmdlet, parameters,
                            lambda: self._load().invoke(cmdlet, parameters, select))
