"""Parsing a repository's YAML files ahead, on the machine's other cores.

The loader reads the files one after another and builds the model from each as it goes.
Parsing a file and checking it against its schema (most of a cold load) depend on nothing but
the file's bytes, so on a machine with more than one core those steps run ahead in worker
processes while this one builds. A worker sends back what the parse cache would store (the
plain data and its marks in the order cache.py uses, or the file's problems) with the SHA-256 of the
bytes it read. The loader takes that answer only when its own read of the file has the same
digest: a file changed in between is parsed again here, so what is loaded is always what the
loader read. A worker that fails (killed, out of memory) costs only time: its files are parsed
here.

``RECONCILER_JOBS`` sets the number of worker processes (``1``: none, parse here); by default
one per core, only for a repository large enough to be worth starting them, and only where
processes can be forked safely (no other thread running).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import Problem

from .cache import _attach, _flatten, entry_body, entry_key
from .schema import schema_problems
from .yamlfile import YamlDocument, YamlError, parse_yaml, read_bytes

log = logging.getLogger(__name__)

VARIABLE = "RECONCILER_JOBS"
# Below this much YAML, starting processes costs more than parsing here (about 10 ms each).
MIN_BYTES = 2 * 1024 * 1024
# Files are sent to workers in chunks of about this many bytes (fewer round trips for many small
# files), and at most this many chunks per worker are parsed ahead of the loader, which bounds
# the memory held by answers not yet taken.
CHUNK_BYTES = 256 * 1024
AHEAD_PER_WORKER = 3
MAX_WORKERS = 32



@dataclass(frozen=True, slots=True)
class Job:
    """A file to parse ahead."""

    path: str
    display: str  # its name in messages
    kind: str  # what it is read as (resources, customer...)
    cache_version: str | None = None  # the parse cache's version, when an entry is to be made
    root: str | None = None  # the repository's real path: a file opened outside it is not read
    size: int = 0  # its size when queued, to cut the work into chunks


@dataclass(frozen=True, slots=True)
class Parsed:
    """A worker's answer for one file."""

    digest: str  # SHA-256 of the bytes the worker read
    problems: list[Problem]  # the file's parse or schema problems (then no data)
    data: Any = None
    marks: list[list[int]] | None = None  # cache.py's flat form
    entry: tuple[str, bytes] | None = None  # the parse cache's (key, entry), when asked for

    def document(self, display: str) -> YamlDocument | None:
        """The document, marks attached; None if they do not fit (then parse it here)."""
        doc = YamlDocument(display, self.data)
        try:
            if _attach(doc.data, self.marks or [], 0, doc.marks) != len(self.marks or []):
                return None
        except (IndexError, ValueError):
            return None
        return doc


def parse_file(job: Job) -> Parsed | None:
    """Read, parse and schema-check one file (in a worker); None when it cannot be read."""
    try:
        raw = read_bytes(job.path, job.display, job.root)
    except YamlError:
        return None  # the loader reads it too, and reports why it cannot
    digest = hashlib.sha256(raw).hexdigest()
    try:
        doc = parse_yaml(raw, job.display)
    except YamlError as e:
        return Parsed(digest, e.problems)
    found = schema_problems(doc, job.kind)
    if found:
        return Parsed(digest, found)
    flat: list[list[int]] = []
    _flatten(doc.data, doc.marks, flat)
    entry = None
    if job.cache_version is not None:
        key = entry_key(job.cache_version, raw, job.kind)
        entry = (key, entry_body(key, doc.data, flat))
    return Parsed(digest, [], doc.data, flat, entry)


def _worker_start() -> None:
    # Ctrl-C reaches every process of the terminal's group: the command stops its workers and
    # says "Interrupted."; a worker of its own would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _parse_chunk(jobs: Sequence[Job]) -> list[Parsed | None]:
    return [parse_file(job) for job in jobs]


def workers_for(total_bytes: int) -> int:
    """How many worker processes to parse ``total_bytes`` of YAML with (0: parse here)."""
    wanted = os.environ.get(VARIABLE, "").strip()
    if wanted:
        # A number beyond what a machine could use would only fork processes to wait.
        jobs = min(int(wanted), MAX_WORKERS) if wanted.isdigit() else 1
        if not wanted.isdigit():
            log.warning("%s=%r is not a number of processes; the YAML is parsed in this one",
                        VARIABLE, wanted)
        if jobs <= 1:
            return 0
    elif not may_help(total_bytes):
        return 0
    else:
        # Only the cores idle now: on a machine busy with other work, workers would only take
        # turns with this process (measured: a plan then takes up to twice as long).
        jobs = min(_cores(), int(_idle_cores() + 0.25))
        if jobs < 1:
            log.debug("YAML parsed in this process: no core is idle")
            return 0
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0
    # Forking a process that runs other threads can copy a lock one of them holds, for ever.
    if threading.active_count() > 1:
        log.debug("YAML parsed in this process: other threads are running")
        return 0
    return jobs


