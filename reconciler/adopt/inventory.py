"""Read a whole tenant into the model: every mailbox and group, every setting.

The planner's reader reads only what the YAML manages; adopting a tenant, exporting it and
answering "who can reach what" need everything. The same bulk reads (recipients, mailboxes,
groups, SendAs tenant-wide) and per-object reads (FullAccess, calendar, auto-reply, members) as
the reader, through the backend's cmdlets, so this works against Exchange Online, the sandbox
and snapshots alike; the same normalisation (``reconciler.live.reader``), so that what is
imported compares equal to what the planner reads.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.live.backend import Backend, NotFound
from reconciler.live.calendar import (
    PROCESSING_PROPERTIES,
    NoCalendar,
    booking_of,
    read_calendar,
)
from reconciler.live.directory import Directory, placement_site, strip_smtp
from reconciler.live.reader import (
    GROUP_PROPERTIES,
    MAILBOX_PROPERTIES,
    RECIPIENT_PROPERTIES,
    access_grants,
    auto_reply,
    calendar_grants,
    forwarding,
    has_archive,
    is_distribution_group,
)
from reconciler.model import (
    CALENDAR_BUILTIN_USERS,
    CalendarGrant,
    Customer,
    CustomerState,
    DistributionGroup,
    Location,
    Mailbox,
    Resource,
    RoomMailbox,
    SharedMailbox,
    UserMailbox,
)

log = logging.getLogger(__name__)

DEFAULT_RETENTION_POLICY = "Default MRM Policy"
MAILBOX_KINDS = ("UserMailbox", "SharedMailbox", "RoomMailbox")
# The calendar entries every mailbox has: not worth declaring unless changed.
CALENDAR_DEFAULTS = {"Default": "AvailabilityOnly", "Anonymous": "None"}


@dataclass
class Inventory:
    """One tenant, read in full. ``resources`` are keyed by identity (primary SMTP address,
    or UPN for user mailboxes) and located where the placement rules put them."""

    customer: Customer
    directory: Directory
    resources: dict[str, Resource] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)  # id -> primary SMTP address
    default_retention_policy: str = DEFAULT_RETENTION_POLICY
    calendar_unread: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    # Groups read for their members (access answers) that no YAML list declares: room lists,
    # mail-enabled security groups (id -> RecipientTypeDetails).
    foreign_groups: dict[str, str] = field(default_factory=dict)

    def locate_as_declared(self, desired: CustomerState) -> Inventory:
        """Where the YAML declares a resource is where it is located (docs/format.md §1): the
        placement rules place only what no file declares."""
        for rid, resource in self.resources.items():
            declared = desired.resources.get(rid)
            if declared is not None and declared.located_at != resource.located_at:
                self.resources[rid] = dataclasses.replace(resource,
                                                          located_at=declared.located_at)
        return self

    def find(self, principal: str) -> Resource | None:
        """The resource a principal names (address, UPN, name, GUID...)."""
        found = self.resources.get(principal.lower())
        if found is not None:
            return found
        recipient = self.directory.resolve(principal)
        if recipient is None:
            return None
        return self.resources.get(recipient.key) or self.resources.get(recipient.upn)


def _get(backend: Backend, cmdlet: str, parameters: Mapping[str, Any],
         select: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    return backend.invoke(cmdlet, parameters, list(select) if select else None).value


@dataclass
class RawTenant:
    """What the cmdlets returned, row by row, as Exchange names things: the stuff of a
    snapshot (docs/format.md §9). Per-object reads are keyed by the object's primary address; a
    calendar that could not be read (Exchange lists no default calendar) is None."""

    recipients: list[dict[str, Any]]
    mailboxes: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    send_as: list[dict[str, Any]]
    accepted_domains: list[dict[str, Any]]
    retention_policies: list[dict[str, Any]]
    full_access: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calendar: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict)
    auto_reply: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    members: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    booking: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # rooms only


def read_raw(backend: Backend, *, workers: int = 4, only: Collection[str] | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> RawTenant:
    """Every row the reconciler knows how to read: bulk reads tenant-wide, the rest per object
    in parallel within ``workers``. With ``only`` (addresses), just those mailboxes and groups
    are read, object by object; recipients are still read in full, to resolve principals."""
    recipients = _get(backend, "Get-Recipient", {"ResultSize": "Unlimited"},
                      RECIPIENT_PROPERTIES)
    raw = (_read_tenant_wide(backend, recipients) if only is None
           else _read_named(backend, recipients, only))
    _read_per_object(backend, raw, Directory(recipients), workers, progress)
    return raw


def _read_tenant_wide(backend: Backend, recipients: list[dict[str, Any]]) -> RawTenant:
    """The bulk reads: every mailbox, group and SendAs entry of the tenant."""
    return RawTenant(
        recipients=recipients,
        mailboxes=[m for m in _get(backend, "Get-Mailbox", {"ResultSize": "Unlimited"},
                                   MAILBOX_PROPERTIES)
                   if m.get("RecipientTypeDetails") in MAILBOX_KINDS],
        groups=_get(backend, "Get-DistributionGroup", {"ResultSize": "Unlimited"},
                    GROUP_PROPERTIES),
        send_as=_get(backend, "Get-RecipientPermission", {"ResultSize": "Unlimited"}),
        accepted_domains=_get(backend, "Get-AcceptedDomain", {}),
        retention_policies=_get(backend, "Get-RetentionPolicy", {}),
    )


def _read_named(backend: Backend, recipients: list[dict[str, Any]],
                only: Collection[str]) -> RawTenant:
    """Just the mailboxes and groups at ``only``'s addresses, and their SendAs entries."""
    raw = RawTenant(recipients=recipients, mailboxes=[], groups=[], send_as=[],
                    accepted_domains=[], retention_policies=[])
    for identity in sorted({i for i in only if i}):
        raw.mailboxes += [m for m in _get_one(backend, "Get-Mailbox", identity,
                                              MAILBOX_PROPERTIES)
                          if m.get("RecipientTypeDetails") in MAILBOX_KINDS]
        raw.groups += _get_one(backend, "Get-DistributionGroup", identity,
                               GROUP_PROPERTIES)
    for row in raw.mailboxes + raw.groups:
        raw.send_as += _get(backend, "Get-RecipientPermission",
                            {"Identity": primary_address(row)})
    return raw


