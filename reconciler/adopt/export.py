"""``reconciler export``: a tenant as a snapshot (JSON), a flat table for auditors (CSV), or
the YAML that ``reconciler import`` would write.

Everything is read through the backend's cmdlets (:func:`~reconciler.adopt.inventory.read_raw`),
so an export of Exchange Online and one of the sandbox are made the same way, and a snapshot
exported from either serves ``--live snapshot:DIR`` plans offline.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.adopt.adopt import location_dir, plan_import
from reconciler.adopt.inventory import (
    Inventory,
    RawTenant,
    member_principal,
    non_default_calendar,
    primary_address,
    read_raw,
)
from reconciler.adopt.yamlout import dump
from reconciler.emulator import SNAPSHOT_FORMAT, validate_snapshot
from reconciler.errors import ReconcilerError
from reconciler.model import (
    Customer,
    CustomerState,
    DistributionGroup,
    Mailbox,
    Resource,
    RoomMailbox,
    SharedMailbox,
    Tenant,
    UserMailbox,
)

CSV_COLUMNS = ("customer", "site", "type", "mailbox", "display_name", "record", "grant_kind",
               "principal", "rights", "delegate", "private_items", "automapping")
# A cell starting with one of these is a formula to a spreadsheet: exported data must never run.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def snapshot_of(customer: Customer, raw: RawTenant) -> dict[str, Any]:
    """The tenant as a snapshot (docs/format.md §9), checked against its schema."""
    domains = [str(d.get("DomainName") or d.get("Name")) for d in raw.accepted_domains]
    default = next((str(d.get("DomainName") or d.get("Name")) for d in raw.accepted_domains
                    if d.get("Default")), None)
    tenant: dict[str, Any] = {
        "id": customer.tenant.id,
        "initial_domain": customer.tenant.initial_domain,
        "accepted_domains": domains or [customer.tenant.initial_domain],
        "retention_policies": [str(p.get("Name")) for p in raw.retention_policies],
    }
    if default:
        tenant["default_domain"] = default
    snapshot: dict[str, Any] = {
        "format": SNAPSHOT_FORMAT,
        "tenant": tenant,
        "recipients": raw.recipients,
        "mailboxes": raw.mailboxes,
        "mailbox_permissions": [row for m in raw.mailboxes
                                for row in raw.full_access.get(primary_address(m)) or ()],
        "recipient_permissions": raw.send_as,
        "mailbox_folder_permissions": [row for m in raw.mailboxes
                                       for row in raw.calendar.get(primary_address(m)) or ()],
        "auto_reply_configurations": [row for m in raw.mailboxes
                                      for row in raw.auto_reply.get(primary_address(m)) or ()],
        "calendar_processing": [row for m in raw.mailboxes
                                for row in raw.booking.get(primary_address(m)) or ()],
        "distribution_groups": raw.groups,
        "distribution_group_members": [
            {"Group": str(g.get("Identity") or g.get("PrimarySmtpAddress")),
             "Member": member_principal(row)}
            for g in raw.groups for row in raw.members.get(primary_address(g)) or ()],
    }
    validate_snapshot(snapshot)
    return snapshot


def snapshot_from_trace(directory: Path, tenant: str | None = None) -> dict[str, Any]:
    """The tenant a trace (``--trace DIR``) read, as a snapshot (docs/format.md §9): its recorded
    answers are read back through the same cmdlets as ``export``. A trace that did not read a
    whole tenant (a plan reads only what it manages) is refused, naming the first read it
    lacks; ``reconciler export --trace DIR`` records one that does."""
    from reconciler.emulator.replay import TraceAnswers, replay_gateway
    from reconciler.live.backend import ExchangeError

    answers = TraceAnswers.load(directory)
    gateway = replay_gateway(answers, tenant)
    try:
        raw = read_raw(gateway, workers=1)
    except ExchangeError as e:
        raise ReconcilerError(
            f"the trace in {directory} does not hold a whole tenant: {e}. Record one with "
            "`reconciler export --customer ID --out FILE --trace DIR`.") from None
    domains = [str(d.get("DomainName") or d.get("Name")) for d in raw.accepted_domains]
    initial = next((str(d.get("DomainName") or d.get("Name")) for d in raw.accepted_domains
                    if d.get("InitialDomain")), None) or next(
        (d for d in domains if d.lower().endswith(".onmicrosoft.com")), None)
    if initial is None:
        raise ReconcilerError(f"the trace in {directory} does not say the tenant's initial "
                              "domain (no Get-AcceptedDomain answer names one)")
    customer = Customer("trace", "trace", Tenant(gateway.tenant_id, initial), tuple(domains))
    return snapshot_of(customer, raw)


# --- CSV ----------------------------------------------------------------------------------------


def _type_name(resource: Resource) -> str:
    return resource.type.value


def csv_rows(inventory: Inventory) -> Iterator[dict[str, str]]:
    """One row per mailbox or group (``record`` = mailbox), then one per grant on it
    (``record`` = grant): each access right, calendar entry, owner, member and forwarding."""
    for rid in sorted(inventory.resources):
        resource = inventory.resources[rid]
        base = {"customer": resource.located_at.customer, "site": resource.located_at.site,
                "type": _type_name(resource), "mailbox": inventory.addresses.get(rid, rid),
                "display_name": _display_name(resource)}
        yield {**base, "record": "mailbox"}
        for grant in sorted(resource.permissions or (), key=lambda g: g.user):
            for right in sorted(grant.access):
                row = {**base, "record": "grant", "grant_kind": right, "principal": grant.user,
                       "rights": right}
                if right == "FullAccess" and grant.automapping is not None:
                    row["automapping"] = str(grant.automapping).lower()
                yield row
        if isinstance(resource, Mailbox):
            for cal in non_default_calendar(resource.calendar_permissions):
                yield {**base, "record": "grant", "grant_kind": "Calendar",
                       "principal": cal.user, "rights": "+".join(cal.access_rights),
                       "delegate": str(cal.delegate).lower(),
                       "private_items": str(cal.private_items).lower()}
            fwd = resource.forwarding
            if fwd is not None and not fwd.is_none:
                yield {**base, "record": "grant", "grant_kind": "Forwarding",
                       "principal": fwd.internal or fwd.external or "",
                       "rights": "DeliverAndForward" if fwd.deliver_to_mailbox else "Forward"}
        if isinstance(resource, DistributionGroup):
            for kind, principals in (("Owner", resource.owners), ("Member", resource.members)):
                for principal in principals or ():
                    yield {**base, "record": "grant", "grant_kind": kind,
                           "principal": principal, "rights": kind}


def _display_name(resource: Resource) -> str:
    if isinstance(resource, UserMailbox):
        return resource.display_name or ""
    if isinstance(resource, SharedMailbox | RoomMailbox | DistributionGroup):
        return resource.name or ""
    return ""


def spreadsheet_safe(value: str) -> str:
    """``value`` for a CSV cell: one that a spreadsheet would run as a formula is quoted."""
    return "'" + value if len(value) > 1 and value.startswith(_FORMULA_START) else value


def to_csv(inventory: Inventory) -> str:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in csv_rows(inventory):
        writer.writerow({k: spreadsheet_safe(row.get(k, "")) for k in CSV_COLUMNS})
    return stream.getvalue()


# --- YAML ---------------------------------------------------------------------------------------


def to_yaml(inventory: Inventory) -> str:
    """What ``reconciler import`` would write into a repository that declares nothing yet: one
    YAML document per file, each headed by the file's path."""
    from pathlib import Path

    state = CustomerState(inventory.customer)
    plans, _ = plan_import(state, inventory)
    documents = []
    for location in sorted(plans):
        path = (location_dir(Path("."), location) / "imported.yaml").as_posix()
        document: dict[str, Any] = {}
        if not location.at_customer_level:
            document["site"] = location.site
        document.update(plans[location])
        documents.append(f"# {path}\n" + dump(document))
    return "---\n".join(documents)
