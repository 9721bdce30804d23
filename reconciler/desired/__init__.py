"""Desired state: the YAML repository, loaded into the model and checked (docs/format.md §1-7).

``load(path)`` is the one entry point: it returns a :class:`~reconciler.model.DesiredState` or
raises :class:`~reconciler.errors.InputError` carrying every problem found, each with its file,
line and column.
"""

from __future__ import annotations

from .loader import derive_alias, load
from .repository import find_root
from .schema import SCHEMA_DIR

__all__ = ["SCHEMA_DIR", "derive_alias", "find_root", "load"]
