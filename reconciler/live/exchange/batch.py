"""Reads made at the same time by different threads, sent together in one ``$batch`` request.

The reader runs a tenant's per-mailbox reads on ``concurrency x batch_size`` threads; each
thread's read joins the batch being gathered, and a batch goes out when it is full or after a
few milliseconds, holding one of the tenant's request slots. So a tenant with 4 slots and
batches of 10 has 40 reads in flight in 4 requests, and a read still returns its own result or
raises its own error, as if it had been sent alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.live.backend import CmdletResult

Call = tuple[str, Mapping[str, Any] | None, Sequence[str] | None]
Send = Callable[[list[Call]], list[Any]]  # one result or exception per call, in order
Single = Callable[[str, Mapping[str, Any] | None, Sequence[str] | None], CmdletResult]

LINGER_SECONDS = 0.005


@dataclass
class _Pending:
    call: Call
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None


@dataclass
class _Batch:
    items: list[_Pending] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)


class Batcher:
    """Gathers concurrent reads into batches of at most ``size`` and sends them with ``send``."""

    def __init__(self, send: Send, single: Single, size: int,
                 linger: float = LINGER_SECONDS) -> None:
        self._send = send
        self._single = single
        self.size = size
        self._linger = linger
        self._lock = threading.Lock()
        self._open: _Batch | None = None
        self._active = 0  # reads in flight: with none beside it, a read waits for no company

    def call(self, cmdlet: str, parameters: Mapping[str, Any] | None,
             select: Sequence[str] | None) -> CmdletResult:
        item = _Pending((cmdlet, parameters, select))
        with self._lock:
            alone = self._active == 0
            self._active += 1
        if alone:
            try:
                return self._single(cmdlet, parameters, select)
            finally:
                with self._lock:
                    self._active -= 1
        try:
            return self._gathered(item)
        finally:
            with self._lock:
                self._active -= 1

    def _gathered(self, item: _Pending) -> CmdletResult:
        with self._lock:
            leader = self._open is None
            if leader:
                self._open = _Batch()
            batch = self._open
            assert batch is not None
            batch.items.append(item)
            if len(batch.items) >= self.size:
                batch.full.set()
                self._open = None  # the next read starts another batch
        if leader:
            self._lead(batch)
        item.done.wait()
        if isinstance(item.result, BaseException):
            raise item.result
        return item.result  # type: ignore[no-any-return]

    def _lead(self, batch: _Batch) -> None:
        batch.full.wait(self._linger)
        with self._lock:
            if self._open is batch:
                self._open = None
        items = list(batch.items)
        try:
            if len(items) == 1:  # no company came: a $batch of one is a plain request
                results = [self._single(*items[0].call)]
            else:
                results = self._send([i.call for i in items])
        except BaseException as e:  # the whole request failed: so did each read in it
            results = [e] * len(items)
        for pending, result in zip(items, results, strict=True):
            pending.result = result
            pending.done.set()
