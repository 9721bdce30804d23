"""Read a tenant into the model: what the desired state manages, and nothing more.

Tenant-wide bulk reads (recipients, mailboxes, groups, and SendAs when many mailboxes need it)
are paged; per-mailbox reads (FullAccess, calendar, auto-reply, members) run only for mailboxes
whose declared settings need them, in parallel within the tenant's budget. An omitted setting
costs no call. Every principal is resolved through the tenant's recipient map, system entries
are dropped, and Exchange's decoration (HTML-wrapped messages, ``smtp:`` prefixes, letter case)
is normalised so that comparing live and desired values means something.

Unreadable live state is an error: a failed read raises, it never reads as "absent".
"""

from __future__ import annotations

import functools
import html
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.live.backend import Backend
from reconciler.live.calendar import PROCESSING_PROPERTIES, booking_of, read_calendar
from reconciler.live.directory import (
    Directory,
    is_system_principal,
    placement_site,
    strip_smtp,
)
from reconciler.live.pool import Task, read_all, read_width
from reconciler.live.targeted import TargetedReader, strangers
from reconciler.live.tenant_facts import TenantFacts, read_tenant_facts
from reconciler.model import (
    CALENDAR_BUILTIN_USERS,
    CALENDAR_ROLES,
    AccessGrant,
    AutoReply,
    CalendarGrant,
    Customer,
    CustomerState,
    DistributionGroup,
    Forwarding,
    Location,
    Mailbox,
    Resource,
    RoomMailbox,
    SharedMailbox,
    UserMailbox,
)

log = logging.getLogger(__name__)

# Above this many mailboxes needing SendAs, one tenant-wide paged read beats one call each.
SENDAS_BULK_THRESHOLD = 20

RECIPIENT_PROPERTIES = (
    "Name", "Guid", "ExternalDirectoryObjectId", "UserPrincipalName", "PrimarySmtpAddress",
    "Alias", "DisplayName", "RecipientTypeDetails", "Office", "City", "Department",
    "CountryOrRegion", "UsageLocation", "EmailAddresses",
)
CUSTOM_ATTRIBUTE_KEYS = tuple(f"CustomAttribute{n}" for n in range(1, 16))
MAILBOX_PROPERTIES = (
    "Identity", "Name", "Guid", "UserPrincipalName", "Alias", "DisplayName",
    "PrimarySmtpAddress", "RecipientTypeDetails", "ForwardingAddress", "ForwardingSmtpAddress",
    "DeliverToMailboxAndForward", "GrantSendOnBehalfTo", "RetentionPolicy", "ArchiveStatus",
    "ResourceCapacity", "Office", "EmailAddresses", "ArchiveGuid", "ArchiveState",
    *CUSTOM_ATTRIBUTE_KEYS,
)
GROUP_PROPERTIES = (
    "Identity", "Name", "Guid", "Alias", "DisplayName", "PrimarySmtpAddress", "ManagedBy",
    "GrantSendOnBehalfTo", "RecipientTypeDetails", "EmailAddresses",
    "RequireSenderAuthenticationEnabled",
)
NO_ARCHIVE_GUID = "00000000-0000-0000-0000-000000000000"
DISTRIBUTION_GROUP = "MailUniversalDistributionGroup"
MAILBOX_TYPES: dict[str, type[UserMailbox | SharedMailbox | RoomMailbox]] = {
    "UserMailbox": UserMailbox,
    "SharedMailbox": SharedMailbox,
    "RoomMailbox": RoomMailbox,
}


@dataclass
class LiveTenant:
    """One customer's tenant as read: resources in the model, and the recipient map."""

    state: CustomerState
    directory: Directory
    exists_as: dict[str, str] = field(default_factory=dict)  # id -> RecipientTypeDetails
    ambiguous_placement: dict[str, list[str]] = field(default_factory=dict)
    # Resources the customer has live, whether read in full or not (a scoped read reads few):
    # shared mailboxes, rooms, groups, and the declared user mailboxes that exist.
    existing: int = 0
    # What the tenant defines (soft-deleted mailboxes, retention policies...), read when needed.
    facts: TenantFacts = field(default_factory=TenantFacts)


ProgressCallback = Callable[[str, int, int], None]


