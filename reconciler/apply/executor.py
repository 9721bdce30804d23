"""Run one customer's operations: in dependency order, in parallel, journaled, exactly once.

Ordering. Operations form a graph: within a change they run one after another in the listed
order (the planner already put creation first and removals before additions); across changes,
an operation naming a principal (User, Trustee, Member, Members, ManagedBy, GrantSendOnBehalfTo,
ForwardingAddress) that another change creates waits for that creation, and a delete waits for
every other change's operation that names the deleted resource (revoke before delete). Ready
operations run on a pool as wide as the tenant's concurrency budget, so independent mailboxes
proceed in parallel and one mailbox is never written by two calls at once.

Exactly once. Each operation is journaled before its call and after it. What the journal says
is done for this plan is not run again. A write whose outcome is unknown (AmbiguousWriteError,
TransientError, or in flight when an earlier run died) is confirmed by reading back
(:mod:`.confirm`) and retried only if its effect is not there. "Already present" on an add and
"not present" on a remove count as done; a create refused as "address taken" counts as done only
when the object read back at the address is the one it creates (:mod:`.holder`). Throttling is
waited out (it means "not processed"). Anything else fails the operation, and everything that
depends on it is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from reconciler.apply.confirm import Recipients, can_confirm, confirm
from reconciler.apply.holder import describe, find_holder, is_planned_object, planned_address
from reconciler.errors import ReconcilerError
from reconciler.live.applied import op_fingerprint
from reconciler.live.backend import (
    AlreadyExists,
    AmbiguousWriteError,
    Backend,
    ExchangeError,
    NotFound,
    NotPresent,
    Throttled,
    TransientError,
    is_write,
)
from reconciler.live.journal import Journal, JournalView
from reconciler.plan.plan import Change, Operation

log = logging.getLogger(__name__)

PRINCIPAL_PARAMETERS = ("User", "Trustee", "Member", "Members", "ManagedBy",
                        "GrantSendOnBehalfTo", "ForwardingAddress")
ADD_VERBS = ("Add-", "Enable-")
REMOVE_VERBS = ("Remove-",)

SUCCEEDED, FAILED, SKIPPED = "succeeded", "failed", "skipped"
NOT_STARTED = "not started"  # the run was interrupted (Ctrl-C) before the operation


def pause(seconds: float) -> None:
    """The default wait, looked up when called so that a test can stand in for the clock."""
    time.sleep(seconds)


@dataclass(frozen=True)
class ExecutionOptions:
    """Bounds on retrying. ``sleep`` is injectable so tests never wait."""

    concurrency: int = 4
    max_attempts: int = 4  # calls of one write whose outcome was ambiguous
    max_throttled: int = 20  # throttled answers tolerated for one operation
    max_retry_after: float = 60.0  # longest single wait Exchange may ask for
    backoff: float = 1.0  # first wait after an ambiguous failure, doubled each time
    confirm_reads: int = 3  # failed read-backs tolerated while settling an ambiguous write
    confirm_wait: float = 30.0  # how long a committed write may take to show (lag)
    max_backoff: float = 8.0
    # How long a write naming an object created in this run waits out "not found": Exchange
    # does not show a new object to every front end at once (``--verify-wait``).
    create_wait: float = 60.0
    sleep: Callable[[float], None] = lambda seconds: pause(seconds)


@dataclass(frozen=True, slots=True)
class OpRef:
    change: Change
    index: int

    @property
    def op(self) -> Operation:
        return self.change.operations[self.index]

    @property
    def address(self) -> str:
        return self.change.address

    @property
    def key(self) -> tuple[str, int]:
        return (self.change.address, self.index)

    @property
    def identity(self) -> str:
        return str(self.op.parameters.get("Identity") or self.op.parameters.get(
            "PrimarySmtpAddress") or self.change.id)

    def describe(self) -> str:
        params = self.op.parameters
        whom = next((str(params[k]) for k in ("User", "Trustee", "Member") if params.get(k)),
                    None)
        return f"{self.op.cmdlet} {self.identity}" + (f" ({whom})" if whom else "")


@dataclass
class OpResult:
    ref: OpRef
    status: str  # succeeded | failed | skipped
    detail: str = ""  # how it succeeded ("already present", ...) or why it was skipped
    message: str | None = None  # Exchange's message when it failed
    calls: int = 0


ProgressCallback = Callable[[OpResult | None, OpRef, int, int], None]


def _principals(value: Any) -> Iterable[str]:
    if isinstance(value, Mapping):
        for part in ("add", "remove"):
            yield from (str(v) for v in value.get(part) or ())
    elif isinstance(value, list | tuple):
        yield from (str(v) for v in value)
    elif value:
        yield str(value)


def _added_principals(value: Any) -> Iterable[str]:
    if isinstance(value, Mapping):
        yield from (str(v) for v in value.get("add") or ())
    else:
        yield from _principals(value)


def build_graph(changes: Sequence[Change]) -> tuple[list[OpRef], dict[tuple[str, int],
                                                                      set[tuple[str, int]]]]:
    """Every operation and the operations each must wait for."""
    refs = [OpRef(c, i) for c in changes for i in range(len(c.operations))]
    preds: dict[tuple[str, int], set[tuple[str, int]]] = {r.key: set() for r in refs}
    creators = creations(changes)
    deleters: dict[str, tuple[str, int]] = {}
    for c in changes:
        if c.action == "delete" and c.operations:
            deleters[c.id.lower()] = (c.address, 0)
    for r in refs:
        if r.index > 0:
            preds[r.key].add((r.address, r.index - 1))
        for name in PRINCIPAL_PARAMETERS:
            value = r.op.parameters.get(name)
            for principal in _added_principals(value):
                creator = creators.get(principal.lower())
                if creator is not None and creator[0] != r.address:
                    preds[r.key].add(creator)
            for principal in _principals(value):
                deleter = deleters.get(principal.lower())
                if deleter is not None and deleter[0] != r.address:
                    preds[deleter].add(r.key)
    _check_acyclic(preds)
    return refs, preds


def _success_detail(cmdlet: str, warnings: Sequence[str]) -> str:
    """How a write that succeeded succeeded, from Exchange's warnings."""
    if any("already present" in w for w in warnings):
        return "already present"
    if cmdlet.startswith(REMOVE_VERBS) and any(
            "isn't" in w or "not present" in w or "doesn't exist" in w for w in warnings):
        return "not present"
    return "done"


