"""Exchange's own rules (docs/format.md §4), checked at plan time against what the tenant holds.

- Addresses belong to the tenant: a create whose address or alias another recipient already
  holds (as its primary address, a secondary ``smtp:`` proxy or its UPN) is an error naming the
  holder; a soft-deleted mailbox of the same type holding it is recovered instead.
- Grantee kinds: FullAccess, SendAs and SendOnBehalf go to mailbox users, mail users and
  mail-enabled security groups, never to a plain distribution group.
- Names the tenant defines: ``retention_policy`` must name one of the tenant's policies.
- What Exchange will do that the YAML did not ask for, as notes on the change.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from reconciler.errors import Problem
from reconciler.live.directory import Recipient, strip_smtp
from reconciler.live.reader import (
    LiveTenant,
    access_grants,
    custom_attributes,
    forwarding,
    has_archive,
)
from reconciler.live.tenant_facts import FORWARDING_ALLOWED, soft_deleted_holding
from reconciler.model import (
    AccessGrant,
    CalendarGrant,
    CustomerState,
    DistributionGroup,
    Mailbox,
    Resource,
    RoomMailbox,
    SharedMailbox,
    UserMailbox,
)
from reconciler.plan.operations import starting_state, update_operations
from reconciler.plan.plan import Change, Operation, Refusal
from reconciler.plan.serialize import settings_json
from reconciler.words import plural

# Recipient kinds that are no security principal, so Exchange grants them neither FullAccess,
# SendAs, SendOnBehalf nor calendar access (GATEWAY-FACTS §j), each as the error words it.
NOT_GRANTEES = {
    "MailUniversalDistributionGroup": "a distribution group", "RoomList": "a distribution group",
    "DynamicDistributionGroup": "a dynamic distribution group",
    "MailContact": "a mail contact", "MailForestContact": "a mail contact",
}
SOFT_DELETED_TYPES = {"shared_mailbox": "SharedMailbox", "room_mailbox": "RoomMailbox"}
SHARED_LIMIT_BYTES = 50 * 1024 ** 3
ARCHIVE_DISABLE_NOTE = (
    "destructive: Disable-Mailbox -Archive disconnects the mailbox's archive and its contents; "
    "counted against max_deletes")


class _Holders:
    """Every address and alias the tenant's recipients hold, built once per customer."""

    def __init__(self, live: LiveTenant) -> None:
        self.addresses: dict[str, tuple[Recipient, str]] = {}
        self.aliases: dict[str, Recipient] = {}
        self.names: dict[str, Recipient] = {}
        for recipient in live.directory.recipients.values():
            raw = recipient.attributes
            for proxy in raw.get("EmailAddresses") or ():
                text = str(proxy)
                how = "its primary address" if text.startswith("SMTP:") else \
                    "a secondary address"
                self.addresses.setdefault(strip_smtp(text).lower(), (recipient, how))
            self.addresses.setdefault(recipient.key, (recipient, "its primary address"))
            if recipient.upn:
                self.addresses.setdefault(recipient.upn, (recipient, "its user principal name"))
            if raw.get("Alias"):
                self.aliases.setdefault(str(raw["Alias"]).lower(), recipient)
            if raw.get("Name"):
                self.names.setdefault(str(raw["Name"]).lower(), recipient)


