"""The tenant's recipients, indexed so that any form Exchange uses for a principal resolves.

Exchange names principals in permission entries, ManagedBy, members and forwarding by a
recipient's Name (for objects created since 2022 a GUID), its Guid, its
ExternalDirectoryObjectId, an address or its display name. Comparing such strings with the
addresses in YAML would report phantom drift, so everything goes through this map, and both
sides of a comparison use the same canonical key: the lower-case primary SMTP address.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.model import CALENDAR_BUILTIN_USERS, Customer, Location

# Recipient attributes the placement rules of docs/format.md §3 look at.
PLACEMENT_FIELDS: Mapping[str, str] = {
    "office": "Office",
    "city": "City",
    "department": "Department",
    "country": "CountryOrRegion",
    "usage_location": "UsageLocation",
}

_IDENTITY_FIELDS = ("Name", "Guid", "ExternalDirectoryObjectId", "UserPrincipalName",
                    "PrimarySmtpAddress", "Alias", "Identity")


@dataclass(frozen=True, slots=True)
class Recipient:
    key: str  # canonical: lower-case primary SMTP address
    upn: str
    display_name: str
    type_details: str
    attributes: Mapping[str, Any]


def strip_smtp(address: str) -> str:
    """``smtp:x@y`` / ``SMTP:x@y`` as Exchange decorates addresses, to ``x@y``."""
    return address[5:] if address[:5].lower() == "smtp:" else address


# Given principal strings no recipient answers to yet, the recipients they name (a pull request's
# plan fetches recipients as it meets them instead of reading the whole tenant).
Lookup = Callable[[list[str]], Iterable[Mapping[str, Any]]]


class Directory:
    """Resolves any principal form to a :class:`Recipient`.

    Built from every recipient of the tenant, or, for a scoped read, from a few with a
    ``lookup`` that fetches the ones a principal names the first time it is asked for; after
    :meth:`seal` (the read is over), what was never fetched resolves to nothing."""

    def __init__(self, recipients: Iterable[Mapping[str, Any]],
                 lookup: Lookup | None = None) -> None:
        self.recipients: dict[str, Recipient] = {}
        self._index: dict[str, Recipient] = {}
        self._resolved: dict[str, Recipient] = {}  # principal as asked -> what _index answered
        self._display: dict[str, list[Recipient]] = {}
        self._shared: set[str] | None = None  # display names borne twice or more, once known
        self._lookup = lookup
        self._asked: set[str] = set()
        self._lock = threading.Lock()
        self.add(recipients)

    def add(self, recipients: Iterable[Mapping[str, Any]]) -> None:
        self._shared = None
        for raw in recipients:
            address = strip_smtp(str(raw.get("PrimarySmtpAddress") or "")).lower()
            upn = str(raw.get("UserPrincipalName") or address).lower()
            key = address or upn
            if not key or key in self.recipients:
                continue
            recipient = Recipient(key=key, upn=upn, display_name=str(raw.get("DisplayName") or ""),
                                  type_details=str(raw.get("RecipientTypeDetails") or ""),
                                  attributes=raw)
            self.recipients[key] = recipient
            for name in _IDENTITY_FIELDS:
                value = raw.get(name)
                if value:
                    self._index.setdefault(strip_smtp(str(value)).lower(), recipient)
            for extra in raw.get("EmailAddresses") or ():
                self._index.setdefault(strip_smtp(str(extra)).lower(), recipient)
            if recipient.display_name:
                self._display.setdefault(recipient.display_name.lower(), []).append(recipient)

    def fetch(self, principals: Iterable[str], *, display_names: bool = True) -> None:
        """Fetch, in one go, the recipients of those ``principals`` not asked for before; with
        ``display_names``, then every recipient sharing a display name with one of them."""
        if self._lookup is None:
            return
        with self._lock:
            wanted = []
            for principal in principals:
                text = strip_smtp(principal.strip()).lower()
                if text and text not in self._asked and text not in self._index \
                        and principal.strip() not in CALENDAR_BUILTIN_USERS \
                        and not is_system_principal(text):
                    self._asked.add(text)
                    wanted.append(strip_smtp(principal.strip()))
            if wanted:
                fetched = list(self._lookup(wanted))
                self.add(fetched)
                # Their display names too, once: whether a display name is shared must be
                # known before an entry naming it is resolved (Exchange's calendar entries
                # name grantees by display name).
                names = {str(r.get("DisplayName") or "") for r in fetched} - {""}
                names = {n for n in names if display_names and n.lower() not in self._asked}
                self._asked.update(n.lower() for n in names)
                if names:
                    self.add(self._lookup(sorted(names)))

    @property
    def fetching(self) -> bool:
        """Whether recipients not known yet are fetched when asked for (a scoped read)."""
        return self._lookup is not None

    def seal(self) -> None:
        """No more fetching: the backend is closed."""
        self._lookup = None

    def resolve(self, principal: str) -> Recipient | None:
        """The recipient a principal string names, or None. A display name shared by two
        recipients is ambiguous and resolves to nothing rather than to a guess."""
        found = self._resolved.get(principal)
        if found is not None:
            return found
        text = strip_smtp(principal.strip()).lower()
        found = self._index.get(text)
        if found is None and self._lookup is not None and text not in self._asked:
            self.fetch([principal])
            found = self._index.get(text)
        if found is not None:
            # What the index answers never changes (add keeps the first recipient of a key):
            # the same string, asked again by every entry naming it, costs one lookup.
            self._resolved[principal] = found
            return found
        candidates = self._display.get(text, [])
        return candidates[0] if len(candidates) == 1 else None

    def bearing_display_name(self, name: str) -> list[Recipient]:
        """Every recipient whose display name is ``name`` (letter case aside)."""
        self.fetch([name])
        return list(self._display.get(name.strip().lower(), ()))

    def any_display_name_shared(self, names: Iterable[str]) -> bool:
        """Whether any of ``names`` is a display name two or more recipients bear. Once every
        recipient is known (a full read), a tenant where no two share one answers at once,
        without looking at the names."""
        if self._lookup is not None:
            return any(self.display_name_shared(name) for name in names)
        if self._shared is None:
            self._shared = {n for n, bearers in self._display.items() if len(bearers) > 1}
        shared = self._shared
        return bool(shared) and any(name.strip().lower() in shared for name in names)

    def display_name_shared(self, name: str) -> bool:
        """Whether two or more recipients bear display name ``name`` (asked of every calendar
        entry read: one dictionary lookup once the name's bearers are known)."""
        if self._lookup is not None:
            self.fetch([name])
        return len(self._display.get(name.strip().lower(), ())) > 1

    def canonical(self, principal: str) -> str:
        """The canonical key of a principal; built-in calendar users keep their name, and an
        unresolvable principal (a deleted user's SID, say) is kept as Exchange wrote it so that
        it can still be shown and removed."""
        if principal in CALENDAR_BUILTIN_USERS:
            return principal
        # What was resolved before is asked for by every entry naming it: no call for it.
        found = self._resolved.get(principal) or self.resolve(principal)
        return found.key if found is not None else principal


def is_system_principal(principal: str) -> bool:
    """Entries Exchange adds itself and the reconciler never manages: ``NT AUTHORITY\\SELF``
    and other ``DOMAIN\\account`` entries. A bare SID (a deleted account's leftover grant) is
    not one: it is an explicit grant nobody declared, so it is shown and removed."""
    return "\\" in principal


def _rules(customer: Customer) -> list[tuple[str, tuple[tuple[str, frozenset[str]], ...]]]:
    """Each site's placement rules with values lower-cased once, not once per recipient."""
    cached = _RULES.get(id(customer))
    if cached is None or cached[0] is not customer:
        rules = [(site.id, tuple((attribute, frozenset(v.lower() for v in accepted))
                                 for attribute, accepted in site.placement))
                 for site in customer.sites.values()]
        cached = _RULES[id(customer)] = (customer, rules)
    return cached[1]


_RULES: dict[int, tuple[Customer, list[tuple[str, tuple[tuple[str, frozenset[str]], ...]]]]] = {}


def placement_site(customer: Customer,
                   attributes: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """The site a live recipient's attributes place it at (docs/format.md §3), and every site whose
    rules matched (more than one is ambiguous: the recipient stays at customer level)."""
    matched: list[str] = []
    for site_id, rules in _rules(customer):
        for attribute, accepted in rules:
            if attribute == "upn_domain":
                value = str(attributes.get("UserPrincipalName") or "").rpartition("@")[2]
            else:
                value = str(attributes.get(PLACEMENT_FIELDS[attribute]) or "")
            if value and value.lower() in accepted:
                matched.append(site_id)
                break
    return (matched[0] if len(matched) == 1 else None), matched


def placement_location(customer: Customer, attributes: Mapping[str, Any]) -> Location:
    site, _ = placement_site(customer, attributes)
    return Location(customer.id, site) if site else Location(customer.id)
