"""``reconciler drift``: what differs live from the desired state, and why."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from reconciler.cli import EXIT_CHANGES, EXIT_OK
from reconciler.cli.options import (
    live_option,
    no_cache_option,
    repository_argument,
    trace_options,
)
from reconciler.cli.output import echo
from reconciler.errors import ReconcilerError

FORMATS = ("text", "markdown", "json", "html")


@click.command("drift")
@repository_argument
@live_option
@trace_options
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Report only this customer (repeatable).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Report format.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to FILE instead of stdout.")
@click.option("--applied-ref", metavar="REF",
              help="The git ref of the last apply; {customer} is replaced by each customer's "
                   "id. Default: refs/tags/reconciler/applied/{customer}.")
@no_cache_option
def command(path: Path, live_source: str | None, customers: tuple[str, ...], fmt: str,
            out: Path | None, applied_ref: str | None, no_cache: bool) -> None:
    """Compare live Exchange with the desired state in PATH and classify each difference.

    Classes: changed outside git (live differs from what was last applied), not yet applied
    (the YAML changed since the last apply), pending propagation (applied, not yet visible;
    from apply's record) and unmanaged (live, declared nowhere).

    Exit codes: 0 no drift (pending propagation alone is not drift), 2 drift, 1 error.
    """
    from reconciler.cli.plan_cmd import progress_printer
    from reconciler.drift import make_drift_report
    from reconciler.drift.render import render_markdown, render_text

    report = make_drift_report(path, live_source=live_source, customers=customers or None,
                               applied_ref=applied_ref,
                               progress=progress_printer(sys.stderr.isatty()),
                               use_cache=not no_cache)
    if fmt == "json":
        text = report.to_json()
    elif fmt == "markdown":
        text = render_markdown(report)
    elif fmt == "html":
        from reconciler.drift.page import render_html

        made = datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ")
        text = render_html(report, made_at=made)
    else:
        text = render_text(report)
    if out is None:
        echo(text, nl=False)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as e:
            raise ReconcilerError(f"cannot write the report to {out}: {e.strerror}") from e
        echo(f"Wrote the drift report to {out}. {report.summary_line()}", err=True)
    sys.exit(EXIT_CHANGES if report.has_drift else EXIT_OK)