def creations(changes: Sequence[Change]) -> dict[str, tuple[str, int]]:
    """Resource id (lower case) -> the operation that creates it, for the changes that do."""
    return {c.id.lower(): (c.address, 0) for c in changes if c.action == "create"
            and c.operations and c.operations[0].cmdlet.startswith("New-")}


def created_before(ref: OpRef, creators: Mapping[str, tuple[str, int]]) -> set[str]:
    """The addresses of changes whose create ``ref`` needs to have happened: its own (after
    the first operation of a create) and those of the principals it names."""
    out = {ref.address} if ref.index > 0 and ref.change.id.lower() in creators else set()
    for name in PRINCIPAL_PARAMETERS:
        for principal in _added_principals(ref.op.parameters.get(name)):
            creator = creators.get(principal.lower())
            if creator is not None:
                out.add(creator[0])
    return out


def _check_acyclic(preds: Mapping[tuple[str, int], set[tuple[str, int]]]) -> None:
    state: dict[tuple[str, int], int] = {}
    for start in preds:
        stack = [(start, iter(preds[start]))]
        if state.get(start):
            continue
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                raise ReconcilerError(
                    f"the plan's operations depend on each other in a cycle ({node[0]} and "
                    f"{nxt[0]}); apply it in two steps")
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(preds[nxt])))


class _RunState:
    """One run's bookkeeping: the operations, what each still waits for, which have ended,
    and which changes' creates ran in this run."""

    def __init__(self, changes: Sequence[Change]) -> None:
        self.refs, preds = build_graph(changes)
        self.creators = creations(changes)
        self.created: set[str] = set()  # changes whose create ran in this run
        self.by_key = {r.key: r for r in self.refs}
        self.succs: dict[tuple[str, int], list[tuple[str, int]]] = {k: [] for k in preds}
        for k, ps in preds.items():
            for p in ps:
                self.succs[p].append(k)
        self.results: dict[tuple[str, int], OpResult] = {}
        self.waiting = {k: set(ps) for k, ps in preds.items()}
        self.total = len(self.refs)