def may_help(total_bytes: int) -> bool:
    """Whether :func:`workers_for` could start a worker for ``total_bytes`` of YAML, answered
    without sampling the machine: the loader asks before the work only parsing ahead needs
    (reading each file to ask the parse cache about it)."""
    wanted = os.environ.get(VARIABLE, "").strip()
    if wanted:
        return not wanted.isdigit() or int(wanted) > 1  # a non-number: workers_for says so
    return total_bytes >= MIN_BYTES and _cores() >= 2


def _idle_cores(window: float = 0.02) -> float:
    """How many cores were idle over the last ``window`` seconds (Linux's /proc/stat); as many
    as there are where that cannot be read."""
    first = _cpu_times()
    if first is None:
        return float(_cores())
    time.sleep(window)
    second = _cpu_times()
    if second is None:
        return float(_cores())
    idle = second[0] - first[0]
    total = second[1] - first[1]
    # The first line of /proc/stat sums every core the machine has.
    return (os.cpu_count() or 1) * idle / total if total > 0 else float(_cores())


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) clock ticks of all cores since boot."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user..steal


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Ahead:
    """Files parsed ahead by ``workers`` processes, taken in the order they were queued.

    ``meanwhile``: work for this process while it would only wait for a worker (say, reading
    the live tenant's snapshot), each run at most once, in order; what is left is not run."""

    def __init__(self, workers: int, meanwhile: Iterable[Callable[[], object]] = ()) -> None:
        self.workers = workers
        self._meanwhile = deque(meanwhile)
        self._pool: ProcessPoolExecutor | None = None
        self._queued: deque[list[Job]] = deque()  # chunks not sent yet
        self._sent: deque[tuple[list[Job], Future[list[Parsed | None]]]] = deque()
        self._ready: dict[str, Parsed | None] = {}  # path -> answer, of chunks received
        self._expected: set[str] = set()  # paths queued and not taken yet
        self._broken = False

    def queue(self, jobs: Sequence[Job]) -> None:
        """Parse these files ahead, in this order (the order the loader will ask for them)."""
        chunk: list[Job] = []
        size = 0
        for job in jobs:
            self._expected.add(job.path)
            chunk.append(job)
            size += job.size
            if size >= CHUNK_BYTES:
                self._queued.append(chunk)
                chunk, size = [], 0
        if chunk:
            self._queued.append(chunk)
        self._send()

    def take(self, path: Path, raw: bytes) -> Parsed | None:
        """The answer for ``path`` if a worker parsed exactly ``raw``; None: parse it here."""
        key = str(path)
        if key not in self._expected:
            return None
        self._expected.discard(key)
        while key not in self._ready and self._sent:
            if self._meanwhile and not self._sent[0][1].done():
                self._meanwhile.popleft()()
                continue
            self._receive()
        answer = self._ready.pop(key, None)
        if answer is None or answer.digest != hashlib.sha256(raw).hexdigest():
            return None
        return answer

    def close(self) -> None:
        self._queued.clear()
        self._sent.clear()
        self._ready.clear()
        self._expected.clear()
        self._meanwhile.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _send(self) -> None:
        while self._queued and not self._broken and \
                len(self._sent) < self.workers * AHEAD_PER_WORKER:
            chunk = self._queued.popleft()
            try:
                if self._pool is None:
                    self._pool = ProcessPoolExecutor(
                        self.workers, mp_context=multiprocessing.get_context("fork"),
                        initializer=_worker_start)
                self._sent.append((chunk, self._pool.submit(_parse_chunk, chunk)))
            except (OSError, RuntimeError) as e:  # no processes to be had: parse here
                self._fail(e)

    def _receive(self) -> None:
        chunk, future = self._sent.popleft()
        try:
            answers = future.result()
        except Exception as e:  # a broken worker only means: parse here
            self._fail(e)
            answers = [None] * len(chunk)
        self._ready.update((job.path, answer) for job, answer in zip(chunk, answers, strict=True))
        self._send()

    def _fail(self, error: BaseException) -> None:
        if not self._broken:
            log.debug("parsing ahead stopped, the rest is parsed here: %s", error)
        self._broken = True
        self._queued.clear()
