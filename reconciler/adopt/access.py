"""Access reports: who can read, send as or send on behalf of a mailbox, and what a user can
reach. The question auditors ask most, answered from the desired state (what the YAML grants)
or from live state (what Exchange grants, read in full through the backend).

Every grant is one :class:`Access` row: FullAccess (read the mailbox), SendAs, SendOnBehalf,
a calendar entry, group ownership or membership, and forwarding (where the mail goes). Grants
to a distribution group reach its members too; those rows name the group in ``via``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from reconciler.adopt.export import spreadsheet_safe
from reconciler.adopt.inventory import inventory_of, read_inventory, read_raw
from reconciler.live.backend import Backend
from reconciler.model import (
    CALENDAR_BUILTIN_USERS,
    Customer,
    CustomerState,
    DistributionGroup,
    Mailbox,
    Resource,
)
from reconciler.safe import json_text

FORMAT_VERSION = "1.0"
RIGHT_LABELS = {
    "FullAccess": "Read and manage (FullAccess)",
    "SendAs": "Send as",
    "SendOnBehalf": "Send on behalf",
    "Calendar": "Calendar",
    "Owner": "Group owner",
    "Member": "Group member",
    "ForwardsTo": "Mail forwarded to",
}
RIGHT_ORDER = tuple(RIGHT_LABELS)
# Owning a group, being in it, or its forwarding gives its members nothing.
_NOT_PASSED_DOWN = ("Member", "Owner", "ForwardsTo")
# Seen from the user's side, forwarding is mail arriving, not a right over the mailbox.
USER_LABELS = {**RIGHT_LABELS, "ForwardsTo": "Receives mail forwarded from"}
CSV_COLUMNS = ("customer", "site", "mailbox", "type", "principal", "right", "detail", "via",
               "source")


@dataclass(frozen=True, slots=True, order=True)
class Access:
    customer: str
    site: str
    mailbox: str
    type: str
    principal: str
    right: str
    detail: str = ""  # calendar role or rights; forwarding's delivery
    via: str = ""  # the group a grant reaches the principal through
    source: str = ""  # file:line of the declaring YAML entry (desired state)


def grants_of(resource: Resource, canonical: Callable[[str], str],
              root: str | None = None) -> list[Access]:
    """Every grant on ``resource``, principals as ``canonical`` gives them, each naming its
    YAML entry relative to the repository ``root``."""
    loc = resource.located_at
    source = resource.source.in_repository(root) if resource.source else ""

    def row(principal: str, right: str, detail: str = "") -> Access:
        return Access(loc.customer, loc.site, resource.id, resource.type.value,
                      canonical(principal), right, detail, "", source)

    out = [row(g.user, right) for g in resource.permissions or () for right in sorted(g.access)]
    if isinstance(resource, Mailbox):
        for cal in resource.calendar_permissions or ():
            detail = "+".join(cal.access_rights)
            if cal.delegate:
                detail += ", delegate" + (" with private items" if cal.private_items else "")
            out.append(row(cal.user, "Calendar", detail))
        fwd = resource.forwarding
        if fwd is not None and not fwd.is_none:
            target = fwd.internal or fwd.external or ""
            out.append(row(target, "ForwardsTo",
                           "keeps a copy" if fwd.deliver_to_mailbox else "no copy kept"))
    if isinstance(resource, DistributionGroup):
        out += [row(o, "Owner") for o in resource.owners or ()]
        out += [row(m, "Member") for m in resource.members or ()]
    return out


class AccessIndex:
    """The grants of a set of resources, with group grants expanded to members."""

    def __init__(self, resources: Iterable[Resource],
                 canonical: Callable[[str], str] | None = None,
                 root: str | None = None) -> None:
        canonical = canonical or _as_written
        self.canonical = canonical
        self.resources = {r.id: r for r in resources}
        self.rows = [a for r in self.resources.values()
                     for a in grants_of(r, canonical, root)]
        self.members: dict[str, set[str]] = {}
        for r in self.resources.values():
            if isinstance(r, DistributionGroup):
                self.members[r.id] = {canonical(m) for m in r.members or ()}

    def _via_groups(self, rows: list[Access]) -> list[Access]:
        """Rows for the members of groups that hold a grant (not for ownership/membership
        itself, which does not pass down)."""
        out = []
        for a in rows:
            if a.right in _NOT_PASSED_DOWN or a.principal not in self.members:
                continue
            for member in sorted(self.members[a.principal]):
                out.append(Access(a.customer, a.site, a.mailbox, a.type, member, a.right,
                                  a.detail, a.principal, a.source))
        return out

    def find(self, name: str) -> Resource | None:
        return self.resources.get(self.canonical(name)) or self.resources.get(name.lower())

    def on_mailbox(self, mailbox: str) -> list[Access]:
        """Who can reach ``mailbox``; system calendar entries (Default, Anonymous) included."""
        target = self.find(mailbox)
        if target is None:
            return []
        rows = [a for a in self.rows if a.mailbox == target.id]
        return sorted(rows + self._via_groups(rows), key=order_key)

    def of_user(self, user: str) -> list[Access]:
        """What ``user`` can reach: grants to it, and grants to groups it is a member of."""
        key = self.canonical(user)
        direct = [a for a in self.rows if a.principal == key
                  and a.principal not in CALENDAR_BUILTIN_USERS]
        via = [a for a in self._via_groups(self.rows) if a.principal == key]
        return sorted(direct + via, key=order_key)


def _as_written(principal: str) -> str:
    """Desired state's principals: addresses compare without case; the calendar's built-in
    entries keep their names."""
    return principal if principal in CALENDAR_BUILTIN_USERS else principal.lower()


def order_key(a: Access) -> tuple[Any, ...]:
    return (RIGHT_ORDER.index(a.right), a.customer, a.site, a.mailbox, a.principal, a.via)


def live_index(customer: Customer, backend: Backend, *, mailbox: str | None = None,
               workers: int = 4, desired: CustomerState | None = None) -> AccessIndex:
    """The grants of a live tenant. For one mailbox, only that mailbox is read (and the groups
    it grants to, for their members), not the whole tenant. With ``desired``, a resource the
    YAML declares is located where the YAML says."""
    desired = desired or CustomerState(customer)
    if mailbox is None:
        inventory = read_inventory(customer, backend, workers=workers).locate_as_declared(desired)
        return AccessIndex(inventory.resources.values(), inventory.directory.canonical)
    raw = read_raw(backend, workers=workers, only=[mailbox])
    inventory = inventory_of(customer, raw).locate_as_declared(desired)
    index = AccessIndex(inventory.resources.values(), inventory.directory.canonical)
    groups = set()
    for a in index.rows:
        recipient = inventory.directory.resolve(a.principal)
        if a.right not in _NOT_PASSED_DOWN and recipient is not None \
                and "Group" in recipient.type_details:
            groups.add(recipient.key)
    if groups:
        inventory = inventory_of(customer, read_raw(backend, workers=workers,
                                                    only=[mailbox, *groups]))
        inventory.locate_as_declared(desired)
        index = AccessIndex(inventory.resources.values(), inventory.directory.canonical)
    return index


# --- rendering ------------------------------------------------------------------------------


def _site(site: str) -> str:
    return "customer level" if site == "-" else f"site {site}"


def render_text(rows: list[Access], *, mailbox: str | None = None, user: str | None = None,
                origin: str = "desired state", resource: Resource | None = None) -> str:
    out: list[str] = []
    if mailbox is not None:
        where = (f" ({resource.type.value} at {resource.located_at.customer}, "
                 f"{_site(resource.located_at.site)})" if resource is not None else "")
        out.append(f"Who can reach {mailbox}{where}, from the {origin}:")
        for right in RIGHT_ORDER:
            if right in ("Member", "Owner") and not (
                    resource is not None and isinstance(resource, DistributionGroup)):
                continue
            hits = [a for a in rows if a.right == right]
            shown = ", ".join(_who(a) for a in hits) or "nobody"
            out.append(f"  {RIGHT_LABELS[right] + ':':<31} {shown}")
    else:
        out.append(f"What {user} can reach, from the {origin}:")
        if not rows:
            out.append("  nothing: no grant, calendar entry, group or forwarding names it")
        for a in rows:
            detail = f" ({a.detail})" if a.detail else ""
            via = f" via group {a.via}" if a.via else ""
            out.append(f"  {USER_LABELS[a.right] + ':':<31} {a.mailbox} [{a.type}, "
                       f"{a.customer}, {_site(a.site)}]{detail}{via}")
    return "\n".join(out) + "\n"


def _who(a: Access) -> str:
    extra = [a.detail] if a.detail else []
    if a.via:
        extra.append(f"via {a.via}")
    return a.principal + (f" ({'; '.join(extra)})" if extra else "")


def to_json(rows: list[Access], query: dict[str, str], origin: str) -> str:
    return json_text(json.dumps({"format_version": FORMAT_VERSION, "kind": "reconciler-access",
                                 "origin": origin, "query": query,
                                 "access": [asdict(a) for a in rows]},
                                indent=2, ensure_ascii=False)) + "\n"


def to_csv(rows: list[Access]) -> str:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for a in rows:
        writer.writerow({k: spreadsheet_safe(str(v)) for k, v in asdict(a).items()})
    return stream.getvalue()
