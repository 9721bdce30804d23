"""``reconciler import``: adopt a live tenant into YAML."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli.options import live_option, repository_argument, trace_options
from reconciler.cli.output import echo
from reconciler.words import plural


@click.command("import")
@click.option("--customer", "customer", required=True, metavar="ID",
              help="The customer whose tenant to adopt (customers/ID/customer.yaml must exist).")
@repository_argument
@live_option
@trace_options
@click.option("--dry-run", is_flag=True, help="Say what would be added; write nothing.")
def command(customer: str, path: Path, live_source: str | None, dry_run: bool) -> None:
    """Adopt the live mailboxes of a customer's tenant into YAML (the overbuild).

    Every shared mailbox, room and distribution group, and every user mailbox with
    non-default settings, that no file declares yet, is written to imported.yaml at the site
    its placement rules give (customers/ID/imported.yaml when none match). Running it again
    adds only what is missing; existing files keep their comments and order.
    """
    from reconciler.adopt.adopt import import_customer
    from reconciler.cli.plan_cmd import progress_printer

    result = import_customer(path, customer, live_source=live_source, dry_run=dry_run,
                             progress=progress_printer(sys.stderr.isatty()))
    for warning in result.warnings:
        echo(f"Warning: {warning}", err=True)
    verb = "Would add" if dry_run else "Added"
    for relative, ids in sorted(result.added.items()):
        created = " (new file)" if relative in result.created_files else ""
        echo(f"{verb} {len(ids)} to {relative}{created}: {', '.join(ids)}")
    if not result.count:
        echo(f"Nothing to import: every mailbox of {customer} worth declaring is declared "
                   f"already ({result.already_declared}).")
    elif not dry_run:
        echo(f"Imported {plural(result.count, 'resource')} of {customer}; "
                   f"{result.already_declared} were declared already. Check with: "
                   f"reconciler plan {path} --customer {customer}")
