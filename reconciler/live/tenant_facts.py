"""What the tenant itself defines, read only when the desired state makes it matter.

Each read is per tenant or per scoped mailbox, never per grant, and is skipped when nothing
declared needs it:

- soft-deleted mailboxes (``Get-Mailbox -SoftDeletedMailbox``), when a create is planned: a
  removed mailbox keeps its addresses for 30 days;
- the retention policies (``Get-RetentionPolicy``), when an entry names one;
- the default outbound spam filter policy (``Get-HostedOutboundSpamFilterPolicy``), when an
  entry forwards outside the tenant: by default Exchange blocks automatic external forwarding;
- the size of each mailbox that is converted to shared or given an archive while shared
  (``Get-MailboxStatistics``): above 50 GB a shared mailbox needs a licence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.live.backend import Backend
from reconciler.live.directory import strip_smtp
from reconciler.live.pool import Task, read_all
from reconciler.live.targeted import CHUNK, address_filter
from reconciler.model import (
    CustomerState,
    Mailbox,
    Resource,
    SharedMailbox,
    UserMailbox,
)

SOFT_DELETED_PROPERTIES = (
    "Identity", "Name", "Guid", "ExchangeGuid", "Alias", "DisplayName", "PrimarySmtpAddress",
    "UserPrincipalName", "EmailAddresses", "RecipientTypeDetails", "WhenSoftDeleted",
    "RetentionPolicy", "ArchiveGuid", "ArchiveStatus", "ForwardingAddress",
    "ForwardingSmtpAddress", "DeliverToMailboxAndForward", "GrantSendOnBehalfTo",
    "ResourceCapacity", "Office", *(f"CustomAttribute{n}" for n in range(1, 16)),
)
# The default outbound policy's AutoForwardingMode: only On lets mail be forwarded outside.
FORWARDING_ALLOWED = "On"
_BYTES = re.compile(r"\(([\d,.\s]+)\s*bytes\)", re.IGNORECASE)


@dataclass
class TenantFacts:
    """The tenant's own definitions, each None when it was not read (nothing needed it)."""

    soft_deleted: list[dict[str, Any]] | None = None
    retention_policies: list[str] | None = None
    auto_forwarding_mode: str | None = None
    mailbox_bytes: dict[str, int] = field(default_factory=dict)  # id -> TotalItemSize


Get = Callable[[str, Mapping[str, Any], Iterable[str] | None], list[dict[str, Any]]]


def read_tenant_facts(desired: CustomerState, backend: Backend,
                      live_raw: Mapping[str, tuple[str, Mapping[str, Any]]],
                      scope: Collection[str] | None, workers: int = 1) -> TenantFacts:
    """Read what the declared resources in ``scope`` need; ``live_raw`` maps each declared id
    found live to its kind and Get-Mailbox / Get-DistributionGroup row. The per-mailbox reads
    run on ``workers`` threads (a backend that batches sends them together)."""
    def get(cmdlet: str, parameters: Mapping[str, Any],
            select: Iterable[str] | None = None) -> list[dict[str, Any]]:
        return backend.invoke(cmdlet, parameters, list(select) if select else None).value

    wanted = [r for rid, r in desired.resources.items() if scope is None or rid in scope]
    facts = TenantFacts()
    creates = sorted(r.id for r in wanted if not isinstance(r, UserMailbox)
                     and r.id not in live_raw)
    if creates:
        facts.soft_deleted = _soft_deleted(get, creates if scope is not None else None)
    if any(isinstance(r, Mailbox) and r.retention_policy is not None for r in wanted):
        facts.retention_policies = [str(p.get("Name") or p.get("Identity"))
                                    for p in get("Get-RetentionPolicy", {}, ("Name",))]
    if any(isinstance(r, Mailbox) and r.forwarding is not None and r.forwarding.external
           for r in wanted):
        facts.auto_forwarding_mode = _auto_forwarding_mode(get)
    sized = [r.id for r in wanted
             if r.id in live_raw and _size_matters(r, live_raw[r.id][1])]

    def size(task: Task) -> tuple[Task, list[dict[str, Any]]]:
        return task, get("Get-MailboxStatistics", {"Identity": task[0]}, ("TotalItemSize",))

    sizes = read_all([(rid, "size") for rid in sized], size, workers)
    for rid in sized:
        rows = sizes[(rid, "size")]
        if rows:
            facts.mailbox_bytes[rid] = item_bytes(rows[0].get("TotalItemSize"))
    return facts


def _soft_deleted(get: Get, addresses: list[str] | None) -> list[dict[str, Any]]:
    """The soft-deleted mailboxes: every one for a full plan (one listing), only those holding
    ``addresses`` (the creates' own) for a pull request's, twenty to a call, so its cost does
    not grow with the tenant. Get-Mailbox takes -Filter beside -SoftDeletedMailbox in the
    reference; that Exchange filters soft-deleted mailboxes by EmailAddresses is UNVERIFIED."""
    parameters: dict[str, Any] = {"SoftDeletedMailbox": True, "ResultSize": "Unlimited"}
    if addresses is None:
        return get("Get-Mailbox", parameters, SOFT_DELETED_PROPERTIES)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(addresses), CHUNK):
        text = address_filter(addresses[start:start + CHUNK],
                              ("EmailAddresses", "PrimarySmtpAddress"))
        rows += get("Get-Mailbox", {**parameters, "Filter": text}, SOFT_DELETED_PROPERTIES)
    return rows


def _auto_forwarding_mode(get: Get) -> str:
    rows = get("Get-HostedOutboundSpamFilterPolicy", {"Identity": "Default"},
               ("Name", "AutoForwardingMode"))
    return str(rows[0].get("AutoForwardingMode") or "Automatic") if rows else "Automatic"


def _size_matters(resource: Resource, raw: Mapping[str, Any]) -> bool:
    """A user mailbox becoming shared, or a shared one getting an archive: both are limited
    to 50 GB without a licence."""
    kind = raw.get("RecipientTypeDetails")
    if isinstance(resource, UserMailbox):
        return resource.convert_to == "shared" and kind == "UserMailbox"
    return isinstance(resource, SharedMailbox) and resource.archive is True \
        and not _has_archive_guid(raw)


def _has_archive_guid(raw: Mapping[str, Any]) -> bool:
    from reconciler.live.reader import has_archive

    return has_archive(raw)


def item_bytes(value: Any) -> int:
    """Bytes of a TotalItemSize as Exchange shows it ("51.2 GB (54,975,581,388 bytes)") or as
    a plain number."""
    if isinstance(value, int | float):
        return int(value)
    match = _BYTES.search(str(value or ""))
    if match is None:
        return 0
    return int(re.sub(r"[^\d]", "", match.group(1)) or 0)


def soft_deleted_holding(facts: TenantFacts, address: str) -> list[dict[str, Any]]:
    """Soft-deleted mailboxes whose primary or proxy address is ``address``."""
    key = address.lower()
    found = []
    for row in facts.soft_deleted or ():
        held = {strip_smtp(str(a)).lower() for a in row.get("EmailAddresses") or ()}
        held.add(strip_smtp(str(row.get("PrimarySmtpAddress") or "")).lower())
        if key in held:
            found.append(row)
    return found


