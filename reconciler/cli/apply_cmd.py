"""``reconciler apply``: carry out a saved plan, or plan and apply in one go."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from reconciler.cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from reconciler.cli.options import live_option, repository_option, trace_options
from reconciler.cli.output import echo, use_colour
from reconciler.errors import ReconcilerError
from reconciler.model import location_label
from reconciler.safe import message, visible
from reconciler.words import plural


def apply_progress(stream: TextIO):  # type: ignore[no-untyped-def]
    """On a terminal, one line redrawn with done/total and the current resource; elsewhere
    (CI), one plain log line per finished operation."""
    tty = hasattr(stream, "isatty") and stream.isatty()

    def show(result, ref, done: int, total: int) -> None:  # type: ignore[no-untyped-def]
        if tty:
            end = "\n" if result is not None and done == total else ""
            stream.write(f"\r\x1b[2KApplying: {done}/{total} {visible(ref.address)}: "
                         f"{visible(ref.op.cmdlet)}{end}")
            stream.flush()
        elif result is not None:
            how = f" ({result.detail})" if result.detail and result.detail != "done" else ""
            why = f": {result.message}" if result.message else ""
            stream.write(message(f"apply [{done}/{total}] {result.status} {ref.address}: "
                                 f"{ref.describe()}{how}{why}") + "\n")
            stream.flush()

    return show


def nothing_to_do() -> str:
    """The summary when there is nothing to apply: the same line as every other outcome."""
    return "Apply complete: 0 succeeded, 0 failed, 0 skipped; nothing to do.\n"


def _moves(plan) -> list[str]:  # type: ignore[no-untyped-def]
    """What apply did for each move: nothing in Exchange, the new location recorded."""
    if plan is None:
        return []
    return [f"  {c.address}: from {location_label(c.moved_from)}" for c in plan.actionable
            if c.moved_from]


def render_report(report, plan=None) -> str:  # type: ignore[no-untyped-def]
    """The apply summary: exactly what succeeded, failed and was skipped, and the moves
    recorded (a move has no Exchange call, so only the record says it happened)."""
    moves = _moves(plan)
    out = [_headline(report, moves)]
    out += _section("Moved (no Exchange call; the new location is recorded for the next plan):",
                    moves)
    out += _section("Succeeded:", [
        f"  {r.ref.address}: {r.ref.describe()}"
        + (f" ({r.detail})" if r.detail and r.detail != "done" else "")
        for r in report.succeeded])
    out += _section("Failed:", [f"  {r.ref.address}: {r.ref.describe()}: {r.message}"
                                for r in report.failed])
    out += _section("Skipped (something they depend on failed):",
                    [f"  {r.ref.address}: {r.ref.describe()}: {r.detail}"
                     for r in report.skipped])
    out += _section("Applied, not yet visible (Exchange has not shown these writes yet; a plan "
                    "made in the next minutes shows them as pending propagation):",
                    [f"  {r.ref.address}: {r.ref.describe()}" for r in report.not_visible])
    out += _warnings(report)
    out += _section("Not started (interrupted):",
                    [f"  {r.ref.address}: {r.ref.describe()}" for r in report.not_started])
    if report.interrupted:
        out += ["", "Interrupted: run the same command again to finish (what is done is not "
                "done twice)."]
    elif report.failed or report.skipped:
        out += ["", "Run plan again: it shows only what remains to do."]
    return "\n".join(message(line) for line in out) + "\n"


def _headline(report, moves: list[str]) -> str:  # type: ignore[no-untyped-def]
    """The first line: how the apply ended and how many operations ended each way."""
    succeeded = report.succeeded
    already = [r for r in succeeded if r.detail.startswith(("already present", "not present"))]
    earlier = [r for r in succeeded if "earlier run" in r.detail]
    state = "interrupted" if report.interrupted else "complete" if report.ok else "incomplete"
    head = f"Apply {state}: {len(succeeded)} succeeded"
    extras = []
    if already:
        extras.append(f"{len(already)} already in place")
    if earlier:
        extras.append(f"{len(earlier)} done by an earlier run")
    if extras:
        head += f" ({', '.join(extras)})"
    head += f", {len(report.failed)} failed, {len(report.skipped)} skipped"
    if report.interrupted:
        head += f", {len(report.not_started)} not started"
    head += f"; {plural(len(moves), 'move')} recorded." if moves else "."
    return head


def _section(title: str, lines: list[str]) -> list[str]:
    """A titled list after a blank line; nothing when there is nothing to list."""
    return ["", title, *lines] if lines else []


def _warnings(report) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for c in report.customers:
        out += [f"Warning: {line}" for line in c.warnings]
        out += [f"Warning: {line}" for line in c.still_differs]
        if c.verify_error:
            out.append(f"Warning: {c.customer}: could not read back to verify: {c.verify_error}")
    return out


def _verify_saved(target: Path, plan, desired, backend_for, root: Path,  # type: ignore[no-untyped-def]
                  journals: Path, allow_large_changes: bool) -> None:
    """Exit unless the saved plan is exactly what planning its resources now gives (or, when
    it was carried out already, say so and exit 0 when nothing moved since)."""
    from reconciler.apply.saved import recheck_saved
    from reconciler.live.applied import AppliedState
    from reconciler.live.journal import Journal

    unknown = sorted({c.customer for c in plan.actionable} - set(desired.customers))
    if unknown:
        raise ReconcilerError(
            f"plan refused: it changes {plural(len(unknown), 'customer')} "
            f"({', '.join(unknown)}), which {root} does not declare; give the repository it "
            "was made from with --path")
    applied = AppliedState.load(root, plan.customers)
    views = {cid: Journal(journals, cid).view(plan.checksum) for cid in plan.customers}
    try:
        recheck = recheck_saved(plan, desired, backend_for, applied, views)
    except ReconcilerError as e:
        raise ReconcilerError(f"plan refused: could not re-read the state it was made "
                              f"against, so cannot tell whether it is current: {e}") from e
    if recheck.applied_on is not None and not recheck.differences:
        echo(f"{target} was already applied on {recheck.applied_on}; nothing to do.")
        echo(nothing_to_do(), nl=False)
        sys.exit(EXIT_OK)
    if recheck.refusals and not allow_large_changes:
        for refusal in recheck.refusals:
            echo(f"error: plan refused: {message(refusal.message)}", err=True)
        echo("Nothing was changed. If the plan is what you want, run again with "
                   "--allow-large-changes.", err=True)
        sys.exit(EXIT_ERROR)
    if recheck.differences:
        why = (f"it was applied on {recheck.applied_on}, and since then" if recheck.applied_on
               else "since it was made,")
        echo(f"error: plan refused: {target} is stale; {why} the live or desired state "
                   f"has changed for:", err=True)
        for line in recheck.differences:
            echo(f"  {message(line)}", err=True)
        echo("Nothing was changed. Make a new plan and review it.", err=True)
        sys.exit(EXIT_ERROR)


@click.command("apply")
@click.argument("target", type=click.Path(path_type=Path), default=".")
@repository_option
@live_option
@trace_options
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="When planning PATH: only this customer (repeatable).")
@click.option("--auto-approve", is_flag=True,
              help="When planning PATH: apply without asking.")
@click.option("--allow-large-changes", is_flag=True,
              help="Accept a plan over the max_deletes / max_change_percent limits.")
@click.option("--journal", "journal_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory of the apply journal. Default: REPO/.reconciler/journal.")
@click.option("--lock-wait", type=click.FloatRange(min=0), default=0.0, show_default=True,
              metavar="SECONDS",
              help="How long to wait for another apply of the same customer to finish before "
                   "giving up (exit 1, naming it).")
@click.option("--verify-wait", type=click.FloatRange(min=0), default=60.0, show_default=True,
              metavar="SECONDS",
              help="How long to keep reading back writes Exchange does not show yet, and to "
                   "wait out 'not found' on a write naming an object created in this run.")
def command(target: Path, repo: Path | None, live_source: str | None,
            customers: tuple[str, ...], auto_approve: bool, allow_large_changes: bool,
            journal_dir: Path | None, lock_wait: float, verify_wait: float) -> None:
    """Apply a saved plan (PLAN.json), or plan PATH and apply it (--auto-approve).

    A saved plan is applied exactly as it is, and refused (nothing changed) when its format is
    unknown, its checksum does not match, or the live or desired state it was made against has
    moved since. Operations run in dependency order, journaled before and after each call so
    that an interrupted apply never runs a write twice; the result is read back to verify it.

    Exit codes: 0 applied (or nothing to do); 1 refused or failed (the summary says which
    operations succeeded, failed and were skipped).
    """
    from reconciler.apply.lock import customer_locks
    from reconciler.apply.saved import load_saved_plan
    from reconciler.cli.plan_cmd import progress_printer
    from reconciler.desired import find_root, load
    from reconciler.plan.planner import make_plan, select_customers
    from reconciler.render.text import render_text

    saved_mode = target.is_file()
    if saved_mode:
        root = repo or find_root(Path("."))
        if customers:
            raise click.UsageError("--customer selects what to plan; a saved plan is applied "
                                   "as it is")
        saved = load_saved_plan(target)
        locked = sorted({c.customer for c in saved.plan.actionable})
    else:
        if not target.is_dir():
            raise ReconcilerError(f"{target} is neither a saved plan nor a desired-state "
                                  f"directory")
        root = find_root(target)
        locked = select_customers(load(root), customers or None)
    # Held from before the first read until exit: a second apply of these customers waits.
    with customer_locks(root, locked, lock_wait):
        if saved_mode:
            plan = saved.plan
        else:
            plan = make_plan(root, live_source=live_source, customers=customers or None,
                             progress=progress_printer(sys.stderr.isatty())).plan
            echo(render_text(plan, colour=use_colour()), nl=False)
        _apply(plan, target if saved_mode else None, root, live_source, auto_approve,
               allow_large_changes, journal_dir, verify_wait)


def _apply(plan, target: Path | None, root: Path, live_source: str | None,  # type: ignore[no-untyped-def]
           auto_approve: bool, allow_large_changes: bool, journal_dir: Path | None,
           verify_wait: float) -> None:
    """Check, ask and apply ``plan``; exits with the command's exit code."""
    from reconciler.apply.executor import ExecutionOptions
    from reconciler.apply.runner import ApplyOptions, apply_plan
    from reconciler.cli.plan_cmd import refuse_over_limits
    from reconciler.desired import load
    from reconciler.live.journal import JOURNAL_DIRECTORY
    from reconciler.sources.backends import open_backend

    refuse_over_limits(plan, allow_large_changes, "Nothing was changed.")
    if not plan.has_changes:
        if target is not None:
            echo("No changes. The saved plan has nothing to apply.")
        echo(nothing_to_do(), nl=False)
        sys.exit(EXIT_OK)

    desired = load(root)

    def backend_for(state):  # type: ignore[no-untyped-def]
        return open_backend(live_source, state.customer, root)

    journals = journal_dir or root / JOURNAL_DIRECTORY
    if target is not None:
        _verify_saved(target, plan, desired, backend_for, root, journals, allow_large_changes)
    elif not auto_approve:
        _ask()
    attempts, delay, waited = 0, 2.0, 0.0
    while waited + delay <= verify_wait:
        waited += delay
        attempts += 1
        delay = min(delay * 2, 30.0)
    options = ApplyOptions(journal_dir=journals, verify_attempts=attempts,
                           execution=ExecutionOptions(create_wait=verify_wait))
    report = apply_plan(plan, desired, backend_for, root=root, options=options,
                        progress=apply_progress(sys.stderr))
    echo(render_report(report, plan), nl=False)
    sys.exit(EXIT_INTERRUPTED if report.interrupted else EXIT_OK if report.ok else EXIT_ERROR)


def _ask() -> None:
    """Approval on the terminal; with none (CI, a pipe), refuse: nobody reviewed the plan."""
    if not sys.stdin.isatty():
        echo("error: not applying without approval: no terminal to ask on. Use "
                   "--auto-approve, or save a plan with `reconciler plan --out` and "
                   "apply that.", err=True)
        sys.exit(EXIT_ERROR)
    if not click.confirm("Apply these changes?", default=False):
        echo("Apply cancelled; nothing was changed.", err=True)
        sys.exit(EXIT_ERROR)
