"""``reconciler plan``: show what apply would change."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.cli.options import (
    live_option,
    no_cache_option,
    repository_argument,
    trace_options,
)
from reconciler.cli.output import echo, github_source_url, use_colour
from reconciler.errors import ReconcilerError
from reconciler.plan.plan import Plan
from reconciler.safe import message, visible

FORMATS = ("text", "markdown", "json")


def progress_printer(enabled: bool):  # type: ignore[no-untyped-def]
    """A callback that shows read progress on a terminal's stderr, and nothing otherwise."""
    if not enabled:
        return None

    def show(current: str, done: int, total: int) -> None:
        end = "\n" if done == total else ""
        sys.stderr.write(f"\r\x1b[2KReading live state: {done}/{total} {visible(current)}{end}")
        sys.stderr.flush()

    return show


def refuse_over_limits(plan: Plan, allowed: bool, hint: str) -> None:
    """Exit 1, saying why, when the plan exceeds a safety limit and that was not allowed."""
    if not plan.refusals or allowed:
        return
    for refusal in plan.refusals:
        echo(f"error: plan refused: {message(refusal.message)}", err=True)
    echo(f"{hint} If the plan is what you want, run again with --allow-large-changes.",
               err=True)
    sys.exit(EXIT_ERROR)


@click.command("plan")
@repository_argument
@live_option
@trace_options
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Plan only this customer (repeatable).")
@click.option("--changed-since", metavar="GIT_REF",
              help="Plan only resources whose YAML differs from GIT_REF, reading live state "
                   "for those alone (a pull request's plan).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the plan as JSON, for `reconciler apply PLAN.json`.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Output format on stdout.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 2 when there are changes, 0 when there are none, 1 on error.")
@click.option("--allow-large-changes", is_flag=True,
              help="Accept a plan over the max_deletes / max_change_percent limits.")
@no_cache_option
def command(path: Path, live_source: str | None, customers: tuple[str, ...],
            changed_since: str | None, out: Path | None, fmt: str, detailed_exitcode: bool,
            allow_large_changes: bool, no_cache: bool) -> None:
    """Compare the desired state in PATH with live Exchange and show the changes.

    Each change lists the exact Exchange calls apply will make. The plan is deterministic: the
    same YAML and the same live state give byte-identical JSON. Save it with --out and apply
    exactly that plan later; apply refuses it if live state has moved since.

    Unmanaged resources (live, declared nowhere) are reported, never changed, unless the
    customer's policy says prune: true.
    """
    from reconciler.plan.planner import make_plan
    from reconciler.render.common import RenderContext
    from reconciler.render.markdown import render_markdown
    from reconciler.render.text import render_text

    progress = progress_printer(sys.stderr.isatty() and fmt == "text")
    result = make_plan(path, live_source=live_source, customers=customers or None,
                       changed_since=changed_since, progress=progress,
                       use_cache=not no_cache)
    plan = result.plan
    context = RenderContext(changed_since=changed_since, in_scope=result.in_scope,
                            source_url=github_source_url(str(path)))
    if fmt == "json":
        echo(plan.to_json(), nl=False)
    elif fmt == "markdown":
        echo(render_markdown(plan, context=context))
    else:
        echo(render_text(plan, colour=use_colour(), context=context), nl=False)

    refuse_over_limits(plan, allow_large_changes, "Review the plan.")
    if out is not None:
        try:
            out.write_text(plan.to_json(), encoding="utf-8")
        except OSError as e:
            raise ReconcilerError(f"cannot write the plan to {out}: {e.strerror}") from e
        echo(f"Saved the plan to {out}. Apply it with: reconciler apply {out}", err=True)
    sys.exit(EXIT_CHANGES if detailed_exitcode and plan.has_changes else EXIT_OK)
