"""Diff one customer's desired state against its live state (docs/format.md §4, §7).

Set arithmetic on identities decides create / delete / unmanaged; each resource on both sides
is compared setting by setting, on the settings the YAML manages only. Before comparing,
desired principals are resolved through the same recipient map as live ones, so that a grant
written as ``bob@contoso.com`` equals one Exchange reports as ``Bob Jones`` or a GUID.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reconciler.desired.addresses import Suggester
from reconciler.errors import Problem
from reconciler.live.directory import placement_location
from reconciler.live.reader import LiveTenant, normalise_message
from reconciler.model import (
    CALENDAR_BUILTIN_USERS,
    AccessGrant,
    AutoReply,
    Booking,
    CalendarGrant,
    CustomerState,
    DistributionGroup,
    Forwarding,
    Location,
    Mailbox,
    Resource,
    RoomMailbox,
    SourceRef,
    UserMailbox,
)
from reconciler.plan.operations import create_operations, delete_operations, update_operations
from reconciler.plan.plan import Change, Refusal
from reconciler.plan.serialize import settings_json
from reconciler.plan.tenant_rules import (
    CreateRules,
    deletes_refusal,
    entry_problems,
    exchange_notes,
    rename_note,
)

SOFT_DELETE_NOTE = ("Exchange keeps a removed mailbox recoverable for 30 days "
                    "(Undo-SoftDeletedMailbox).")
GROUP_DELETE_NOTE = "A removed distribution group cannot be recovered."
# Below this many existing resources, max_change_percent is not checked: one change in a
# tenant of three mailboxes is 33% and says nothing about a mistake.
MIN_EXISTING_FOR_PERCENT = 10

EXPECTED_LIVE_TYPES = {
    "user_mailbox": {"UserMailbox", "SharedMailbox"},
    "shared_mailbox": {"SharedMailbox"},
    "room_mailbox": {"RoomMailbox"},
    # Room lists and mail-enabled security groups are not distribution groups of this product.
    "distribution_group": {"DistributionGroup", "MailUniversalDistributionGroup"},
}


@dataclass
class CustomerDiff:
    changes: list[Change] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


def _held_by(rid: str, live: LiveTenant) -> str:
    """Who holds ``rid`` when it is not that recipient's primary address (its user principal
    name or a secondary address): the error names the holder as Exchange knows it."""
    holder = live.directory.resolve(rid)
    if holder is None or holder.key == rid:
        return ""
    how = "user principal name" if holder.upn.lower() == rid else "secondary address"
    return f" ({holder.key}, which holds {rid} as its {how})"


def diff_customer(desired: CustomerState, live: LiveTenant, *,
                  scope: set[str] | None = None, root: str | None = None) -> CustomerDiff:
    """Changes that take ``live`` to ``desired``. ``scope`` limits the diff to those ids
    (a pull request's plan); unmanaged and delete detection then only covers them too.
    Each change names its YAML entry relative to ``root``, so that the plan does not depend on
    the directory it was made from."""
    out = CustomerDiff()
    for rid, ambiguous in sorted(live.ambiguous_placement.items()):
        out.warnings.append(f"{desired.customer.id}: {rid} matches the placement rules of sites "
                            f"{', '.join(ambiguous)}; it stays at customer level")
    _declared_changes(desired, live, scope, root, out)
    out.changes.extend(_undeclared_changes(desired, live, scope, root))
    out.refusals.extend(_safety(desired, live, out.changes))
    return out


def _declared_changes(desired: CustomerState, live: LiveTenant, scope: set[str] | None,
                      root: str | None, out: CustomerDiff) -> None:
    """The create, update or move of each declared resource (in scope), or the problems that
    stop it."""
    resolver = _Resolver(desired, live, out.problems)
    creates = CreateRules(live, root)
    for rid in sorted(desired.resources):
        if scope is not None and rid not in scope:
            continue
        wanted = resolver.resolve(desired.resources[rid])
        kind = live.exists_as.get(rid)
        if kind is not None and kind not in EXPECTED_LIVE_TYPES[wanted.type.value]:
            out.problems.append(Problem(
                f"{rid} is declared as a {wanted.type.value} but exists in the tenant as a "
                f"{kind}{_held_by(rid, live)}; declare it under the matching list or remove "
                f"the entry",
                wanted.source))
            continue
        out.problems.extend(entry_problems(wanted, desired, live))
        have = live.state.resources.get(rid)
        change = (_compare(wanted, have, root) if have is not None
                  else _creation(wanted, desired, live, creates, root, out.problems))
        if change is not None:
            out.changes.append(_noted(change, wanted, have, live))


def _creation(wanted: Resource, desired: CustomerState, live: LiveTenant, creates: CreateRules,
              root: str | None, problems: list[Problem]) -> Change | None:
    """The create of a declared resource the tenant lacks; None, with the problem added,
    when it cannot be created."""
    if isinstance(wanted, UserMailbox):
        problems.append(Problem(
            f"user mailbox {wanted.id} does not exist in the tenant; user mailboxes are "
            f"created in Microsoft 365, not here: check the address or create the user "
            f"first", wanted.source))
        return None
    problem, change = creates.check(wanted)
    if problem is not None:
        problems.append(problem)
        return None
    if change is None:
        change = _change(wanted, "create", None, settings_json(wanted),
                         create_operations(wanted), root=root,
                         notes=_optional(rename_note(wanted, live, desired)))
    return change


def _undeclared_changes(desired: CustomerState, live: LiveTenant, scope: set[str] | None,
                        root: str | None) -> list[Change]:
    """What happens to each live resource no file declares (in scope): deleted under
    ``prune``, else shown as unmanaged."""
    policy = desired.customer.policy
    changes = []
    for rid in sorted(set(live.state.resources) - set(desired.resources)):
        if scope is not None and rid not in scope:
            continue
        have = live.state.resources[rid]
        before = settings_json(have)
        if policy.prune and rid not in policy.protect:
            notes = (GROUP_DELETE_NOTE if isinstance(have, DistributionGroup)
                     else SOFT_DELETE_NOTE,)
            changes.append(_change(have, "delete", before, None, delete_operations(have),
                                   root=root, notes=notes))
        else:
            notes = (("protected by policy: never deleted",) if rid in policy.protect
                     else ("declared nowhere; set policy prune: true to delete it, or import "
                           "it into YAML",))
            changes.append(_change(have, "unmanaged", before, None, [], root=root,
                                   notes=notes))
    return changes


def _optional(note: str | None) -> tuple[str, ...]:
    return (note,) if note else ()


def _noted(change: Change, wanted: Resource, have: Resource | None,
           live: LiveTenant) -> Change:
    """The change with what Exchange will do beyond it, as notes."""
    notes = exchange_notes(wanted, have, change, live)
    return dataclasses.replace(change, notes=(*change.notes, *notes)) if notes else change


def _change(resource: Resource, action: str, before: dict[str, Any] | None,
            after: dict[str, Any] | None, operations: list[Any], *, root: str | None,
            moved_from: Location | None = None, notes: tuple[str, ...] = ()) -> Change:
    source = resource.source
    return Change(
        customer=resource.located_at.customer, site=resource.located_at.site,
        type=resource.type.value, id=resource.id, action=action, before=before, after=after,
        operations=tuple(operations), moved_from=str(moved_from) if moved_from else None,
        notes=notes, source=source.in_repository(root) if source else None)


# Part of the identity (the address is alias@domain), shown on create but never compared.
IDENTITY_SETTINGS = frozenset({"alias"})


def _compare(wanted: Resource, have: Resource, root: str | None) -> Change | None:
    keys = [name for name, _ in wanted.managed_settings() if name not in IDENTITY_SETTINGS]
    projected = project(wanted, have)
    moved = wanted.located_at != have.located_at
    differs = any(getattr(wanted, k) != getattr(projected, k) for k in keys)
    if not differs and not moved:
        return None
    before, after = settings_json(projected, keys), settings_json(wanted, keys)
    moved_from = have.located_at if moved else None
    if not differs:
        return _change(wanted, "move", before, after, [], root=root, moved_from=moved_from)
    return _change(wanted, "update", before, after, update_operations(wanted, projected),
                   root=root, moved_from=moved_from)


def project(wanted: Resource, have: Resource) -> Resource:
    """``have`` seen through what ``wanted`` manages: sub-settings the YAML leaves out take
    the desired value (they are not compared), and values Exchange cannot report (AutoMapping)
    are assumed to match. Also Exchange's HTML and whitespace in messages are normalised on
    both sides by comparing against the desired text when they agree after normalising."""
    updates: dict[str, Any] = {}
    if isinstance(wanted, Mailbox) and isinstance(have, Mailbox):
        if wanted.custom_attributes is not None:
            had = dict(have.custom_attributes or ())
            updates["custom_attributes"] = tuple((n, had.get(n, ""))
                                                 for n, _ in wanted.custom_attributes)
        if wanted.auto_reply is not None and have.auto_reply is not None:
            updates["auto_reply"] = _project_auto_reply(wanted.auto_reply, have.auto_reply)
        if wanted.forwarding is not None and have.forwarding is not None \
                and wanted.forwarding.is_none and have.forwarding.is_none:
            updates["forwarding"] = wanted.forwarding
    if wanted.permissions is not None and have.permissions is not None:
        wanted_by_user = {g.user: g for g in wanted.permissions}
        grants = []
        for g in have.permissions:
            w = wanted_by_user.get(g.user)
            if w is not None and (w.automapping is None or g.automapping is None) \
                    and g.automapping != w.automapping:
                g = dataclasses.replace(g, automapping=w.automapping)
            grants.append(g)
        updates["permissions"] = tuple(sorted(grants, key=lambda g: g.user))
    if isinstance(wanted, Mailbox) and isinstance(have, Mailbox) \
            and wanted.calendar_permissions is not None and have.calendar_permissions is not None:
        declared = {g.user for g in wanted.calendar_permissions}
        # Default and Anonymous are managed only when declared.
        updates["calendar_permissions"] = tuple(
            g for g in have.calendar_permissions
            if g.user not in CALENDAR_BUILTIN_USERS or g.user in declared)
    if isinstance(wanted, RoomMailbox) and isinstance(have, RoomMailbox) \
            and wanted.booking is not None and have.booking is not None:
        updates["booking"] = _project_booking(wanted.booking, have.booking)
    projected = dataclasses.replace(have, **updates) if updates else have
    return _same_type(wanted, projected)


def _project_booking(wanted: Booking, have: Booking) -> Booking:
    """The live booking with what the YAML leaves out taken as not managed."""
    return Booking(**{key: getattr(have, key) if getattr(wanted, key) is not None else None
                      for key in ("automate", "delegates", "all_book_in_policy",
                                  "delegates_receive_requests")})


def _project_auto_reply(wanted: AutoReply, have: AutoReply) -> AutoReply:
    values: dict[str, Any] = {"state": have.state}
    for key in ("start", "end", "internal_message", "external_audience", "external_message"):
        want, got = getattr(wanted, key), getattr(have, key)
        if want is None:
            values[key] = None
        elif key.endswith("message") and normalise_message(want) == normalise_message(got):
            values[key] = want
        else:
            values[key] = got
    return AutoReply(**values)


def _same_type(wanted: Resource, have: Resource) -> Resource:
    """Compare a user mailbox converted to shared as the user mailbox the YAML declares."""
    if type(have) is type(wanted):
        return have
    names = {f.name for f in dataclasses.fields(wanted)}
    values = {f.name: getattr(have, f.name) for f in dataclasses.fields(have)
              if f.name in names}
    if isinstance(wanted, UserMailbox):
        values["convert_to"] = "shared"
    return type(wanted)(**values)


def _safety(desired: CustomerState, live: LiveTenant, changes: list[Change]) -> list[Refusal]:
    return safety_refusals(desired, existing_count(live), changes)


def existing_count(live: LiveTenant) -> int:
    """How many resources the customer has live, whether the read was scoped or not."""
    return live.existing or len(live.state.resources)


def safety_refusals(desired: CustomerState, existing: int,
                    changes: Iterable[Change]) -> list[Refusal]:
    """The customer's safety limits (docs/format.md §7) over ``changes``, against ``existing`` live
    resources. Apply calls this again for a saved plan: a file's own refusals are never read."""
    policy = desired.customer.policy
    cid = desired.customer.id
    refusals = []
    changes = [c for c in changes if c.customer == cid]
    # Disabling an archive destroys as a delete does (docs/format.md §7).
    too_many = deletes_refusal(cid, changes, policy.max_deletes)
    if too_many is not None:
        refusals.append(too_many)
    touched = sum(1 for c in changes if c.action in ("update", "delete", "move"))
    if policy.max_change_percent is not None and existing >= MIN_EXISTING_FOR_PERCENT:
        percent = 100.0 * touched / existing
        if percent > policy.max_change_percent:
            refusals.append(Refusal(cid, (
                f"{touched} of {existing} existing resources change ({percent:.0f}%), over "
                f"max_change_percent {policy.max_change_percent:g} of customer {cid}")))
    return refusals


G = TypeVar("G", AccessGrant, CalendarGrant)


def _user(grant: AccessGrant | CalendarGrant) -> str:
    return grant.user


class _Resolver:
    """Turns the principals the YAML names into canonical keys, and checks at plan time what
    needs live state: that users exist, and the same-site rule."""

    def __init__(self, desired: CustomerState, live: LiveTenant, problems: list[Problem]):
        self.desired = desired
        self.live = live
        self.problems = problems
        self.customer = desired.customer
        self.allow_cross_site = self.customer.policy.cross_site_permissions == "allow"
        self._located: dict[str, Location] = {}
        self._principals: dict[str, tuple[str, Location]] = {}
        self._suggester: Suggester | None = None

    def _suggest(self, name: str) -> str | None:
        """Validate's did-you-mean, over the tenant's addresses and the customer's declared
        ones (built once, at the first unknown principal)."""
        if self._suggester is None:
            self._suggester = Suggester([*self.live.directory.recipients,
                                         *self.desired.resources])
        return self._suggester(name)

    def principal(self, name: str, source: SourceRef | None, owner: Resource,
                  role: str) -> str:
        if name in CALENDAR_BUILTIN_USERS:
            return name
        # Most principals are named by many entries: each distinct string is looked up once.
        found = self._principals.get(name)
        if found is None:
            found = self._lookup(name)
            if found is None:
                hint = self._suggest(name)
                self.problems.append(Problem(
                    f"{role} {name!r} of {owner.id} does not exist in the tenant of customer "
                    f"{self.customer.id}" + (f"; did you mean {hint}? (or declare the "
                                             "mailbox first)" if hint else
                                             ": check the address, or declare the mailbox "
                                             "first"),
                    source or owner.source))
                return name.lower()
            self._principals[name] = found
        key, located = found
        site = owner.located_at
        if (not self.allow_cross_site and not site.at_customer_level
                and not located.at_customer_level and located.site != site.site):
            self.problems.append(Problem(
                f"{role} {name} of {owner.id} is located at site {located.site}, not at "
                f"{site.site}; grant to someone at {site.site}, or set policy "
                f"cross_site_permissions: allow for customer {self.customer.id}",
                source or owner.source))
        return key

    def _lookup(self, name: str) -> tuple[str, Location] | None:
        """The canonical key of ``name`` and where it is located; None when nobody answers."""
        lowered = name.lower()
        if lowered in self.desired.resources:
            return lowered, self.desired.resources[lowered].located_at
        recipient = self.live.directory.resolve(name)
        if recipient is None:
            return None
        key = recipient.key
        located = self._located.get(key)
        if located is None:
            declared = self.desired.resources.get(key) or self.desired.resources.get(
                recipient.upn)
            located = self._located[key] = (
                declared.located_at if declared is not None
                else placement_location(self.customer, recipient.attributes))
        return key, located

    def resolve(self, resource: Resource) -> Resource:
        updates: dict[str, Any] = {}
        if resource.permissions is not None:
            updates["permissions"] = self._grants(resource, resource.permissions, "grantee")
        if isinstance(resource, Mailbox):
            if resource.calendar_permissions is not None:
                updates["calendar_permissions"] = self._grants(
                    resource, resource.calendar_permissions, "calendar user")
            fwd = resource.forwarding
            if fwd is not None:
                if fwd.internal is not None:
                    fwd = dataclasses.replace(fwd, internal=self.principal(
                        fwd.internal, fwd.source, resource, "forwarding target"))
                elif fwd.external is not None:
                    fwd = dataclasses.replace(fwd, external=fwd.external.lower())
                if fwd.is_none:
                    fwd = Forwarding()
                updates["forwarding"] = fwd
        if isinstance(resource, RoomMailbox) and resource.booking is not None \
                and resource.booking.delegates is not None:
            booking = resource.booking
            updates["booking"] = dataclasses.replace(booking, delegates=self._list(
                resource, booking.delegates, booking.delegate_sources, "booking delegate"))
        if isinstance(resource, DistributionGroup):
            if resource.owners is not None:
                updates["owners"] = self._list(resource, resource.owners,
                                               resource.owner_sources, "owner")
            if resource.members is not None:
                updates["members"] = self._list(resource, resource.members,
                                                resource.member_sources, "member")
        # Settings already in canonical form come back as they were: no copy of the resource.
        updates = {k: v for k, v in updates.items() if v is not getattr(resource, k)}
        return dataclasses.replace(resource, **updates) if updates else resource

    def _grants(self, resource: Resource, grants: tuple[G, ...], role: str) -> tuple[G, ...]:
        """``grants`` with each user resolved to its canonical key, sorted by it; the same
        tuple when every user already is its key and the order holds (the common case)."""
        resolved = []
        for g in grants:
            key = self.principal(g.user, g.source, resource, role)
            resolved.append(g if key == g.user else dataclasses.replace(g, user=key))
        resolved.sort(key=_user)
        if all(a is b for a, b in zip(resolved, grants, strict=True)):
            return grants
        return tuple(resolved)

    def _list(self, resource: Resource, names: tuple[str, ...],
              sources: tuple[SourceRef | None, ...], role: str) -> tuple[str, ...]:
        keys = set()
        for i, name in enumerate(names):
            source = sources[i] if i < len(sources) else None
            keys.add(self.principal(name, source, resource, role))
        return tuple(sorted(keys))

