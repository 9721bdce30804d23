"""Moved: the tenant snapshot format is :mod:`reconciler.live.snapshot_format` (read by the live
backends, export and the emulator alike). These names stay importable from here."""

from reconciler.live.snapshot_format import (
    SCHEMA,
    SNAPSHOT_FORMAT,
    SnapshotError,
    load_snapshot,
    schema_json,
    validate_snapshot,
)

__all__ = ["SCHEMA", "SNAPSHOT_FORMAT", "SnapshotError", "load_snapshot", "schema_json",
           "validate_snapshot"]
