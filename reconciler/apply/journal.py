"""The apply journal: an append-only record of every operation, one JSON line per event.

``<repo>/.reconciler/journal/<customer>.jsonl`` (``--journal DIR``). Each operation gets a
``start`` line before its call and an end line (``done``, ``failed`` or ``skipped``) after,
and a ``complete`` line when an apply of a plan ended with all of it succeeded;
each line is flushed and fsynced before the call goes out or the next step is taken, so after a
crash or a SIGKILL the journal says exactly which operations finished and which one was in
flight. A line holds the plan checksum, the change address, the operation's index, its cmdlet,
its Identity and a fingerprint (a hash) of its parameters, never the parameter values.

Reading tolerates a torn last line: a kill mid-write loses at most the line being written,
and an operation whose end line is lost reads as in flight, which is then confirmed by
re-reading live state, never replayed blindly.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from reconciler.apply.state import iso, now_utc
from reconciler.errors import ReconcilerError

JOURNAL_DIRECTORY = Path(".reconciler") / "journal"
END_EVENTS = ("done", "failed", "skipped")

OpKey = tuple[str, int]  # (change address, operation index)


def journal_path(directory: Path, customer: str) -> Path:
    return Path(directory) / f"{customer}.jsonl"


@dataclass
class JournalView:
    """What the journal says about one plan, and about operations left in flight by any."""

    done: dict[OpKey, dict[str, Any]] = field(default_factory=dict)
    in_flight: set[OpKey] = field(default_factory=set)
    # Fingerprints of writes started by any plan with no end recorded afterwards.
    unresolved: set[str] = field(default_factory=set)
    # When an apply of this plan ended with every operation succeeded (a ``complete`` line).
    completed: str | None = None


class Journal:
    """One customer's journal. Thread-safe appends; each record is durable on return."""

    def __init__(self, directory: Path, customer: str) -> None:
        self.path = journal_path(directory, customer)
        self.customer = customer
        self._lock = threading.Lock()
        self._fh: TextIO | None = None

    def records(self) -> Iterator[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as e:
            raise ReconcilerError(f"cannot read the journal {self.path}: {e.strerror}") from e
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line torn by a kill mid-write
            if isinstance(record, dict):
                yield record

    def view(self, checksum: str) -> JournalView:
        out = JournalView()
        started: dict[tuple[str, str, int], dict[str, Any]] = {}
        open_by_fingerprint: dict[str, set[tuple[str, str, int]]] = {}
        for record in self.records():
            key = (str(record.get("plan")), str(record.get("address")), int(record.get("op", -1)))
            event = record.get("event")
            fp = str(record.get("fingerprint") or "")
            if event == "complete" and key[0] == checksum:
                out.completed = str(record.get("time") or "")
            elif event == "start":
                started[key] = record
                if fp:
                    open_by_fingerprint.setdefault(fp, set()).add(key)
            elif event in END_EVENTS:
                started.pop(key, None)
                open_by_fingerprint.get(fp, set()).discard(key)
                # A later run that finished the same write settles an older in-flight one.
                if event == "done" and fp:
                    open_by_fingerprint.pop(fp, None)
                if event == "done" and key[0] == checksum:
                    out.done[(key[1], key[2])] = record
        for (plan, address, index) in started:
            if plan == checksum and (address, index) not in out.done:
                out.in_flight.add((address, index))
        out.unresolved = {fp for fp, keys in open_by_fingerprint.items() if keys}
        return out

    def append(self, event: str, **fields: Any) -> None:
        record = {"time": iso(now_utc()), "event": event, "customer": self.customer, **fields}
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        try:
            with self._lock:
                if self._fh is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                self._fh.write(line)
                self._fh.flush()
                fd = self._fh.fileno()
            # Outside the lock, so that parallel operations share one disk flush instead of
            # queueing for one each; the record is durable when this returns either way.
            os.fsync(fd)
        except OSError as e:
            # Without a durable record the next step is not safe to take.
            raise ReconcilerError(f"cannot write the journal {self.path}: "
                                  f"{e.strerror}") from e

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
