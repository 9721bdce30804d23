"""The product's vocabulary (docs/format.md) as immutable value objects.

Desired state (loaded from YAML) and live state (read from Exchange) are both expressed in these
types, so that planning is a comparison of two instances of them. Conventions:

- A field whose value is ``None`` is *unmanaged*: the YAML left it out, and the planner leaves it
  alone. Live state fills in what it read.
- Principals (grantees, owners, members, forwarding targets) are plain strings. In desired state
  they are what the YAML says; the planner resolves both sides to canonical keys (lower-case
  primary SMTP address, or ``Default``/``Anonymous`` for the calendar's built-in entries).
- ``source`` fields remember where in YAML a value came from; they never take part in equality.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

CUSTOMER_LEVEL = "-"
"""The site segment of a resource located at customer level (docs/format.md §8)."""


def site_label(site: str) -> str:
    """A site as people read it: its id, or "customer level" (the one way every output writes
    that level; the plan JSON keeps ``-``)."""
    return "customer level" if site == CUSTOMER_LEVEL else site


def location_label(location: str) -> str:
    """``customer/site`` (as the plan's ``moved_from`` holds it) as people read it."""
    customer, _, site = location.partition("/")
    return f"{customer} / {site_label(site)}" if site else customer


@dataclass(frozen=True, slots=True)
class SourceRef:
    """A position in a YAML file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def in_repository(self, root: str | None) -> str:
        """``file:line`` with the file relative to the repository ``root`` (as the user wrote
        it in git), so that what names it does not depend on the working directory."""
        file = self.file
        if root:
            relative = os.path.relpath(file, root)
            if not relative.startswith(".."):
                file = Path(relative).as_posix()
        return f"{file}:{self.line}"


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """Where a resource is located: a customer, and a site or the customer level."""

    customer: str
    site: str = CUSTOMER_LEVEL

    @property
    def at_customer_level(self) -> bool:
        return self.site == CUSTOMER_LEVEL

    def __str__(self) -> str:
        return f"{self.customer}/{self.site}"


class ResourceType(StrEnum):
    USER_MAILBOX = "user_mailbox"
    SHARED_MAILBOX = "shared_mailbox"
    ROOM_MAILBOX = "room_mailbox"
    DISTRIBUTION_GROUP = "distribution_group"

    @property
    def yaml_key(self) -> str:
        """The top-level YAML list that declares resources of this type."""
        return self.value + ("es" if self.value.endswith("box") else "s")


ACCESS_RIGHTS = ("FullAccess", "SendAs", "SendOnBehalf")
GROUP_ACCESS_RIGHTS = ("SendAs", "SendOnBehalf")
CALENDAR_ROLES = (
    "Owner",
    "PublishingEditor",
    "Editor",
    "PublishingAuthor",
    "Author",
    "NonEditingAuthor",
    "Reviewer",
    "Contributor",
    "AvailabilityOnly",
    "LimitedDetails",
    "None",
)
CALENDAR_RIGHTS = (
    "ReadItems",
    "CreateItems",
    "EditOwnedItems",
    "DeleteOwnedItems",
    "EditAllItems",
    "DeleteAllItems",
    "CreateSubfolders",
    "FolderOwner",
    "FolderContact",
    "FolderVisible",
)
CALENDAR_BUILTIN_USERS = ("Default", "Anonymous")
AUTO_REPLY_STATES = ("Enabled", "Disabled", "Scheduled")
EXTERNAL_AUDIENCES = ("None", "Known", "All")
PLACEMENT_ATTRIBUTES = ("office", "city", "department", "country", "usage_location", "upn_domain")


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """A mailbox or group permission: FullAccess, SendAs and/or SendOnBehalf for one principal."""

    user: str
    access: frozenset[str]
    automapping: bool | None = None  # FullAccess only; None: not managed / not readable
    source: SourceRef | None = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class CalendarGrant:
    """An entry on a mailbox's calendar folder: a role or a set of individual rights."""

    user: str
    role: str | None = None
    rights: frozenset[str] | None = None
    delegate: bool = False
    private_items: bool = False
    source: SourceRef | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def access_rights(self) -> list[str]:
        """The AccessRights value Exchange takes for this entry."""
        return [self.role] if self.role is not None else sorted(self.rights or ())

    @property
    def sharing_permission_flags(self) -> str:
        if self.private_items:
            return "Delegate,CanViewPrivateItems"
        return "Delegate" if self.delegate else "None"


@dataclass(frozen=True, slots=True)
class Forwarding:
    """Mail forwarding. Both targets ``None`` is ``forwarding: none``."""

    internal: str | None = None
    external: str | None = None
    deliver_to_mailbox: bool = False
    source: SourceRef | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def is_none(self) -> bool:
        return self.internal is None and self.external is None


@dataclass(frozen=True, slots=True)
class AutoReply:
    """Automatic replies. Sub-settings left ``None`` are not managed."""

    state: str
    start: str | None = None  # ISO-8601 UTC, e.g. 2026-12-20T00:00:00Z
    end: str | None = None
    internal_message: str | None = None
    external_audience: str | None = None
    external_message: str | None = None
    source: SourceRef | None = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """Something the reconciler manages, identified by ``id`` within its customer's tenant."""

    type: ClassVar[ResourceType]
    id: str  # primary SMTP address (or UPN for user mailboxes), lower case
    located_at: Location
    permissions: tuple[AccessGrant, ...] | None = None
    template: str | None = field(default=None, compare=False)
    source: SourceRef | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def address(self) -> str:
        """The resource's address in plans: customer/site/type/id."""
        return f"{self.located_at}/{self.type.value}/{self.id}"

    def managed_settings(self) -> Iterator[tuple[str, Any]]:
        """(name, value) of every setting this instance manages (not None), identity aside."""
        for f in fields(self):
            if f.name in _NOT_SETTINGS:
                continue
            value = getattr(self, f.name)
            if value is not None:
                yield f.name, value


_NOT_SETTINGS = frozenset(
    {"id", "located_at", "template", "source", "owner_sources", "member_sources",
     "calendar_folder"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mailbox(Resource):
    """Settings shared by the three mailbox types."""

    retention_policy: str | None = None
    archive: bool | None = None
    forwarding: Forwarding | None = None
    auto_reply: AutoReply | None = None
    custom_attributes: tuple[tuple[int, str], ...] | None = None  # sorted by number
    calendar_permissions: tuple[CalendarGrant, ...] | None = None
    # Live only: the default calendar as Exchange addresses it, ``<mailbox>:\\<name>`` (the
    # name may be localised: ``Kalender``); None when nothing read it.
    calendar_folder: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserMailbox(Mailbox):
    type: ClassVar[ResourceType] = ResourceType.USER_MAILBOX
    display_name: str | None = None
    convert_to: str | None = None  # "shared" when off-boarding


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedMailbox(Mailbox):
    type: ClassVar[ResourceType] = ResourceType.SHARED_MAILBOX
    name: str | None = None  # display name
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class Booking:
    """How a room takes meeting requests (Get/Set-CalendarProcessing). A field left ``None``
    is not managed. ``delegates`` receive the requests to approve; for them to get any,
    Exchange also needs ForwardRequestsToDelegates and AllRequestInPolicy:
    ``delegates_receive_requests`` is whether both hold (live), or must (desired, whenever
    delegates are declared)."""

    automate: str | None = None  # AutomateProcessing: AutoAccept | AutoUpdate | None
    delegates: tuple[str, ...] | None = None  # ResourceDelegates, an exact list
    all_book_in_policy: bool | None = None
    delegates_receive_requests: bool | None = None
    source: SourceRef | None = field(default=None, compare=False, hash=False, repr=False)
    delegate_sources: tuple[SourceRef | None, ...] = field(default=(), compare=False,
                                                           repr=False)


AUTOMATE_PROCESSING = ("AutoAccept", "AutoUpdate", "None")


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomMailbox(Mailbox):
    type: ClassVar[ResourceType] = ResourceType.ROOM_MAILBOX
    name: str | None = None
    alias: str | None = None
    location: str | None = None  # Exchange's Office attribute
    capacity: int | None = None
    booking: Booking | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributionGroup(Resource):
    type: ClassVar[ResourceType] = ResourceType.DISTRIBUTION_GROUP
    name: str | None = None
    alias: str | None = None
    owners: tuple[str, ...] | None = None
    members: tuple[str, ...] | None = None
    accept_external_senders: bool | None = None  # RequireSenderAuthenticationEnabled, inverted
    owner_sources: tuple[SourceRef | None, ...] = field(default=(), compare=False, repr=False)
    member_sources: tuple[SourceRef | None, ...] = field(default=(), compare=False, repr=False)


RESOURCE_CLASSES: Mapping[ResourceType, type[Resource]] = {
    cls.type: cls for cls in (UserMailbox, SharedMailbox, RoomMailbox, DistributionGroup)
}


# --- customers, tenants, sites ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tenant:
    """A customer's Microsoft 365 tenant and how to reach it. Never holds a secret, only a
    reference to one (``env:VAR`` or ``file:path``)."""

    id: str
    initial_domain: str
    app_id: str | None = None
    certificate_thumbprint: str | None = None
    certificate: str | None = None  # file:path of the public certificate (SHA-256 form)
    certificate_key: str | None = None  # env:VAR or file:path of the private key (PEM or PFX)
    certificate_passphrase: str | None = None  # env:VAR or file:path, for a PFX
    exchange: bool = True
    connection: str = "exchange"  # exchange | sandbox | snapshot
    cloud: str | None = None  # commercial | gcc | gcc_high | dod | china (None: commercial)
    exchange_url: str | None = None
    authority_host: str | None = None
    exchange_resource: str | None = None  # the token audience, when the cloud's is not right
    concurrency: int | None = None
    batch_size: int | None = None  # reads per $batch request; None: the default, 0 or 1: none


@dataclass(frozen=True, slots=True)
class Policy:
    """Safety policy (docs/format.md §7)."""

    prune: bool = False
    max_deletes: int | None = None
    max_change_percent: float | None = None
    cross_site_permissions: str = "deny"  # deny | allow
    protect: frozenset[str] = frozenset()
    # Beyond mail_domains, where mailboxes may forward (drift's security findings).
    allowed_forwarding_domains: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    exchange: bool = True
    placement: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (attribute, accepted values)
    owners: tuple[str, ...] = ()
    source: SourceRef | None = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    tenant: Tenant
    mail_domains: tuple[str, ...]
    policy: Policy = Policy()
    sites: Mapping[str, Site] = field(default_factory=dict)
    templates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    owners: tuple[str, ...] = ()
    source: SourceRef | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def default_domain(self) -> str:
        return self.mail_domains[0] if self.mail_domains else self.tenant.initial_domain


@dataclass
class CustomerState:
    """The container desired and live state are both loaded into: one customer's resources,
    keyed by identity. Planning is set arithmetic on the keys plus a per-resource comparison."""

    customer: Customer
    resources: dict[str, Resource] = field(default_factory=dict)

    def add(self, resource: Resource) -> None:
        self.resources[resource.id] = resource


@dataclass
class DesiredState:
    """Everything a desired-state repository declares."""

    root: str
    customers: dict[str, CustomerState] = field(default_factory=dict)
    # reconciler.yaml's `owners`: the provider's code owners, for CODEOWNERS' `*` rule.
    owners: tuple[str, ...] = ()
    # Findings that do not stop a plan (errors.Problem; Any here: errors imports this module).
    warnings: list[Any] = field(default_factory=list)
