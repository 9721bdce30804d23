"""``reconciler export``: a tenant snapshot (JSON), a flat CSV for auditors, or YAML."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reconciler.cli.options import live_option, repository_argument, trace_options
from reconciler.cli.output import echo
from reconciler.errors import ReconcilerError
from reconciler.safe import json_text

FORMATS = ("json", "csv", "yaml")


@click.command("export")
@click.option("--customer", "customer", required=True, metavar="ID",
              help="The customer whose tenant to export.")
@repository_argument
@live_option
@trace_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True,
              help="json: the tenant snapshot (docs/format.md §9, for --live snapshot:DIR); "
                   "csv: one row per mailbox and grant; yaml: what `reconciler import` would "
                   "write.")
def command(customer: str, path: Path, live_source: str | None, out: Path, fmt: str) -> None:
    """Export a customer's live tenant, read through the same cmdlets as plan."""
    from reconciler.adopt.adopt import customer_state
    from reconciler.adopt.export import snapshot_of, to_csv, to_yaml
    from reconciler.adopt.inventory import inventory_of, read_raw
    from reconciler.cli.plan_cmd import progress_printer
    from reconciler.desired import load
    from reconciler.sources.backends import open_backend

    state = customer_state(load(path), customer)
    backend = open_backend(live_source, state.customer, path)
    try:
        raw = read_raw(backend, workers=state.customer.tenant.concurrency or 4,
                       progress=progress_printer(sys.stderr.isatty()))
    finally:
        backend.close()
    inventory = inventory_of(state.customer, raw)
    for warning in inventory.warnings:
        echo(f"Warning: {warning}", err=True)
    if fmt == "json":
        text = json_text(json.dumps(snapshot_of(state.customer, raw), indent=1,
                                    ensure_ascii=False)) + "\n"
    else:
        # The CSV answers "where is it, who has it": where the YAML declares it, if it does.
        text = to_csv(inventory.locate_as_declared(state)) if fmt == "csv" else to_yaml(inventory)
    try:
        out.write_text(text, encoding="utf-8", newline="")
    except OSError as e:
        raise ReconcilerError(f"cannot write {out}: {e.strerror}") from e
    echo(f"Exported {customer} as {fmt} to {out}.", err=True)
