"""``reconciler customers``: the customers of a repository, for CI fan-out."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("customers")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list of customer ids, for a CI matrix "
                   "(e.g. GitHub Actions: fromJSON(needs.list.outputs.customers)).")
def command(path: Path, as_json: bool) -> None:
    """List the customers declared in PATH, one per line (or as JSON).

    Tenants are independent, so CI can run one plan/apply job per customer in parallel.
    """
    from reconciler.desired import load

    desired = load(path)
    ids = sorted(desired.customers)
    if as_json:
        click.echo(json.dumps(ids))
        return
    for cid in ids:
        state = desired.customers[cid]
        click.echo(f"{cid}\t{state.customer.name}\t{len(state.customer.sites)} site(s)\t"
                   f"{len(state.resources)} resource(s)")
