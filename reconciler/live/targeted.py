"""Targeted reads: what a pull request's plan reads instead of paging the whole tenant.

A plan with a scope (``--changed-since``) needs the resources it plans and the recipients they
name, not every recipient, mailbox and group of the tenant. So it asks for those alone, with
OPATH filters the reference documents for these cmdlets (``-Filter "EmailAddresses -eq
'<address>'"`` matches any of a recipient's addresses, docs GATEWAY-FACTS §i), several values
to one call:

- the recipients of the in-scope ids and of every principal their YAML names;
- the mailbox rows and group rows of the in-scope ids that exist;
- later, as the reader meets them in Exchange's answers, the recipients of principals it does
  not know yet (a grantee nobody declared, named by its Name or display name), through the
  directory's lookup.

Only a customer whose policy limits the share of resources a plan may change
(``max_change_percent``) still pages the tenant's mailboxes and groups, to count them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from reconciler.live.backend import Backend
from reconciler.live.directory import Directory, is_system_principal, strip_smtp
from reconciler.model import (
    CALENDAR_BUILTIN_USERS,
    CustomerState,
    DistributionGroup,
    Mailbox,
    Resource,
    RoomMailbox,
    UserMailbox,
)

# Values per filter: short enough for any request line, few enough calls for a pull request.
CHUNK = 20
_GROUP_TYPES = ("Group", "RoomList")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")


def quote(value: str) -> str:
    """``value`` as an OPATH string literal (a ' inside doubled)."""
    return "'" + value.replace("'", "''") + "'"


def address_filter(values: Iterable[str], properties: tuple[str, ...]) -> str:
    """``(P -eq 'v') -or ...`` for each value and property."""
    return " -or ".join(f"({prop} -eq {quote(v)})" for v in values for prop in properties)


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def principals_named(resource: Resource) -> set[str]:
    """Every principal the YAML of ``resource`` names (grantees, forwarding, owners, ...)."""
    names: set[str] = set()
    names.update(g.user for g in resource.permissions or ())
    if isinstance(resource, Mailbox):
        names.update(g.user for g in resource.calendar_permissions or ())
        if resource.forwarding is not None and resource.forwarding.internal:
            names.add(resource.forwarding.internal)
    if isinstance(resource, RoomMailbox) and resource.booking is not None:
        names.update(resource.booking.delegates or ())
    if isinstance(resource, DistributionGroup):
        names.update(resource.owners or ())
        names.update(resource.members or ())
    return {n for n in names if n not in CALENDAR_BUILTIN_USERS}


class TargetedReader:
    """Reads of one customer's tenant limited to ``scope`` (ids)."""

    def __init__(self, backend: Backend, desired: CustomerState, scope: Collection[str],
                 recipient_properties: tuple[str, ...]) -> None:
        self.backend = backend
        self.desired = desired
        self.scope = sorted(scope)
        self.properties = recipient_properties

    def lookup(self, principals: list[str]) -> list[dict[str, Any]]:
        """Recipients named by ``principals`` in any form: address, Name, alias, display name."""
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(sorted(set(principals))):
            addresses = [p for p in chunk if _ADDRESS.match(p)]
            others = [p for p in chunk if not _ADDRESS.match(p)]
            clauses = [c for c in (address_filter(addresses, ("EmailAddresses",)),
                                   address_filter(others, ("Name", "Alias", "DisplayName")))
                       if c]
            rows += self._get("Get-Recipient", " -or ".join(clauses), self.properties)
        return rows

    def directory(self) -> Directory:
        """The directory of the in-scope ids and of the principals their YAML names, fetching
        any other principal when first asked for."""
        directory = Directory((), lookup=self.lookup)
        named: set[str] = set(self.scope)
        for rid in self.scope:
            resource = self.desired.resources.get(rid)
            if resource is not None:
                named |= principals_named(resource)
                # Whoever holds the alias a create would take (tenant_rules checks it).
                if not isinstance(resource, UserMailbox):
                    named.add(getattr(resource, "alias", None) or rid.partition("@")[0])
        directory.fetch(n for n in named if not is_system_principal(n))
        return directory

    def objects(self, directory: Directory, mailbox_properties: tuple[str, ...],
                group_properties: tuple[str, ...]
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The mailbox rows and group rows of the in-scope ids that exist."""
        mailboxes: list[str] = []
        groups: list[str] = []
        for rid in self.scope:
            found = directory.resolve(rid)
            wanted = self.desired.resources.get(rid)
            if found is None:
                if isinstance(wanted, UserMailbox):  # perhaps known by its UPN alone
                    mailboxes.append(rid)
                continue
            target = groups if found.type_details.endswith(_GROUP_TYPES) else mailboxes
            target.append(rid)
        rows_m = [row for chunk in _chunks(mailboxes) for row in self._get(
            "Get-Mailbox", address_filter(chunk, ("EmailAddresses", "UserPrincipalName")),
            mailbox_properties)]
        rows_g = [row for chunk in _chunks(groups) for row in self._get(
            "Get-DistributionGroup", address_filter(chunk, ("EmailAddresses",)),
            group_properties)]
        return rows_m, rows_g

    def _get(self, cmdlet: str, text: str, select: tuple[str, ...]) -> list[dict[str, Any]]:
        return self.backend.invoke(cmdlet, {"Filter": text, "ResultSize": "Unlimited"},
                                   list(select)).value


def strangers(results: Iterable[Iterable[dict[str, Any]]],
              raws: Iterable[dict[str, Any]]) -> set[str]:
    """The principal strings Exchange's answers name: entries' users and trustees, a mailbox's
    SendOnBehalf and forwarding, a group's owners and members, a room's delegates."""
    found: set[str] = set()
    for rows in results:
        for row in rows:
            for key in ("User", "Trustee", "PrimarySmtpAddress"):
                if row.get(key):
                    found.add(str(row[key]))
            found.update(str(d) for d in row.get("ResourceDelegates") or ())
    for raw in raws:
        found.update(str(v) for v in raw.get("GrantSendOnBehalfTo") or ())
        found.update(str(v) for v in raw.get("ManagedBy") or ())
        if raw.get("ForwardingAddress"):
            found.add(str(raw["ForwardingAddress"]))
    return {strip_smtp(f) for f in found if f and not is_system_principal(f)}
