"""``reconciler access``: who can reach a mailbox, and what a user can reach."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.options import repository_argument, trace_options
from reconciler.cli.output import echo
from reconciler.errors import ReconcilerError

FORMATS = ("text", "json", "csv")


@click.command("access")
@repository_argument
@click.option("--mailbox", metavar="ADDR",
              help="Who can read, send as or send on behalf of this mailbox (or group).")
@click.option("--user", metavar="ADDR", help="What this user can reach.")
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Look only at this customer (repeatable). Default: every customer.")
@click.option("--live", "live_source", metavar="SOURCE",
              help="Answer from live state read through SOURCE (exchange, sandbox[:DIR], "
                   "snapshot:DIR) instead of the desired state. With --user, reads each selected "
                   "tenant in full: give --customer on large tenants.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@trace_options
def command(path: Path, mailbox: str | None, user: str | None, customers: tuple[str, ...],
            live_source: str | None, fmt: str) -> None:
    """Who can reach a mailbox (--mailbox), or what a user can reach (--user).

    Rights reported: FullAccess (read and manage), SendAs, SendOnBehalf, calendar entries,
    group ownership and membership, and forwarding; grants to a group reach its members
    (shown "via" the group). From the desired state by default, or live with --live.
    """
    from reconciler.adopt import access
    from reconciler.desired import load
    from reconciler.plan.planner import select_customers

    if (mailbox is None) == (user is None):
        raise ReconcilerError("give exactly one of --mailbox ADDR or --user ADDR")
    desired = load(path)
    indexes = []
    for cid in select_customers(desired, customers or None):
        state = desired.customers[cid]
        if live_source is None:
            indexes.append(access.AccessIndex(state.resources.values(), root=desired.root))
            continue
        from reconciler.sources.backends import open_backend

        backend = open_backend(live_source, state.customer, path)
        try:
            indexes.append(access.live_index(state.customer, backend, mailbox=mailbox,
                                             workers=state.customer.tenant.concurrency or 4,
                                             desired=state))
        finally:
            backend.close()
    origin = "live state" if live_source is not None else "desired state"
    resource = None
    if mailbox is not None:
        found = [(i, i.find(mailbox)) for i in indexes if i.find(mailbox) is not None]
        if not found:
            where = "in the tenant" if live_source is not None else "in the desired state"
            raise ReconcilerError(f"no mailbox or group {mailbox} {where}")
        index, resource = found[0]
        rows = index.on_mailbox(mailbox)
        query = {"mailbox": mailbox}
    else:
        assert user is not None
        rows = sorted((a for i in indexes for a in i.of_user(user)), key=access.order_key)
        query = {"user": user}
    if fmt == "json":
        echo(access.to_json(rows, query, origin), nl=False)
    elif fmt == "csv":
        echo(access.to_csv(rows), nl=False)
    else:
        echo(access.render_text(rows, mailbox=mailbox, user=user, origin=origin,
                                      resource=resource), nl=False)
