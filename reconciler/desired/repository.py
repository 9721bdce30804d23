"""Finding the repository a command runs in, from any folder inside it, as git finds its own."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# What makes a folder a provider repository (docs/format.md §1).
MARKERS = ("reconciler.yaml", "customers")


def is_repository(folder: Path) -> bool:
    return (folder / "reconciler.yaml").is_file() or (folder / "customers").is_dir()


def find_root(start: Path) -> Path:
    """The nearest folder, ``start`` or one above it, that holds ``reconciler.yaml`` or
    ``customers/``; ``start`` itself when there is none, so that the loader reports what is
    missing there. A root above ``start`` is given relative to the current directory when it is
    above it too, so that messages and advice stay short and can be typed as printed."""
    if is_repository(start):
        return start
    for folder in Path(os.path.abspath(start)).parents:
        if is_repository(folder):
            log.info("repository: %s (found above %s)", folder, start)
            try:
                return Path(os.path.relpath(folder))
            except ValueError:  # another drive on Windows
                return folder
    return start
