"""``reconciler validate``: check a desired-state repository, reporting every problem at once."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli.options import repository_argument
from reconciler.cli.output import echo, github_annotation, in_github_actions
from reconciler.errors import InputError, Problem
from reconciler.safe import json_text, message
from reconciler.words import plural

if TYPE_CHECKING:
    from reconciler.model import DesiredState


def _display(file: str) -> str:
    """A path relative to the current directory when it lies below it, as editors link it."""
    try:
        rel = os.path.relpath(file)
    except ValueError:  # another drive on Windows
        return file
    return file if rel.startswith("..") else rel


def _as_dict(problem: Problem) -> dict[str, object]:
    src = problem.source
    return {
        "file": _display(src.file) if src else None,
        "line": src.line if src else None,
        "column": src.column if src else None,
        "message": problem.message,
    }


@click.command(name="validate")
@repository_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text: one 'file:line:col: message' per problem on stderr. "
              "json: a list of {file, line, column, message} on stdout ([] when valid).")
def command(path: Path, fmt: str) -> None:
    """Check the desired-state repository at PATH (default: the one holding the current folder).

    Every file is checked against the JSON Schemas in schemas/ and then for meaning: identities
    declared once, files in the folder of the customer and site they name, known templates and
    domains, forwarding to one place, calendar roles or rights, secrets only referenced
    (env:VAR or file:path), and more. Every problem is reported in one run, each with its file,
    line and column and what to write instead.

    Exit status: 0 valid, 1 invalid. Under GitHub Actions (GITHUB_ACTIONS=true) each problem is
    also printed as an ::error annotation, which shows inline on the pull request (on stdout;
    on stderr with --format json, so that stdout stays JSON).

    \b
    Examples:
      reconciler validate examples/desired-state
      reconciler validate --format json > problems.json
    """
    state, problems, warnings = _check(path)
    if fmt == "json":
        echo(json_text(json.dumps([_as_dict(p) for p in problems], indent=2,
                                  ensure_ascii=False)))
    else:
        _report_text(path, state, problems, warnings)
    if in_github_actions():
        # GitHub reads workflow commands from both streams; keep stdout pure JSON when asked.
        _annotate(problems, err=fmt == "json")
    if problems or state is None:
        sys.exit(1)


def _check(path: Path) -> tuple[DesiredState | None, list[Problem], list[Problem]]:
    """The loaded repository (None when invalid), its problems and its warnings."""
    # Imported here so that `reconciler --help` stays fast.
    from reconciler.desired import load

    try:
        state = load(path)
    except InputError as e:
        return None, e.problems, e.warnings
    except Exception as e:  # a defect, not the user's input: one line, details with -vv
        logging.getLogger(__name__).debug("validate failed", exc_info=True)
        raise click.ClickException(
            f"internal error while validating {path}: {type(e).__name__}: {message(str(e))} "
            "(please report it; run with -vv for details)") from None
    return state, [], state.warnings


def _where(problem: Problem) -> str:
    """``file:line:col: `` for a problem with a source, else nothing."""
    if not problem.source:
        return ""
    where = _as_dict(problem)
    return f"{where['file']}:{where['line']}:{where['column']}: "


def _report_text(path: Path, state: DesiredState | None, problems: list[Problem],
                 warnings: list[Problem]) -> None:
    for w in warnings:
        echo(message(f"{_where(w)}warning: {w.message}"), err=True)
    for p in problems:
        echo(message(f"{_where(p)}error: {p.message}"), err=True)
    if problems or state is None:
        echo(f"{plural(len(problems), 'problem')} found in {path}.", err=True)
    else:
        n = sum(len(c.resources) for c in state.customers.values())
        echo(f"{path}: valid ({plural(len(state.customers), 'customer')}, "
             f"{plural(n, 'resource')}).", err=True)


def _annotate(problems: list[Problem], err: bool) -> None:
    """Each problem as a GitHub ::error annotation, shown inline on the pull request."""
    for p in problems:
        src = p.source
        click.echo(github_annotation("error", p.message, _display(src.file) if src else None,
                                     src.line if src else None, src.column if src else None),
                   err=err)