class Executor:
    """Carries out one customer's changes against ``backend``."""

    def __init__(self, backend: Backend, journal: Journal, checksum: str,
                 options: ExecutionOptions, progress: ProgressCallback | None = None) -> None:
        self.backend = backend
        self.journal = journal
        self.checksum = checksum
        self.options = options
        self.progress = progress
        self.recipients = Recipients(backend)
        self.baseline: frozenset[str] = frozenset()
        self.interrupted = False
        # A backend that knows its own read-after-write lag (the sandbox, the emulator) says so;
        # for Exchange it is unknown and the configured allowance applies.
        lag = getattr(backend, "lag_seconds", None)
        self.confirm_wait = (float(lag) if isinstance(lag, int | float)
                             and not isinstance(lag, bool) else options.confirm_wait)

    def run(self, changes: Sequence[Change]) -> list[OpResult]:
        state = _RunState(changes)
        view = self.journal.view(self.checksum)
        if any(r.op.cmdlet.startswith("New-") for r in state.refs):
            # Before any write: which recipients exist, so that a create refused as "address
            # taken" can be told apart from one an earlier attempt of this apply made.
            self.baseline = self.recipients.ids()
        self._drive(state, view)
        return [state.results.get(r.key) or OpResult(r, NOT_STARTED,
                                                     "interrupted before it started")
                for r in state.refs]

    def _drive(self, state: _RunState, view: JournalView) -> None:
        """Run every operation whose predecessors succeeded, as workers come free, until none
        is left or Ctrl-C stops handing out more."""
        ready = [k for k, ps in state.waiting.items() if not ps]
        futures: dict[Future[OpResult], tuple[str, int]] = {}
        width = max(1, self.options.concurrency)
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="apply") as pool:
            try:
                while ready or futures:
                    self._hand_out(pool, ready, futures, width, state, view)
                    if not futures:
                        continue
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for fut in done:
                        futures.pop(fut)
                        ready.extend(self._finish(state, fut.result()))
            except KeyboardInterrupt:
                # Ctrl-C: nothing more goes out; what is on the wire finishes and is journaled.
                self.interrupted = True
                self._settle_in_flight(futures, state.results)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise

    def _hand_out(self, pool: ThreadPoolExecutor, ready: list[tuple[str, int]],
                  futures: dict[Future[OpResult], tuple[str, int]], width: int,
                  state: _RunState, view: JournalView) -> None:
        """Submit ready operations, no more than there are workers: nothing waits in a queue,
        so an interruption stops everything not already on the wire. What the journal says
        is done for this plan ends at once, without a call."""
        while ready and len(futures) < width:
            key = ready.pop(0)
            if key in state.results:
                continue
            ref = state.by_key[key]
            if key in view.done:
                ready.extend(self._finish(state, OpResult(ref, SUCCEEDED,
                                                          "done in an earlier run (journal)")))
                continue
            if self.progress is not None:
                self.progress(None, ref, len(state.results), state.total)
            fresh = bool(created_before(ref, state.creators) & state.created)
            futures[pool.submit(self._run_one, ref, view, fresh)] = key

    def _finish(self, state: _RunState, result: OpResult) -> list[tuple[str, int]]:
        """Record an operation's end; the operations it released, or skip its dependants."""
        results = state.results
        results[result.ref.key] = result
        if result.calls and result.status == SUCCEEDED and result.ref.key in {
                state.creators.get(result.ref.change.id.lower())}:
            state.created.add(result.ref.address)
        if self.progress is not None:
            self.progress(result, result.ref, len(results), state.total)
        ready = []
        if result.status == SUCCEEDED:
            for s in state.succs[result.ref.key]:
                state.waiting[s].discard(result.ref.key)
                if not state.waiting[s] and s not in results:
                    ready.append(s)
        else:
            self._skip_dependants(result, state)
        return ready

    @staticmethod
    def _settle_in_flight(futures: Mapping[Future[OpResult], tuple[str, int]],
                          results: dict[tuple[str, int], OpResult]) -> None:
        for fut, key in futures.items():
            if not fut.cancel():  # running: let it end, so that its end line is written
                results[key] = fut.result()

    def _skip_dependants(self, failed: OpResult, state: _RunState) -> None:
        for s in state.succs[failed.ref.key]:
            if s in state.results:
                continue
            ref = state.by_key[s]
            cause = failed.ref if failed.status == FAILED else None
            reason = (f"depends on {cause.describe()} ({cause.address}), which failed"
                      if cause is not None else failed.detail)
            self.journal.append("skipped", **self._fields(ref), reason=reason)
            self._finish(state, OpResult(ref, SKIPPED, reason))

    def _fields(self, ref: OpRef) -> dict[str, Any]:
        return {"plan": self.checksum, "address": ref.address, "op": ref.index,
                "cmdlet": ref.op.cmdlet, "identity": ref.identity,
                "fingerprint": op_fingerprint(ref.op)}

    # --- one operation ----------------------------------------------------------------------

    def _run_one(self, ref: OpRef, view: JournalView, fresh: bool = False) -> OpResult:
        fields = self._fields(ref)
        self.journal.append("start", **fields)
        try:
            result = self._attempt(ref, view, fields["fingerprint"], fresh)
        except Exception as e:  # one operation's crash must not stop the others
            log.debug("apply: %s raised", ref.describe(), exc_info=True)
            result = OpResult(ref, FAILED, message=str(e) or type(e).__name__)
        if result.status == SUCCEEDED:
            self.journal.append("done", **fields, outcome=result.detail or "done")
        else:
            self.journal.append("failed", **fields, error=result.message)
        return result

    def _attempt(self, ref: OpRef, view: JournalView, fp: str, fresh: bool) -> OpResult:
        """One operation to its end. ``fresh``: it names an object created earlier in this
        run, so "not found" may be Exchange not showing it yet, and is waited out."""
        op, opts = ref.op, self.options
        write = is_write(op.cmdlet)
        resumed = write and (ref.key in view.in_flight or fp in view.unresolved)
        if resumed:
            # An earlier run started this write and died before recording its end.
            settled = self._settle_resumed(ref)
            if settled is not None:
                return settled
        calls = ambiguous = throttled = 0
        delay, unseen = opts.backoff, 0.0
        while True:
            calls += 1
            try:
                result = self.backend.invoke(op.cmdlet, dict(op.parameters))
            except Throttled as e:
                throttled += 1
                if throttled > opts.max_throttled:
                    return OpResult(ref, FAILED, message=f"throttled {throttled} times: "
                                    f"{e.message}", calls=calls)
                opts.sleep(min(e.retry_after if e.retry_after is not None else delay,
                               opts.max_retry_after))
                continue
            except AlreadyExists as e:
                return self._already(ref, e, calls, resumed)
            except (NotPresent, NotFound) as e:
                if (fresh and isinstance(e, NotFound) and unseen < opts.create_wait
                        and not op.cmdlet.startswith(REMOVE_VERBS)):
                    # Not processed: safe to send again once the new object shows.
                    wait_for = min(delay, opts.max_backoff, opts.create_wait - unseen)
                    opts.sleep(wait_for)
                    unseen += wait_for
                    delay *= 2
                    continue
                return self._absent(ref, e, calls, unseen if fresh else None)
            except (AmbiguousWriteError, TransientError) as e:
                ambiguous += 1
                ended = self._after_unknown_outcome(ref, e, write, ambiguous, calls)
                if ended is not None:
                    return ended
                opts.sleep(delay)
                delay *= 2
                continue
            except ExchangeError as e:
                return OpResult(ref, FAILED, message=e.message, calls=calls)
            return OpResult(ref, SUCCEEDED, _success_detail(op.cmdlet, result.warnings),
                            calls=calls)

    def _after_unknown_outcome(self, ref: OpRef, e: ExchangeError, write: bool,
                               ambiguous: int, calls: int) -> OpResult | None:
        """The end of an operation whose answer left its outcome unknown, or None to send it
        again after a backoff: a read is retried up to ``max_attempts``; a write is read back
        first and sent again only when its effect is not there."""
        opts = self.options
        if not write:
            if ambiguous >= opts.max_attempts:
                return OpResult(ref, FAILED, message=e.message, calls=calls)
            return None
        answer = self._confirm(ref)
        if answer is True:
            return OpResult(ref, SUCCEEDED, "committed despite an ambiguous failure "
                            "(read back)", calls=calls)
        if answer is None:
            return OpResult(ref, FAILED, message=f"{e.message}; outcome unknown and "
                            f"reading it back failed, so it was not retried", calls=calls)
        if ambiguous >= opts.max_attempts:
            return OpResult(ref, FAILED, message=f"{e.message} (not committed after "
                            f"{ambiguous} attempts)", calls=calls)
        return None

    def _settle_resumed(self, ref: OpRef) -> OpResult | None:
        """A write an earlier run left in flight: done if read back, None to send it."""
        answer = self._confirm(ref)
        if answer is True:
            return OpResult(ref, SUCCEEDED, "committed by an earlier run (read back)")
        if answer is None:
            return OpResult(ref, FAILED, message="an earlier run left this write's outcome "
                            "unknown and reading it back failed; not replayed")
        return None

    def _already(self, ref: OpRef, e: AlreadyExists, calls: int, resumed: bool) -> OpResult:
        """ "Already there": done for an entry an add makes; a create needs proof."""
        if ref.op.cmdlet.startswith("New-"):
            return self._refused_create(ref, e, calls, resumed)
        if ref.op.cmdlet.startswith(ADD_VERBS):
            return OpResult(ref, SUCCEEDED, "already present", calls=calls)
        return OpResult(ref, FAILED, message=e.message, calls=calls)

    @staticmethod
    def _absent(ref: OpRef, e: ExchangeError, calls: int, unseen: float | None) -> OpResult:
        """Only a removal is done when its object or entry is not there; an Add, Set, Enable
        or Disable answered "not found" did nothing. ``unseen``: how long a new object it
        names was waited for."""
        if ref.op.cmdlet.startswith(REMOVE_VERBS):
            return OpResult(ref, SUCCEEDED, "not present", calls=calls)
        if unseen is not None and isinstance(e, NotFound):
            return OpResult(ref, FAILED, calls=calls, message=(
                f"{e.message} (still not found {unseen:g} s after it was created in this run; "
                f"--verify-wait allows longer)"))
        return OpResult(ref, FAILED, message=e.message, calls=calls)

    def _refused_create(self, ref: OpRef, error: AlreadyExists, calls: int,
                        resumed: bool) -> OpResult:
        """A ``New-*`` Exchange refused because the address is taken: done only when the
        object now at the address is the one this operation creates, read back: its address
        and type, and absent before this apply began (or this very operation was left in
        flight by an earlier run). Otherwise it fails, naming the holder."""
        opts = self.options
        delay, waited = opts.backoff, 0.0
        while True:
            try:
                found = find_holder(self.backend, planned_address(ref.op))
            except ExchangeError as e:
                return OpResult(ref, FAILED, calls=calls, message=(
                    f"{error.message}; reading back who holds the address failed ({e.message}),"
                    f" so it is not counted as done"))
            if found is not None or waited >= self.confirm_wait:
                break
            # Exchange says it is taken but nobody shows yet: maybe our own create, lagging.
            opts.sleep(delay)
            waited += delay
            delay = min(delay * 2, opts.max_backoff)
        if found is None:
            return OpResult(ref, FAILED, calls=calls, message=(
                f"{error.message}; no recipient holding {planned_address(ref.op)} could be read"
                f" back, so it is not counted as done"))
        # Without an id to compare, newness cannot be shown: not proven.
        new = resumed or (bool(found.ids) and not found.ids & self.baseline)
        if is_planned_object(found, ref.op) and new:
            return OpResult(ref, SUCCEEDED, "already present (read back: the object this plan "
                            "creates, new since apply began)", calls=calls)
        return OpResult(ref, FAILED, message=describe(found, ref.op), calls=calls)

    def _confirm(self, ref: OpRef) -> bool | None:
        """Whether the write's effect is visible; None when that cannot be learned.

        A write that committed may not show for a while (Exchange's read-after-write lag), and
        resending it would run it twice, so an effect not seen is looked for again with backoff
        for up to ``confirm_wait`` seconds before the write counts as not committed."""
        if not can_confirm(ref.op.cmdlet):
            return None
        opts = self.options
        delay, waited, failures, throttled = opts.backoff, 0.0, 0, 0
        while True:
            try:
                if confirm(ref.op, self.backend, self.recipients):
                    return True
            except Throttled as e:
                throttled += 1
                if throttled > opts.max_throttled:
                    return None
                opts.sleep(min(e.retry_after or delay, opts.max_retry_after))
                continue
            except (TransientError, AmbiguousWriteError):
                failures += 1
                if failures >= opts.confirm_reads:
                    return None
            except ExchangeError:
                return None
            if waited >= self.confirm_wait:
                return False
            opts.sleep(delay)
            waited += delay
            delay = min(delay * 2, opts.max_backoff)
