"""Addresses checked without a tenant (docs/format.md §4): every address the YAML names must
look like one, internal ones must be in a domain of the customer, and a reference close to an
address declared elsewhere in the repository gets a "did you mean".

What only the tenant knows (that the user exists) is plan's to check.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import NamedTuple

from reconciler.model import (
    DistributionGroup,
    Mailbox,
    Resource,
    RoomMailbox,
    SourceRef,
    UserMailbox,
)

# No space, no control character (C0, DEL, C1): Exchange takes none in an SMTP address.
ADDRESS = re.compile(r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f]+"
                     r"(\.[^@\s.\x00-\x1f\x7f-\x9f]+)+$")
CALENDAR_BUILTINS = frozenset({"default", "anonymous"})


class Reference(NamedTuple):  # a tuple: one is made for each grant, 500,000 in a large repository
    """An address written in YAML: what names it, where, and whether it must be the tenant's."""

    address: str
    role: str  # "grantee", "owner", "member", "forwarding target", ...
    source: SourceRef | None
    internal: bool = True


def references(resource: Resource) -> Iterator[Reference]:
    """Every address an entry names, its own identity (a user mailbox's user) included."""
    if isinstance(resource, UserMailbox):
        yield Reference(resource.id, "user", resource.source)
    for grant in resource.permissions or ():
        yield Reference(grant.user, "grantee", grant.source or resource.source)
    if isinstance(resource, Mailbox):
        for cal in resource.calendar_permissions or ():
            if cal.user.lower() not in CALENDAR_BUILTINS:
                yield Reference(cal.user, "calendar grantee", cal.source or resource.source)
        forwarding = resource.forwarding
        if forwarding is not None and forwarding.internal:
            yield Reference(forwarding.internal, "forwarding target", forwarding.source)
        if forwarding is not None and forwarding.external:
            yield Reference(forwarding.external, "external forwarding target",
                            forwarding.source, internal=False)
    if isinstance(resource, RoomMailbox) and resource.booking and resource.booking.delegates:
        sources = resource.booking.delegate_sources
        for i, name in enumerate(resource.booking.delegates):
            yield Reference(name, "booking delegate", sources[i] if i < len(sources) else None)
    if isinstance(resource, DistributionGroup):
        for role, values, sources in (("owner", resource.owners, resource.owner_sources),
                                      ("member", resource.members, resource.member_sources)):
            for i, value in enumerate(values or ()):
                yield Reference(value, role, sources[i] if i < len(sources) else resource.source)


class Suggester:
    """Did-you-mean over every address declared in a repository, in time linear in the
    number of addresses: a typo one edit away (a letter wrong, missing, extra or two swapped)
    in the name before the @ shares a one-letter deletion with the address meant; a malformed
    address, or one in a domain no declared address has, is matched by the name before its @
    (or its first dot)."""

    def __init__(self, declared: Collection[str]) -> None:
        self.declared = frozenset(a.lower() for a in declared)
        self.by_local: dict[str, list[str]] = {}
        self.domains = {address.rpartition("@")[2] for address in self.declared}
        # Each declared address under every one-letter deletion of its name, in sorted order
        # (lists: most variants name one address, and a set for each costs more).
        by_deletion: dict[str, list[str]] = {}
        for address in sorted(self.declared):
            local, _, domain = address.rpartition("@")
            self.by_local.setdefault(local, []).append(address)
            at_domain = "@" + domain
            for variant in _deletions(local):
                bucket = by_deletion.get(variant + at_domain)
                if bucket is None:
                    by_deletion[variant + at_domain] = [address]
                else:
                    bucket.append(address)
        self.by_deletion = by_deletion

    def __call__(self, address: str) -> str | None:
        """The declared address ``address`` was probably meant to be, or None."""
        text = address.lower()
        if text in self.declared:
            return None
        if ADDRESS.match(text):
            local, _, domain = text.rpartition("@")
            found = set().union(*(self.by_deletion.get(f"{v}@{domain}", ())
                                  for v in _deletions(local)))
            if found:
                return min(found)
            if domain in self.domains:
                return None  # a name of its own in a domain the repository uses
        local = text.partition("@")[0] if "@" in text else text.partition(".")[0]
        same = self.by_local.get(local)
        return same[0] if same else None


def _deletions(word: str) -> set[str]:
    return {word} | {word[:i] + word[i + 1:] for i in range(len(word))}


def problem(ref: Reference, domains: Collection[str]) -> str | None:
    """What is wrong with one reference on its own, or None."""
    if not ADDRESS.match(ref.address):
        return (f"the {ref.role} '{ref.address}' is not an email address (name@domain.tld)")
    domain = ref.address.rpartition("@")[2].lower()
    if ref.internal and domain not in domains:
        return (f"the {ref.role} {ref.address} is not in a domain of this customer "
                f"({', '.join(sorted(domains))}); use one of those, or add the domain to "
                "mail_domains in customer.yaml")
    return None