def read_live(
    desired: CustomerState,
    backend: Backend,
    *,
    previous_locations: Mapping[str, Location] | None = None,
    scope: Collection[str] | None = None,
    workers: int = 4,
    progress: ProgressCallback | None = None,
) -> LiveTenant:
    """Read the live counterpart of ``desired`` (and the unmanaged resources beside it).

    With ``scope``, per-object reads are made only for those ids: a pull request's plan costs
    what the pull request changes."""
    customer = desired.customer
    previous_locations = previous_locations or {}
    directory, listed, groups, counted = _objects(backend, desired, scope)
    mailboxes = [m for m in listed if m.get("RecipientTypeDetails") in MAILBOX_TYPES]
    # Get-DistributionGroup also lists room lists and mail-enabled security groups: they are
    # recipients (grantees, members), never this product's distribution groups.
    own_groups = [g for g in groups if is_distribution_group(g)]

    live = LiveTenant(state=CustomerState(customer), directory=directory)
    if counted is not None:
        live.existing = _existing(desired, *counted)
    matched = _matched(desired, scope, _by_identity(mailboxes, groups), live)
    tasks, bulk_sendas = _tasks(matched, scope)
    sendas = _send_as_in_bulk(backend, directory) if bulk_sendas else None
    folders: dict[str, str] = {}  # rid -> its calendar, as Exchange addresses it
    results = read_all(tasks, _reader(backend, matched, directory, folders),
                       read_width(backend, workers), progress)

    # Principals Exchange's answers name that a scoped read has not met yet, fetched at once.
    # (Entries naming a shared display name were told apart while reading the calendars.)
    # A full read knows every recipient already: nothing to collect.
    if directory.fetching:
        directory.fetch(strangers(results.values(), (raw for _, _, raw in matched.values())),
                        display_names=False)
    for rid, (wanted, _kind, raw) in matched.items():
        if sendas is not None:
            results[(rid, "send_as")] = sendas.get(rid, [])
        located = _located(customer, rid, wanted, directory, previous_locations, live)
        live.state.add(_build(rid, wanted, raw, located, results, directory,
                              folders.get(rid)))
    _add_unmanaged(desired, mailboxes, own_groups, previous_locations, live)
    live.facts = read_tenant_facts(desired, backend, {rid: (kind, raw) for rid, (_, kind, raw)
                                                      in matched.items()}, scope,
                                   read_width(backend, workers))
    directory.seal()
    return live


Rows = list[dict[str, Any]]
Matched = dict[str, tuple[Resource, str, dict[str, Any]]]


def _objects(backend: Backend, desired: CustomerState, scope: Collection[str] | None,
             ) -> tuple[Directory, Rows, Rows, tuple[Rows, Rows] | None]:
    """The directory, the mailbox and group rows, and what counting the tenant needs: all of
    the tenant, or for a scope its objects and the recipients they name, nothing paged."""
    if scope is None:
        directory = Directory(_get(backend, "Get-Recipient", {"ResultSize": "Unlimited"},
                                   RECIPIENT_PROPERTIES))
        listed = _get(backend, "Get-Mailbox", {"ResultSize": "Unlimited"}, MAILBOX_PROPERTIES)
        groups = _get(backend, "Get-DistributionGroup", {"ResultSize": "Unlimited"},
                      GROUP_PROPERTIES)
        return directory, listed, groups, (listed, groups)
    targeted = TargetedReader(backend, desired, scope, RECIPIENT_PROPERTIES)
    directory = targeted.directory()
    listed, groups = targeted.objects(directory, MAILBOX_PROPERTIES, GROUP_PROPERTIES)
    counted = (_tenant_counts(backend) if desired.customer.policy.max_change_percent is not None
               else None)
    return directory, listed, groups, counted


def _by_identity(mailboxes: Rows, groups: Rows) -> dict[str, tuple[str, dict[str, Any]]]:
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for m in mailboxes:
        for key in (m.get("PrimarySmtpAddress"), m.get("UserPrincipalName")):
            if key:
                out.setdefault(strip_smtp(str(key)).lower(), ("mailbox", m))
    for g in groups:
        if g.get("PrimarySmtpAddress"):
            out.setdefault(strip_smtp(str(g["PrimarySmtpAddress"])).lower(), ("group", g))
    return out