class CreateRules:
    """Checks each planned create against the addresses the tenant holds."""

    def __init__(self, live: LiveTenant, root: str | None) -> None:
        self.live = live
        self.root = root
        self._holders: _Holders | None = None

    @property
    def holders(self) -> _Holders:
        if self._holders is None:
            self._holders = _Holders(self.live)
        return self._holders

    def check(self, wanted: Resource) -> tuple[Problem | None, Change | None]:
        """A problem that forbids the create, or a recovery change that replaces it, or
        (None, None) for a plain create."""
        rid = wanted.id
        alias = getattr(wanted, "alias", None) or rid.partition("@")[0]
        held = self.holders.addresses.get(rid)
        if held is not None:
            recipient, how = held
            return self._taken(wanted, f"the address {rid}", recipient, how), None
        by_alias = self.holders.aliases.get(alias.lower())
        if by_alias is not None:
            return self._taken(wanted, f"the alias {alias}", by_alias, "its alias"), None
        # New-Mailbox / New-DistributionGroup -Name is the display name, and Names are unique.
        name = getattr(wanted, "name", None) or alias
        by_name = self.holders.names.get(name.lower())
        if by_name is not None:
            return self._taken(wanted, f"the name '{name}'", by_name, "its Name"), None
        return self._soft_deleted(wanted)

    def _taken(self, wanted: Resource, what: str, holder: Recipient, how: str) -> Problem:
        return Problem(
            f"{wanted.type.value} {wanted.id} cannot be created: {what} is already held by "
            f"{holder.key} ({holder.type_details or 'recipient'}, as {how}); Exchange refuses "
            f"a second holder: remove it from {holder.key} or choose another "
            f"{'name' if how == 'its Name' else 'alias'}{self._rename_hint(wanted, holder)}",
            wanted.source)

    def _rename_hint(self, wanted: Resource, holder: Recipient) -> str:
        have = self.live.state.resources.get(holder.key)
        if have is None or type(have) is not type(wanted):
            return ""
        alias = getattr(have, "alias", None) or holder.key.partition("@")[0]
        return (f"; if this renames {holder.key}, keep `alias: {alias}` to rename it in "
                f"place")

    def _soft_deleted(self, wanted: Resource) -> tuple[Problem | None, Change | None]:
        rows = soft_deleted_holding(self.live.facts, wanted.id)
        if not rows:
            return None, None
        row = rows[0]
        kind = str(row.get("RecipientTypeDetails") or "")
        primary = strip_smtp(str(row.get("PrimarySmtpAddress") or "")).lower()
        if len(rows) > 1 or kind != SOFT_DELETED_TYPES.get(wanted.type.value) \
                or primary != wanted.id:
            holder = primary or str(row.get("Identity"))
            return Problem(
                f"{wanted.type.value} {wanted.id} cannot be created: a soft-deleted "
                f"{kind or 'mailbox'} ({holder}, removed {row.get('WhenSoftDeleted') or '?'}) "
                f"still holds the address{' (and others do too)' if len(rows) > 1 else ''}; "
                f"recover it by hand (Undo-SoftDeletedMailbox) or purge it (Remove-Mailbox "
                f"-PermanentlyDelete), or choose another alias", wanted.source), None
        return None, self._recovery(wanted, row)

    def _recovery(self, wanted: Resource, row: Mapping[str, Any]) -> Change:
        assert isinstance(wanted, SharedMailbox | RoomMailbox)
        identity = str(row.get("ExchangeGuid") or row.get("Guid") or row.get("Identity"))
        restored = _restored(wanted, row, self.live.directory.canonical)
        ops = [Operation("Undo-SoftDeletedMailbox", {"SoftDeletedObject": identity}),
               *update_operations(wanted, restored)]

        note = (f"recovers the soft-deleted {row.get('RecipientTypeDetails')} {wanted.id} "
                f"(removed {row.get('WhenSoftDeleted') or 'within 30 days'}, which still holds "
                f"the address) with Undo-SoftDeletedMailbox, with its contents, then gives it the "
                f"declared settings")
        source = wanted.source
        return Change(
            customer=wanted.located_at.customer, site=wanted.located_at.site,
            type=wanted.type.value, id=wanted.id, action="create", before=None,
            after=settings_json(wanted), operations=tuple(ops), notes=(note,),
            source=source.in_repository(self.root) if source else None)


def _restored(wanted: SharedMailbox | RoomMailbox, row: Mapping[str, Any],
              canonical: Any) -> Mailbox:
    """The mailbox Undo-SoftDeletedMailbox brings back: its own settings, fresh system entries
    and no explicit grants (what Exchange restores of grants is unverified: the plan after the
    recovery reads them)."""
    settings: dict[str, Any] = {
        "name": row.get("DisplayName"), "alias": row.get("Alias"),
        "retention_policy": row.get("RetentionPolicy"), "archive": has_archive(row),
        "forwarding": forwarding(row, canonical),
        "custom_attributes": custom_attributes(row),
        "permissions": access_grants([], [], row.get("GrantSendOnBehalfTo") or [], canonical),
    }
    if isinstance(wanted, RoomMailbox):
        capacity = row.get("ResourceCapacity")
        settings["location"] = row.get("Office") or None
        settings["capacity"] = int(capacity) if capacity not in (None, "") else None
    return starting_state(wanted, **settings)


# --- entries: grantee kinds, retention policies ---------------------------------------------


def entry_problems(wanted: Resource, desired: CustomerState, live: LiveTenant
                   ) -> Iterator[Problem]:
    """What the tenant's definitions forbid in one resolved entry."""
    grants: list[AccessGrant | CalendarGrant] = list(wanted.permissions or ())
    if isinstance(wanted, Mailbox):
        grants += wanted.calendar_permissions or ()
    for grant in grants:
        kind = _kind_of(grant.user, desired, live)
        if kind in NOT_GRANTEES:
            what = (", ".join(sorted(grant.access)) if isinstance(grant, AccessGrant)
                    else "calendar access")
            yield Problem(
                f"grantee {grant.user} of {wanted.id} is {NOT_GRANTEES[kind]} ({kind}): {what} "
                f"can be granted to mailbox users, mail users and mail-enabled security groups "
                f"only; grant it to the members, or use a mail-enabled security group",
                grant.source or wanted.source)
    if isinstance(wanted, Mailbox) and wanted.retention_policy is not None:
        problem = _retention_problem(wanted, live)
        if problem is not None:
            yield problem


