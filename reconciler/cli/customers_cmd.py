"""``reconciler customers``: the customers of a repository, for CI fan-out."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.cli.options import repository_argument
from reconciler.cli.output import echo
from reconciler.words import plural


@click.command("customers")
@repository_argument
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list of customer ids, for a CI matrix "
                   "(e.g. GitHub Actions: fromJSON(needs.list.outputs.customers)).")
@click.option("--key-variable", metavar="ID",
              help="Print the name of the environment variable customer ID's certificate_key "
                   "names (env:VAR), so CI can put the key from its secret there; prints "
                   "nothing when the key is a file:.")
def command(path: Path, as_json: bool, key_variable: str | None) -> None:
    """List the customers declared in PATH, one per line (or as JSON).

    Tenants are independent, so CI can run one plan/apply job per customer in parallel.
    """
    from reconciler.desired import load
    from reconciler.plan.planner import select_customers

    desired = load(path)
    if key_variable is not None:
        (cid,) = select_customers(desired, [key_variable])
        reference = desired.customers[cid].customer.tenant.certificate_key or ""
        if reference.startswith("env:"):
            echo(reference.removeprefix("env:"))
        return
    ids = sorted(desired.customers)
    if as_json:
        echo(json.dumps(ids))
        return
    for cid in ids:
        state = desired.customers[cid]
        echo(f"{cid}\t{state.customer.name}\t{plural(len(state.customer.sites), 'site')}\t"
                   f"{plural(len(state.resources), 'resource')}")