def _matched(desired: CustomerState, scope: Collection[str] | None,
             by_identity: Mapping[str, tuple[str, dict[str, Any]]], live: LiveTenant) -> Matched:
    """The declared resources (in scope) that exist live, with their kind and row."""
    matched: Matched = {}
    for rid, wanted in desired.resources.items():
        if scope is not None and rid not in scope:
            continue
        hit = by_identity.get(rid)
        if hit is not None:
            matched[rid] = (wanted, hit[0], hit[1])
            live.exists_as[rid] = str(hit[1].get("RecipientTypeDetails") or (
                DISTRIBUTION_GROUP if hit[0] == "group" else hit[0]))
    return matched


def _tasks(matched: Matched, scope: Collection[str] | None) -> tuple[list[Task], bool]:
    """Which per-object reads the declared settings call for, and whether SendAs is read in
    bulk instead of per mailbox (never for a scope: nothing is paged tenant-wide)."""
    sendas_needed = [rid for rid, (w, _, _) in matched.items() if w.permissions is not None]
    tasks: list[Task] = []
    for rid, (wanted, kind, _) in matched.items():
        if kind == "mailbox" and wanted.permissions is not None:
            tasks.append((rid, "full_access"))
        if isinstance(wanted, Mailbox) and kind == "mailbox":
            if wanted.calendar_permissions is not None:
                tasks.append((rid, "calendar"))
            if wanted.auto_reply is not None:
                tasks.append((rid, "auto_reply"))
            if isinstance(wanted, RoomMailbox) and wanted.booking is not None:
                tasks.append((rid, "booking"))
        if isinstance(wanted, DistributionGroup) and kind == "group" and wanted.members is not None:
            tasks.append((rid, "members"))
    bulk = scope is None and len(sendas_needed) > SENDAS_BULK_THRESHOLD
    if not bulk:
        tasks.extend((rid, "send_as") for rid in sendas_needed)
    return tasks, bulk


def _send_as_in_bulk(backend: Backend, directory: Directory) -> dict[str, Rows]:
    out: dict[str, Rows] = {}
    for entry in _get(backend, "Get-RecipientPermission", {"ResultSize": "Unlimited"}):
        target = directory.resolve(str(entry.get("Identity") or ""))
        if target is not None:
            out.setdefault(target.key, []).append(entry)
    return out


def _reader(backend: Backend, matched: Matched, directory: Directory,
            folders: dict[str, str]) -> Callable[[Task], tuple[Task, Rows]]:
    """The read one task makes (a calendar's folder is remembered in ``folders``)."""
    def read(task: Task) -> tuple[Task, Rows]:
        rid, what = task
        identity = _identity_of(matched[rid][2], rid)
        if what == "full_access":
            # A declared list is exact: grants of deleted accounts, which Exchange hides
            # unless asked, must be seen to be removed.
            value = _get(backend, "Get-MailboxPermission",
                         {"Identity": identity, "IncludeUnresolvedPermissions": True})
        elif what == "send_as":
            value = _get(backend, "Get-RecipientPermission", {"Identity": identity})
        elif what == "calendar":
            folders[rid], value = read_calendar(backend, identity, directory)
        elif what == "auto_reply":
            value = _get(backend, "Get-MailboxAutoReplyConfiguration", {"Identity": identity})
        elif what == "booking":
            value = _get(backend, "Get-CalendarProcessing", {"Identity": identity},
                         PROCESSING_PROPERTIES)
        else:
            value = _get(backend, "Get-DistributionGroupMember",
                         {"Identity": identity, "ResultSize": "Unlimited"})
        return task, value
    return read


def _add_unmanaged(desired: CustomerState, mailboxes: Rows, own_groups: Rows,
                   previous_locations: Mapping[str, Location], live: LiveTenant) -> None:
    """Shared mailboxes, rooms and groups that no file declares."""
    customer, directory = desired.customer, live.directory
    declared = set(desired.resources)
    for m in mailboxes:
        rid = strip_smtp(str(m.get("PrimarySmtpAddress") or "")).lower()
        kind = m["RecipientTypeDetails"]
        if rid and rid not in declared and kind != "UserMailbox" and not _declared_by_upn(
                m, declared):
            located = _placement(customer, rid, directory, previous_locations, live)
            cls = RoomMailbox if kind == "RoomMailbox" else SharedMailbox
            live.state.add(cls(id=rid, located_at=located, name=m.get("DisplayName"),
                               alias=m.get("Alias")))
            live.exists_as[rid] = m["RecipientTypeDetails"]
    for g in own_groups:
        rid = strip_smtp(str(g.get("PrimarySmtpAddress") or "")).lower()
        if rid and rid not in declared:
            located = _placement(customer, rid, directory, previous_locations, live)
            live.state.add(DistributionGroup(id=rid, located_at=located,
                                             name=g.get("DisplayName"), alias=g.get("Alias")))
            live.exists_as[rid] = "DistributionGroup"


