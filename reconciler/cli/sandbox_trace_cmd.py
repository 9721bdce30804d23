"""``reconciler sandbox from-trace``: the tenant a recorded trace read, as a snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.errors import ReconcilerError


@click.command("from-trace")
@click.argument("trace_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The snapshot file to write (e.g. PATH/sandbox/<customer>.json).")
@click.option("--tenant", metavar="ID", help="The tenant to take, when the trace holds several.")
def command(trace_dir: Path, out: Path, tenant: str | None) -> None:
    """Write the tenant a trace (--trace DIR) read as a tenant snapshot (docs/format.md §9).

    The trace must have read a whole tenant, as `reconciler export --trace DIR` does; a plan's
    trace reads only what the plan manages and is refused, naming the first read it lacks."""
    from reconciler.adopt.export import snapshot_from_trace

    snapshot = snapshot_from_trace(trace_dir, tenant)
    try:
        out.write_text(json.dumps(snapshot, indent=1, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    except OSError as e:
        raise ReconcilerError(f"cannot write {out}: {e.strerror}") from e
    click.echo(f"Wrote the tenant {snapshot['tenant']['id']} of {trace_dir} to {out}.", err=True)