def _kind_of(principal: str, desired: CustomerState, live: LiveTenant) -> str:
    declared = desired.resources.get(principal)
    if isinstance(declared, DistributionGroup):
        return "MailUniversalDistributionGroup"
    recipient = live.directory.resolve(principal)
    return recipient.type_details if recipient is not None else ""


def _retention_problem(wanted: Mailbox, live: LiveTenant) -> Problem | None:
    known = live.facts.retention_policies
    if known is None or wanted.retention_policy is None:
        return None
    name = wanted.retention_policy
    if any(p.lower() == name.lower() for p in known):
        return None
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5) or [
        p for p in known if p.lower().startswith(name.lower()[:3])][:1]
    hint = f"did you mean '{close[0]}'? " if close else ""
    return Problem(
        f"retention_policy '{name}' of {wanted.id} is not a retention policy of the tenant; "
        f"{hint}the tenant has: {', '.join(sorted(known)) or 'none'}", wanted.source)


# --- notes: what Exchange will do that the YAML did not ask for ------------------------------


def exchange_notes(wanted: Resource, have: Resource | None, change: Change,
                   live: LiveTenant) -> tuple[str, ...]:
    notes = []
    if isinstance(wanted, Mailbox) and wanted.forwarding is not None \
            and wanted.forwarding.external and _sets_forwarding(change) \
            and live.facts.auto_forwarding_mode is not None \
            and live.facts.auto_forwarding_mode != FORWARDING_ALLOWED:
        notes.append(
            f"Exchange blocks this: the tenant's default outbound spam filter policy has "
            f"AutoForwardingMode {live.facts.auto_forwarding_mode}, so automatic forwarding "
            f"to {wanted.forwarding.external} is dropped until the tenant allows external "
            f"forwarding (AutoForwardingMode On, or a policy for this mailbox)")
    size = live.facts.mailbox_bytes.get(wanted.id)
    if size is not None and size > SHARED_LIMIT_BYTES and _converts_or_archives(change):
        notes.append(
            f"{wanted.id} holds {size / 1024 ** 3:.1f} GB: a shared mailbox above 50 GB, or "
            f"one with an archive, needs an Exchange Online licence")
    if isinstance(wanted, DistributionGroup) and change.action == "create" \
            and wanted.accept_external_senders is None:
        notes.append(
            "Exchange makes a new group reject mail from outside the organisation "
            "(RequireSenderAuthenticationEnabled); write accept_external_senders: true to "
            "accept it")
    if any(op.cmdlet == "Disable-Mailbox" for op in change.operations):
        notes.append(ARCHIVE_DISABLE_NOTE)
    return tuple(notes)


def _sets_forwarding(change: Change) -> bool:
    return any(op.cmdlet == "Set-Mailbox" and "ForwardingSmtpAddress" in op.parameters
               for op in change.operations)


def _converts_or_archives(change: Change) -> bool:
    return any((op.cmdlet == "Set-Mailbox" and op.parameters.get("Type") == "Shared")
               or op.cmdlet == "Enable-Mailbox" for op in change.operations)


def is_destructive(change: Change) -> bool:
    """Changes counted against max_deletes: deletes, and disabling an archive."""
    return change.action == "delete" or any(op.cmdlet == "Disable-Mailbox"
                                            for op in change.operations)


def deletes_refusal(customer: str, changes: Iterable[Change],
                    limit: int | None) -> Refusal | None:
    """The refusal when a customer's destructive changes exceed ``max_deletes``."""
    destructive = [c for c in changes if c.customer == customer and is_destructive(c)]
    if limit is None or len(destructive) <= limit:
        return None
    archives = sum(1 for c in destructive if c.action != "delete")
    also = f" ({archives} of them disable an archive)" if archives else ""
    verb = "exceeds" if len(destructive) == 1 else "exceed"
    return Refusal(customer, f"{plural(len(destructive), 'delete')} {verb} max_deletes {limit} "
                             f"of customer {customer}{also}")


def rename_note(wanted: Resource, live: LiveTenant, desired: CustomerState) -> str | None:
    """A create that looks like a rename of an unmanaged live resource of the same type: the
    same display name, or an alias its old name derives to."""
    from reconciler.desired.loader import derive_alias

    name = getattr(wanted, "name", None)
    alias = getattr(wanted, "alias", None) or wanted.id.partition("@")[0]
    for rid, have in sorted(live.state.resources.items()):
        if rid in desired.resources or type(have) is not type(wanted) \
                or isinstance(have, UserMailbox):
            continue
        old_name = getattr(have, "name", None) or ""
        same_name = bool(name) and old_name.lower() == str(name).lower()
        same_alias = bool(old_name) and derive_alias(old_name) == alias.lower()
        if same_name or same_alias:
            return (f"looks like a rename of {rid} ('{old_name}'); keep `alias: "
                    f"{getattr(have, 'alias', None) or rid.partition('@')[0]}` to rename it in "
                    f"place instead of creating a new {wanted.type.value}")
    return None
