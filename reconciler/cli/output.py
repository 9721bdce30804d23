"""Terminal conventions shared by every command: colour only when wanted (NO_COLOR,
non-terminals), GitHub Actions annotations."""

from __future__ import annotations

import os
import sys
from typing import TextIO


def use_colour(stream: TextIO | None = None) -> bool:
    """Colour when writing to a terminal, unless NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def github_annotation(level: str, message: str, file: str | None = None,
                      line: int | None = None, col: int | None = None) -> str:
    """A workflow command that GitHub shows inline on the pull request's diff."""
    props = []
    if file:
        props.append(f"file={file}")
    if line:
        props.append(f"line={line}")
    if col:
        props.append(f"col={col}")
    escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::{level} {','.join(props)}::{escaped}" if props else f"::{level}::{escaped}"


def relative(path: str) -> str:
    """``path`` relative to the current directory when it lies below it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    except ValueError:
        return path