def _per_object_tasks(raw: RawTenant) -> list[tuple[str, str]]:
    """(address, what) for every per-object read the rows listed call for."""
    tasks: list[tuple[str, str]] = []
    for m in raw.mailboxes:
        if primary_address(m):
            tasks += [(primary_address(m), "full_access"), (primary_address(m), "calendar"),
                      (primary_address(m), "auto_reply")]
    tasks += [(primary_address(g), "members") for g in raw.groups if primary_address(g)]
    tasks += [(primary_address(m), "booking") for m in raw.mailboxes
              if m.get("RecipientTypeDetails") == "RoomMailbox" and primary_address(m)]
    return tasks


def _read_per_object(backend: Backend, raw: RawTenant, directory: Directory, workers: int,
                     progress: Callable[[str, int, int], None] | None) -> None:
    """Fill ``raw``'s per-object reads, in parallel within ``workers``."""
    tasks = _per_object_tasks(raw)

    def run(task: tuple[str, str]) -> tuple[tuple[str, str], list[dict[str, Any]] | None]:
        return task, _read_one(backend, directory, *task)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, ((address, what), value) in enumerate(pool.map(run, tasks), start=1):
            getattr(raw, what)[address] = value
            if progress is not None:
                progress(address, done, len(tasks))


def _read_one(backend: Backend, directory: Directory, address: str,
              what: str) -> list[dict[str, Any]] | None:
    """One per-object read; None for a calendar that cannot be read."""
    if what == "full_access":
        return _get(backend, "Get-MailboxPermission", {"Identity": address})
    if what == "auto_reply":
        return _get(backend, "Get-MailboxAutoReplyConfiguration", {"Identity": address})
    if what == "members":
        return _get(backend, "Get-DistributionGroupMember",
                    {"Identity": address, "ResultSize": "Unlimited"})
    if what == "booking":
        return _get(backend, "Get-CalendarProcessing", {"Identity": address},
                    PROCESSING_PROPERTIES)
    try:
        return read_calendar(backend, address, directory)[1]
    except NotFound:
        return None  # gone since it was listed
    except NoCalendar as e:
        log.warning("%s", e)
        return None


def _get_one(backend: Backend, cmdlet: str, identity: str,
             select: tuple[str, ...]) -> list[dict[str, Any]]:
    try:
        return _get(backend, cmdlet, {"Identity": identity}, select)
    except NotFound:
        return []


def read_inventory(customer: Customer, backend: Backend, *, workers: int = 4,
                   progress: Callable[[str, int, int], None] | None = None) -> Inventory:
    """Read every mailbox and group of ``customer``'s tenant with every setting."""
    try:
        raw = read_raw(backend, workers=workers, progress=progress)
    except ReconcilerError as e:
        raise ReconcilerError(f"reading the tenant of customer {customer.id} failed: {e}") from e
    return inventory_of(customer, raw)


def inventory_of(customer: Customer, raw: RawTenant) -> Inventory:
    """The rows of a tenant as the model, normalised as the planner's reader does."""
    directory = Directory(raw.recipients)
    inventory = Inventory(customer, directory)
    for policy in raw.retention_policies:
        if policy.get("IsDefault"):
            inventory.default_retention_policy = str(policy.get("Name"))
    send_as: dict[str, list[dict[str, Any]]] = {}
    for entry in raw.send_as:
        target = directory.resolve(str(entry.get("Identity") or ""))
        if target is not None:
            send_as.setdefault(target.key, []).append(entry)
    _add_mailboxes(inventory, raw, send_as, directory.canonical)
    _add_groups(inventory, raw, send_as, directory.canonical)
    return inventory