def _tenant_counts(backend: Backend) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every mailbox and group, with just what counting them needs."""
    keys = ("PrimarySmtpAddress", "UserPrincipalName", "RecipientTypeDetails")
    return (_get(backend, "Get-Mailbox", {"ResultSize": "Unlimited"}, keys),
            _get(backend, "Get-DistributionGroup", {"ResultSize": "Unlimited"}, keys))


def _existing(desired: CustomerState, mailboxes: list[dict[str, Any]],
              groups: list[dict[str, Any]]) -> int:
    """Resources the customer has live: shared mailboxes, rooms, distribution groups, and the
    declared user mailboxes that exist (what max_change_percent is a share of)."""
    users: set[str] = set()
    count = sum(1 for g in groups if is_distribution_group(g))
    for m in mailboxes:
        kind = m.get("RecipientTypeDetails")
        if kind == "UserMailbox":
            users.update(strip_smtp(str(m.get(k) or "")).lower()
                         for k in ("PrimarySmtpAddress", "UserPrincipalName"))
        elif kind in MAILBOX_TYPES:
            count += 1
    return count + sum(1 for rid, w in desired.resources.items()
                       if isinstance(w, UserMailbox) and rid in users)


def is_distribution_group(row: Mapping[str, Any]) -> bool:
    """A group row of the kind ``distribution_groups`` manage (docs/format.md §4 "Group kinds")."""
    return str(row.get("RecipientTypeDetails") or DISTRIBUTION_GROUP) == DISTRIBUTION_GROUP


def _get(backend: Backend, cmdlet: str, parameters: Mapping[str, Any],
         select: Iterable[str] | None = None) -> list[dict[str, Any]]:
    return backend.invoke(cmdlet, parameters, list(select) if select else None).value


def _identity_of(raw: Mapping[str, Any], rid: str) -> str:
    # Never send an empty Identity: some Get cmdlets then return every object in the tenant.
    identity = str(raw.get("PrimarySmtpAddress") or "") or rid
    if not identity:
        raise ValueError("refusing to read with an empty Identity")
    return strip_smtp(identity)


def _declared_by_upn(raw: Mapping[str, Any], declared: Collection[str]) -> bool:
    upn = str(raw.get("UserPrincipalName") or "").lower()
    return bool(upn) and upn in declared


def _placement(customer: Customer, rid: str, directory: Directory,
               previous: Mapping[str, Location], live: LiveTenant) -> Location:
    if rid in previous:
        return previous[rid]
    recipient = directory.resolve(rid)
    if recipient is None:
        return Location(customer.id)
    site, matched = placement_site(customer, recipient.attributes)
    if len(matched) > 1:
        live.ambiguous_placement[rid] = matched
    return Location(customer.id, site) if site else Location(customer.id)


def _located(customer: Customer, rid: str, wanted: Resource, directory: Directory,
             previous: Mapping[str, Location], live: LiveTenant) -> Location:
    """Where a declared resource is located live. A user is where its entry is declared
    (docs/format.md §3); anything else is where it was last applied, else where the placement rules
    positively put it; with no evidence either way it has not moved."""
    if rid in previous:
        return previous[rid]
    if isinstance(wanted, UserMailbox):
        return wanted.located_at
    placed = _placement(customer, rid, directory, {}, live)
    return wanted.located_at if placed.at_customer_level else placed


def _build(rid: str, wanted: Resource, raw: Mapping[str, Any], located: Location,
           results: Mapping[tuple[str, str], list[dict[str, Any]]],
           directory: Directory, folder: str | None) -> Resource:
    """The live resource, built once from everything read about it (``folder``: its calendar
    as Exchange addresses it, when read)."""
    canonical = directory.canonical
    permissions = None
    if wanted.permissions is not None:
        permissions = access_grants(
            results.get((rid, "full_access"), []), results.get((rid, "send_as"), []),
            raw.get("GrantSendOnBehalfTo") or [], canonical)
    if isinstance(wanted, DistributionGroup) or "ManagedBy" in raw:
        members = None
        if (rid, "members") in results:
            members = tuple(sorted({canonical(_principal(m)) for m in results[(rid, "members")]}))
        return DistributionGroup(
            id=rid, located_at=located, permissions=permissions, name=raw.get("DisplayName"),
            alias=raw.get("Alias"),
            owners=tuple(sorted({canonical(str(o)) for o in raw.get("ManagedBy") or ()})),
            members=members, accept_external_senders=accepts_external_senders(raw))

    settings: dict[str, Any] = {
        "retention_policy": raw.get("RetentionPolicy"),
        "archive": has_archive(raw),
        "forwarding": forwarding(raw, canonical),
        "custom_attributes": custom_attributes(raw),
        "calendar_folder": folder,
    }
    if (rid, "calendar") in results:
        settings["calendar_permissions"] = calendar_grants(results[(rid, "calendar")], canonical)
    if results.get((rid, "auto_reply")):
        settings["auto_reply"] = auto_reply(results[(rid, "auto_reply")][0])
    kind = str(raw.get("RecipientTypeDetails"))
    if isinstance(wanted, UserMailbox):
        return UserMailbox(id=rid, located_at=located, permissions=permissions,
                           display_name=raw.get("DisplayName"),
                           convert_to="shared" if kind == "SharedMailbox" else None, **settings)
    if kind == "RoomMailbox":
        capacity = raw.get("ResourceCapacity")
        processing = results.get((rid, "booking"))
        return RoomMailbox(id=rid, located_at=located, permissions=permissions,
                           name=raw.get("DisplayName"), alias=raw.get("Alias"),
                           location=raw.get("Office") or None,
                           capacity=int(capacity) if capacity not in (None, "") else None,
                           booking=booking_of(processing[0], canonical) if processing else None,
                           **settings)
    # Declared as a shared mailbox (the planner reports it if it is something else live).
    return SharedMailbox(id=rid, located_at=located, permissions=permissions,
                         name=raw.get("DisplayName"), alias=raw.get("Alias"), **settings)


def _principal(entry: Mapping[str, Any]) -> str:
    for key in ("PrimarySmtpAddress", "Identity", "Name"):
        if entry.get(key):
            return str(entry[key])
    return ""


# --- normalisation of what Exchange returns ------------------------------------------------


def access_grants(full_access: Iterable[Mapping[str, Any]], send_as: Iterable[Mapping[str, Any]],
                  send_on_behalf: Iterable[Any],
                  canonical: Callable[[str], str]) -> tuple[AccessGrant, ...]:
    rights: dict[str, set[str]] = {}
    automapping: dict[str, bool] = {}
    for entry in full_access:
        user = str(entry.get("User") or "")
        if (entry.get("IsInherited") or entry.get("Deny") or is_system_principal(user)
                or "FullAccess" not in _values(entry.get("AccessRights"))):
            continue
        key = canonical(user)
        rights.setdefault(key, set()).add("FullAccess")
        if isinstance(entry.get("AutoMapping"), bool):
            automapping[key] = entry["AutoMapping"]
    for entry in send_as:
        trustee = str(entry.get("Trustee") or "")
        if (entry.get("IsInherited") or str(entry.get("AccessControlType", "Allow")) != "Allow"
                or is_system_principal(trustee)
                or "SendAs" not in _values(entry.get("AccessRights"))):
            continue
        rights.setdefault(canonical(trustee), set()).add("SendAs")
    for principal in send_on_behalf:
        rights.setdefault(canonical(str(principal)), set()).add("SendOnBehalf")
    return tuple(_access_grant(u, frozenset(r), automapping.get(u))
                 for u, r in sorted(rights.items()))


# A tenant's grants repeat endlessly (the same principal with the same rights on many
# mailboxes): equal grants read are one shared, immutable instance, built once.
GRANTS_KEPT = 1 << 16


@functools.lru_cache(maxsize=GRANTS_KEPT)
def _access_grant(user: str, access: frozenset[str], automapping: bool | None) -> AccessGrant:
    return AccessGrant(user=user, access=access, automapping=automapping)


@functools.lru_cache(maxsize=GRANTS_KEPT)
def _calendar_grant(user: str, access: tuple[str, ...], delegate: bool,
                    private_items: bool) -> CalendarGrant:
    if len(access) == 1 and access[0] in CALENDAR_ROLES:
        return CalendarGrant(user=user, role=access[0], delegate=delegate,
                             private_items=private_items)
    return CalendarGrant(user=user, rights=frozenset(access), delegate=delegate,
                         private_items=private_items)


def calendar_grants(entries: Iterable[Mapping[str, Any]],
                    canonical: Callable[[str], str]) -> tuple[CalendarGrant, ...]:
    grants: dict[str, CalendarGrant] = {}
    for entry in entries:
        user = str(entry.get("User") or "")
        if not user or (is_system_principal(user) and user not in CALENDAR_BUILTIN_USERS):
            continue
        key = canonical(user)
        grants[key] = _calendar_grant(
            key, _values(entry.get("AccessRights")),
            *_sharing_flags(str(entry.get("SharingPermissionFlags") or "")))
    return tuple(grants[k] for k in sorted(grants))


@functools.lru_cache(maxsize=64)
def _sharing_flags(text: str) -> tuple[bool, bool]:
    """(Delegate, CanViewPrivateItems) of a SharingPermissionFlags value; the few values a
    tenant uses are parsed once, not once per entry."""
    flags = {f.strip() for f in text.split(",")}
    return "Delegate" in flags, "CanViewPrivateItems" in flags



def custom_attributes(raw: Mapping[str, Any]) -> tuple[tuple[int, str], ...]:
    """CustomAttribute1..15 as (number, value) pairs, "" for an empty one."""
    return _attribute_pairs(tuple(str(raw.get(k) or "") for k in CUSTOM_ATTRIBUTE_KEYS))


@functools.lru_cache(maxsize=1024)
def _attribute_pairs(values: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    # Most mailboxes carry the same few values (mostly none at all): they share one tuple.
    return tuple(enumerate(values, start=1))


def accepts_external_senders(raw: Mapping[str, Any]) -> bool | None:
    """A group's RequireSenderAuthenticationEnabled, inverted; None when not returned."""
    value = raw.get("RequireSenderAuthenticationEnabled")
    return None if value is None else not value


