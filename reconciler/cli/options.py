"""Arguments and options that several commands share, defined once so that they read and
behave the same everywhere."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def _repository(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """The repository holding PATH: PATH itself or the nearest folder above it that holds
    reconciler.yaml or customers/, as git finds its own from a subfolder."""
    from reconciler.desired.repository import find_root

    return None if value is None else find_root(value)


repository_argument = click.argument(
    "path", type=click.Path(file_okay=False, path_type=Path), default=".",
    callback=_repository)
"""PATH: the repository, found from any folder inside it (default: the current one)."""

repository_option = click.option(
    "--path", "repo", type=click.Path(file_okay=False, path_type=Path), callback=_repository,
    help="The desired-state repository a saved plan was made from (its customers' tenant "
         "settings). Default: the repository holding the current folder.")

no_cache_option = click.option(
    "--no-cache", is_flag=True,
    help="Parse every YAML file, neither reading nor writing the parse cache in "
         ".reconciler/cache/ (a file's cached result is used only while its bytes and the "
         "product's version are the same).")

live_option = click.option(
    "--live", "live_source", metavar="SOURCE",
    help="Where live state comes from, for every customer: exchange, sandbox[:DIR] or "
         "snapshot:DIR. Default: each customer's tenant.connection.")


def trace_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--trace DIR`` and ``--trace-redact/--no-trace-redact``: record every round trip to
    Exchange Online's gateway while the command runs (reconciler.live.exchange.trace)."""

    @functools.wraps(command)
    def run(*args: Any, trace_dir: Path | None, trace_redact: bool, **kwargs: Any) -> Any:
        if trace_dir is None:
            return command(*args, **kwargs)
        from reconciler.live.exchange.trace import recording

        with recording(trace_dir, redact=trace_redact) as writer:
            try:
                return command(*args, **kwargs)
            finally:  # also when the command exits with its code
                writer.close()  # first, so that the summary says whether the mapping was saved
                click.echo(writer.summary(), err=True)

    run = click.option(
        "--trace-redact/--no-trace-redact", default=True, show_default=True,
        help="Replace the tenant's addresses, names and GUIDs in the trace by stable "
             "pseudonyms (the mapping is written beside DIR, as DIR.pseudonyms.json: keep it, "
             "never share it).")(run)
    return click.option(
        "--trace", "trace_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
        help="Record every request to Exchange Online and its answer in DIR/trace.jsonl (no "
             "token, key or sign-in), for a bug report or a replay "
             "(reconciler sandbox serve --replay DIR).")(run)