def _add_mailboxes(inventory: Inventory, raw: RawTenant,
                   send_as: Mapping[str, list[dict[str, Any]]],
                   canonical: Callable[[str], str]) -> None:
    for m in raw.mailboxes:
        address = primary_address(m)
        if not address:
            continue
        calendar = raw.calendar.get(address)
        if calendar is None:
            inventory.calendar_unread.add(address)
            inventory.warnings.append(
                f"{address}: Exchange lists no default calendar for it; its calendar "
                f"permissions were not read")
        reply = raw.auto_reply.get(address) or []
        settings: dict[str, Any] = {
            "permissions": access_grants(raw.full_access.get(address) or [],
                                         send_as.get(address, []),
                                         m.get("GrantSendOnBehalfTo") or [], canonical),
            "retention_policy": m.get("RetentionPolicy") or None,
            "archive": has_archive(m),
            "forwarding": forwarding(m, canonical),
            "auto_reply": auto_reply(reply[0]) if reply else None,
            "custom_attributes": tuple(
                (n, str(m.get(f"CustomAttribute{n}") or "")) for n in range(1, 16)
                if m.get(f"CustomAttribute{n}")),
            "calendar_permissions": (calendar_grants(calendar, canonical)
                                     if calendar is not None else None),
        }
        resource = _mailbox(inventory, raw, m, address, settings, canonical)
        inventory.resources[resource.id] = resource
        inventory.addresses[resource.id] = address


def _mailbox(inventory: Inventory, raw: RawTenant, m: Mapping[str, Any], address: str,
             settings: dict[str, Any], canonical: Callable[[str], str]) -> Resource:
    """The model's mailbox of the kind the row says, with the settings every kind has."""
    kind = m.get("RecipientTypeDetails")
    if kind == "UserMailbox":
        rid = str(m.get("UserPrincipalName") or address).lower()
        return UserMailbox(id=rid, located_at=_placed(inventory, address),
                           display_name=m.get("DisplayName"), **settings)
    if kind == "RoomMailbox":
        capacity = m.get("ResourceCapacity")
        processing = raw.booking.get(address)
        return RoomMailbox(
            id=address, located_at=_placed(inventory, address), name=m.get("DisplayName"),
            alias=address.partition("@")[0], location=m.get("Office") or None,
            capacity=int(capacity) if capacity not in (None, "") else None,
            booking=booking_of(processing[0], canonical) if processing else None,
            **settings)
    return SharedMailbox(id=address, located_at=_placed(inventory, address),
                         name=m.get("DisplayName"), alias=address.partition("@")[0], **settings)


def _add_groups(inventory: Inventory, raw: RawTenant,
                send_as: Mapping[str, list[dict[str, Any]]],
                canonical: Callable[[str], str]) -> None:
    for g in raw.groups:
        address = primary_address(g)
        if not address:
            continue
        if not is_distribution_group(g):
            inventory.foreign_groups[address] = str(g.get("RecipientTypeDetails"))
        inventory.resources[address] = DistributionGroup(
            id=address, located_at=_placed(inventory, address), name=g.get("DisplayName"),
            alias=address.partition("@")[0],
            owners=tuple(sorted({canonical(str(o)) for o in g.get("ManagedBy") or ()})),
            members=tuple(sorted({canonical(member_principal(e))
                                  for e in raw.members.get(address) or ()})),
            permissions=access_grants([], send_as.get(address, []),
                                      g.get("GrantSendOnBehalfTo") or [], canonical))
        inventory.addresses[address] = address


def primary_address(raw: Mapping[str, Any]) -> str:
    return strip_smtp(str(raw.get("PrimarySmtpAddress") or "")).lower()


def member_principal(entry: Mapping[str, Any]) -> str:
    for key in ("PrimarySmtpAddress", "Identity", "Name"):
        if entry.get(key):
            return str(entry[key])
    return ""


def _placed(inventory: Inventory, address: str) -> Location:
    customer = inventory.customer
    recipient = inventory.directory.resolve(address)
    if recipient is None:
        return Location(customer.id)
    site, matched = placement_site(customer, recipient.attributes)
    if len(matched) > 1:
        inventory.warnings.append(f"{address} matches the placement rules of sites "
                                  f"{', '.join(matched)}; it stays at customer level")
    return Location(customer.id, site) if site else Location(customer.id)


def non_default_calendar(grants: tuple[CalendarGrant, ...] | None) -> list[CalendarGrant]:
    """Calendar entries worth declaring: every named user, and Default/Anonymous when they
    differ from what every new mailbox has."""
    out = []
    for g in grants or ():
        if g.user in CALENDAR_BUILTIN_USERS and g.role == CALENDAR_DEFAULTS[g.user] \
                and not g.delegate:
            continue
        out.append(g)
    return out


def has_non_default_settings(mailbox: Mailbox, inventory: Inventory) -> bool:
    """Whether a user mailbox has anything worth declaring (the overbuild of docs/import.md)."""
    reply = mailbox.auto_reply
    return bool(
        mailbox.permissions
        or non_default_calendar(mailbox.calendar_permissions)
        or (mailbox.forwarding is not None and not mailbox.forwarding.is_none)
        or (reply is not None and reply.state != "Disabled")
        or mailbox.custom_attributes
        or mailbox.archive
        or (mailbox.retention_policy not in (None, inventory.default_retention_policy)))
