"""Writing a file all or nothing: a reader, or a crash, sees the old file or the new one.

Used for the sandbox's tenant files and the applied-state record."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


_UMASK = _read_umask()


def write_snapshot_atomically(path: Path, snapshot: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``snapshot`` as JSON, all or nothing."""
    atomic_write_text(Path(path), json.dumps(snapshot, indent=1, ensure_ascii=False) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a reader, or a crash, sees the old file or the new one,
    never a mixture."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file private (0600); keep the mode the file had, or the usual one.
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_UMASK
        if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename itself is durable only once the directory entry is on disk.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