def has_archive(raw: Mapping[str, Any]) -> bool:
    """Whether a mailbox has an archive (docs/format.md §4): its ArchiveGuid is set, whatever
    ArchiveStatus says (it stays None while Exchange provisions the archive). Without
    ArchiveGuid (an older snapshot), ArchiveStatus Active."""
    guid = str(raw.get("ArchiveGuid") or "")
    if guid:
        return guid != NO_ARCHIVE_GUID
    return str(raw.get("ArchiveStatus") or "None") == "Active"


def forwarding(raw: Mapping[str, Any], canonical: Callable[[str], str]) -> Forwarding:
    # ForwardingAddress wins over ForwardingSmtpAddress when both are set, as in Exchange.
    deliver = bool(raw.get("DeliverToMailboxAndForward"))
    if raw.get("ForwardingAddress"):
        return Forwarding(internal=canonical(str(raw["ForwardingAddress"])),
                          deliver_to_mailbox=deliver)
    if raw.get("ForwardingSmtpAddress"):
        return Forwarding(external=strip_smtp(str(raw["ForwardingSmtpAddress"])).lower(),
                          deliver_to_mailbox=deliver)
    return Forwarding()


_TAGS = re.compile(r"<\s*/?\s*(html|head|body|div|p|span)\b[^>]*>", re.IGNORECASE)
_BREAKS = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)


def normalise_message(message: str | None) -> str:
    """Auto-reply text as a person wrote it: Exchange's HTML wrapping removed, whitespace
    collapsed. Applied to both sides of a comparison."""
    text = _BREAKS.sub("\n", message or "")
    text = html.unescape(_TAGS.sub(" ", text))
    return " ".join(text.split())


def normalise_time(value: Any) -> str | None:
    """A date-time as ISO-8601 UTC with a Z, whatever form Exchange or YAML gave."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        match = re.fullmatch(r"/Date\((-?\d+)\)/", text)
        if match:
            moment = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def auto_reply(raw: Mapping[str, Any]) -> AutoReply:
    return AutoReply(
        state=str(raw.get("AutoReplyState") or "Disabled"),
        start=normalise_time(raw.get("StartTime")),
        end=normalise_time(raw.get("EndTime")),
        internal_message=normalise_message(raw.get("InternalMessage")),
        external_audience=str(raw.get("ExternalAudience") or "None"),
        external_message=normalise_message(raw.get("ExternalMessage")),
    )


def _values(value: Any) -> tuple[str, ...]:
    """A multi-valued property as its values: a list, or a comma-separated string."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(map(str, value))
