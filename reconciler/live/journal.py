"""The apply journal: an append-only record of every operation, one JSON line per event.
Apply writes it; the planner reads which plan was carried out last, so it lives below both.

``<repo>/.reconciler/journal/<customer>.jsonl`` (``--journal DIR``). Each operation gets a
``start`` line before its call and an end line (``done``, ``failed`` or ``skipped``) after,
and a ``complete`` line when an apply of a plan ended with all of it succeeded;
each line is flushed and fsynced before the call goes out or the next step is taken, so after a
crash or a SIGKILL the journal says exactly which operations finished and which one was in
flight. A line holds the plan checksum, the change address, the operation's index, its cmdlet,
its Identity and a fingerprint (a hash) of its parameters, never the parameter values.

Reading tolerates a torn last line, with a warning: a kill mid-write loses at most the line
being written, and an operation whose end line is lost reads as in flight, which is then
confirmed by re-reading live state, never replayed blindly. The next append first drops the torn
remainder. Any other line that cannot be read is an error naming the file and the line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from reconciler.errors import ReconcilerError
from reconciler.live.applied import iso, now_utc

log = logging.getLogger(__name__)

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


OP_EVENTS = ("start", *END_EVENTS)


def _record_problem(record: Any) -> str | None:
    """What makes ``record`` unusable, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    event = record.get("event")
    if not isinstance(event, str):
        return "no event"
    if event in OP_EVENTS:
        op = record.get("op")
        if not isinstance(op, int) or isinstance(op, bool):
            return f"the operation index {op!r} is not an integer"
        for name in ("plan", "address"):
            if not isinstance(record.get(name), str):
                return f"no {name}"
    return None


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line a kill left without its newline, so that the next record starts a
    line of its own instead of gluing onto it (a glued line could never be read)."""
    try:
        with open(path, "rb+") as fh:
            data = fh.read()
            if not data or data.endswith(b"\n"):
                return
            start = data.rfind(b"\n") + 1
            try:
                whole = _record_problem(json.loads(data[start:].decode("utf-8"))) is None
            except (UnicodeDecodeError, ValueError):
                whole = False
            if whole:  # only its newline was lost: keep the record
                fh.write(b"\n")
            else:
                fh.truncate(start)
            fh.flush()
            os.fsync(fh.fileno())
    except FileNotFoundError:
        return


def last_completed(directory: Path, customer: str) -> str | None:
    """The checksum of the last plan an apply carried out in full for ``customer``; None when
    there is none, or the journal cannot be read (apply itself then says why)."""
    last = None
    try:
        for record in Journal(directory, customer, quiet=True).records():
            if record.get("event") == "complete" and record.get("plan"):
                last = str(record["plan"])
    except ReconcilerError:
        return None
    return last


class Journal:
    """One customer's journal. Thread-safe appends; each record is durable on return."""

    def __init__(self, directory: Path, customer: str, *, quiet: bool = False) -> None:
        # quiet: a reader that only looks (plan), whose user a torn line does not concern
        self.path = journal_path(directory, customer)
        self.customer = customer
        self._lock = threading.Lock()
        self._fh: TextIO | None = None
        self.warnings: list[str] = []
        self._quiet = quiet

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, in order. A last line cut short (a kill mid-write) is left out with a
        warning; any other line that cannot be read is an error naming it: guessing what ran
        could run a write twice."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as e:
            raise ReconcilerError(f"cannot read the journal {self.path}: {e.strerror}") from e
        lines = data.split(b"\n")
        tail = lines.pop()  # after the last newline: empty, unless the last line was torn
        for number, raw in enumerate(lines, start=1):
            if raw.strip():
                yield self._parse(raw, number)
        if tail.strip():
            try:
                yield self._parse(tail, len(lines) + 1)
            except ReconcilerError:
                self._warn(f"the journal {self.path} ends in a line cut short (line "
                           f"{len(lines) + 1}: a run was stopped while writing it); it is "
                           f"ignored, and the operation it was about reads as unfinished, so it "
                           f"is read back before anything is sent again")

    def _parse(self, raw: bytes, number: int) -> dict[str, Any]:
        try:
            record = json.loads(raw.decode("utf-8"))
            problem = _record_problem(record)
        except (UnicodeDecodeError, ValueError) as e:
            problem = f"not a JSON record ({e})"
        if problem is None:
            return record  # type: ignore[no-any-return]
        raise ReconcilerError(
            f"the journal {self.path} is damaged at line {number}: {problem}. Nothing was "
            f"changed. It is apply's record of what ran, so apply will not guess: move it "
            f"aside (mv {self.path} {self.path}.damaged), then make a new plan and apply that; "
            f"a new plan is made from live state, so it holds only what did not happen "
            f"(docs/apply.md, 'A damaged journal').")

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)
            if not self._quiet:
                log.warning("%s", text)

    def view(self, checksum: str) -> JournalView:
        out = JournalView()
        started: dict[tuple[str, str, int], dict[str, Any]] = {}
        open_by_fingerprint: dict[str, set[tuple[str, str, int]]] = {}
        for record in self.records():
            key = (str(record.get("plan")), str(record.get("address")), int(record.get("op", -1)))
            # (records() checked that an operation's record has an integer op)
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
                    _cut_torn_tail(self.path)
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
