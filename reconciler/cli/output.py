"""Terminal conventions shared by every command: colour only when wanted (NO_COLOR,
non-terminals), GitHub Actions annotations, and one way to write output that holds data."""

from __future__ import annotations

import os
import sys
from typing import TextIO

import click

from reconciler.safe import annotation, screen


def use_colour(stream: TextIO | None = None) -> bool:
    """Colour when writing to a terminal, unless NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Write output that may quote data: whatever rendered it, no control character but this
    program's own colours reaches the terminal, and no line starts a workflow command."""
    click.echo(screen(text), err=err, nl=nl)


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def github_source_url(repository_root: str) -> str | None:
    """Under GitHub Actions, the URL under which the desired-state repository's files are
    shown at the commit being checked: a pull request's head (from the event file), else
    GITHUB_SHA. The desired state may lie in a folder of the checkout (GITHUB_WORKSPACE)."""
    if not in_github_actions():
        return None
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repository = os.environ.get("GITHUB_REPOSITORY")
    sha = _pull_request_head() or os.environ.get("GITHUB_SHA")
    if not repository or not sha:
        return None
    folder = os.path.relpath(os.path.abspath(repository_root),
                             os.path.abspath(os.environ.get("GITHUB_WORKSPACE") or "."))
    prefix = "" if folder == "." or folder.startswith("..") else folder.replace(os.sep, "/") + "/"
    return f"{server}/{repository}/blob/{sha}/{prefix}"


def _pull_request_head() -> str | None:
    """On a pull_request event GITHUB_SHA is a merge commit; the head is in the event file."""
    import json

    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            event = json.load(f)
    except (OSError, ValueError):
        return None
    head = (event.get("pull_request") or {}).get("head") or {}
    sha = head.get("sha")
    return sha if isinstance(sha, str) else None


def github_annotation(level: str, message: str, file: str | None = None,
                      line: int | None = None, col: int | None = None) -> str:
    """A workflow command that GitHub shows inline on the pull request's diff, escaped."""
    return annotation(level, message, file=file, line=line, col=col)


def relative(path: str) -> str:
    """``path`` relative to the current directory when it lies below it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    except ValueError:
        return path
