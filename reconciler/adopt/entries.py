"""Live resources as YAML entries in the vocabulary of docs/format.md §4.

An entry says what is not the default: a user mailbox gets only its non-default settings; a
shared mailbox, room or group also gets its exact ``permissions`` (and a group its ``owners``
and ``members``), even when empty, so that a grant added behind git's back afterwards shows as
drift. Where the customer's ``user_mailbox`` template would set a value the mailbox does not
have live, the live value is written explicitly (the entry's own value wins over a template's),
so that planning right after import changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.adopt.inventory import Inventory, non_default_calendar
from reconciler.live.reader import normalise_message
from reconciler.model import (
    CALENDAR_BUILTIN_USERS,
    AccessGrant,
    AutoReply,
    CalendarGrant,
    DistributionGroup,
    Forwarding,
    Mailbox,
    Resource,
    RoomMailbox,
    UserMailbox,
)

IMPLICIT_TEMPLATE = "user_mailbox"


class Entries:
    """Builds entries for one inventory; collects what could not be expressed."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.customer = inventory.customer
        self.warnings: list[str] = []

    # -- principals --

    def principal(self, owner: Resource, principal: str, role: str) -> str | None:
        """The primary SMTP address of a principal; None (with a warning) when it is no
        recipient of the tenant: the planner could not resolve it either."""
        if principal in CALENDAR_BUILTIN_USERS:
            return principal
        recipient = self.inventory.directory.resolve(principal)
        if recipient is None:
            self.warnings.append(
                f"{owner.id}: {role} {principal!r} is no recipient of the tenant (a deleted "
                f"user?); not imported, so the next plan removes it")
            return None
        return recipient.key

    def grants(self, owner: Resource, grants: tuple[AccessGrant, ...] | None,
               ) -> list[dict[str, Any]]:
        out = []
        for g in sorted(grants or (), key=lambda g: g.user):
            user = self.principal(owner, g.user, "grantee")
            if user is None:
                continue
            entry: dict[str, Any] = {"user": user, "access": sorted(g.access)}
            if g.automapping is False and "FullAccess" in g.access:
                entry["automapping"] = False
            out.append(entry)
        return out

    def calendar(self, owner: Resource, grants: list[CalendarGrant]) -> list[dict[str, Any]]:
        out = []
        for g in sorted(grants, key=lambda g: (g.user not in CALENDAR_BUILTIN_USERS, g.user)):
            user = self.principal(owner, g.user, "calendar user")
            if user is None:
                continue
            entry: dict[str, Any] = {"user": user}
            if g.role is not None:
                entry["role"] = g.role
            else:
                entry["rights"] = sorted(g.rights or ())
            if g.delegate and g.role == "Editor":
                entry["delegate"] = True
                if g.private_items:
                    entry["private_items"] = True
            out.append(entry)
        return out

    def forwarding(self, owner: Resource, value: Forwarding | None) -> Any:
        if value is None or value.is_none:
            return "none"
        if value.internal is not None:
            target = self.principal(owner, value.internal, "forwarding target")
            if target is None:
                return None
            return {"internal": target, "deliver_to_mailbox": value.deliver_to_mailbox}
        return {"external": value.external, "deliver_to_mailbox": value.deliver_to_mailbox}

    @staticmethod
    def auto_reply(value: AutoReply | None) -> dict[str, Any]:
        if value is None or value.state == "Disabled":
            return {"state": "Disabled"}
        out: dict[str, Any] = {"state": value.state}
        if value.state == "Scheduled":
            out["start"] = value.start
            out["end"] = value.end
        out["internal_message"] = normalise_message(value.internal_message)
        out["external_audience"] = value.external_audience or "None"
        out["external_message"] = normalise_message(value.external_message)
        return out

    # -- one setting, whatever its value (for template overrides) --

    def setting(self, resource: Mailbox, key: str) -> tuple[bool, Any]:
        """(expressible, live value) of ``key`` as YAML."""
        if key == "retention_policy":
            return resource.retention_policy is not None, resource.retention_policy
        if key == "archive":
            return True, bool(resource.archive)
        if key == "forwarding":
            value = self.forwarding(resource, resource.forwarding)
            return value is not None, value
        if key == "auto_reply":
            return resource.auto_reply is not None, self.auto_reply(resource.auto_reply)
        if key == "custom_attributes":
            return True, {n: v for n, v in resource.custom_attributes or ()}
        if key == "permissions":
            return True, self.grants(resource, resource.permissions)
        if key == "calendar_permissions":
            if resource.calendar_permissions is None:
                return False, None
            return True, self.calendar(resource, non_default_calendar(
                resource.calendar_permissions))
        if key == "display_name" and isinstance(resource, UserMailbox):
            return True, resource.display_name
        return False, None

    # -- whole entries --

    def entry(self, resource: Resource) -> dict[str, Any]:
        if isinstance(resource, UserMailbox):
            return self.user_entry(resource)
        alias, _, domain = self.inventory.addresses.get(resource.id, resource.id).partition("@")
        out: dict[str, Any] = {"name": resource.name or alias}  # type: ignore[attr-defined]
        out["alias"] = alias
        if domain != self.customer.default_domain:
            out["domain"] = domain
        if isinstance(resource, DistributionGroup):
            owners = [o for o in (self.principal(resource, p, "owner")
                                  for p in resource.owners or ()) if o]
            members = [m for m in (self.principal(resource, p, "member")
                                   for p in resource.members or ()) if m]
            if owners:
                out["owners"] = sorted(owners)
            else:
                # The schema wants at least one owner; without any, ownership stays unmanaged.
                self.warnings.append(f"{resource.id}: the group has no owner live; owners "
                                     f"left out (unmanaged) until someone is made owner")
            out["members"] = sorted(members)
            out["permissions"] = self.grants(resource, resource.permissions)
            return out
        assert isinstance(resource, Mailbox)
        if isinstance(resource, RoomMailbox):
            if resource.location:
                out["location"] = resource.location
            if resource.capacity is not None:
                out["capacity"] = resource.capacity
            booking = self.booking(resource)
            if booking:
                out["booking"] = booking
        out.update(self.mailbox_settings(resource))
        out["permissions"] = self.grants(resource, resource.permissions)
        if resource.calendar_permissions is not None:
            out["calendar_permissions"] = self.calendar(
                resource, non_default_calendar(resource.calendar_permissions))
        return out

    def booking(self, room: RoomMailbox) -> dict[str, Any] | None:
        """A room's booking as YAML, when it is not a new room's. Delegates are written only
        when they receive requests live (AutoAccept, forwarded, everyone may request): the
        YAML's delegates promise that, so a plan would otherwise change the room."""
        b = room.booking
        if b is None:
            return None
        delegates = sorted(d for d in (self.principal(room, p, "booking delegate")
                                       for p in b.delegates or ()) if d)
        if (b.automate, b.all_book_in_policy, delegates) == ("AutoAccept", True, []):
            return None
        out: dict[str, Any] = {"automate": b.automate, "all_book_in_policy": b.all_book_in_policy}
        if delegates and b.automate == "AutoAccept" and b.delegates_receive_requests:
            out["delegates"] = delegates
        elif delegates:
            self.warnings.append(
                f"{room.id}: booking delegates {', '.join(delegates)} receive no requests live "
                f"(AutomateProcessing {b.automate}, or requests not forwarded to them); left out "
                f"(unmanaged)")
        return out

    def mailbox_settings(self, resource: Mailbox) -> dict[str, Any]:
        """The mailbox settings that differ from a new mailbox's."""
        out: dict[str, Any] = {}
        if resource.retention_policy not in (None, self.inventory.default_retention_policy):
            out["retention_policy"] = resource.retention_policy
        if resource.archive:
            out["archive"] = True
        if resource.forwarding is not None and not resource.forwarding.is_none:
            value = self.forwarding(resource, resource.forwarding)
            if value is not None:
                out["forwarding"] = value
        if resource.auto_reply is not None and resource.auto_reply.state != "Disabled":
            out["auto_reply"] = self.auto_reply(resource.auto_reply)
        if resource.custom_attributes:
            out["custom_attributes"] = {n: v for n, v in resource.custom_attributes}
        return out

    def user_entry(self, resource: UserMailbox) -> dict[str, Any]:
        out: dict[str, Any] = {"user": resource.id}
        out.update(self.mailbox_settings(resource))
        if resource.permissions:
            out["permissions"] = self.grants(resource, resource.permissions)
        calendar = non_default_calendar(resource.calendar_permissions)
        if calendar:
            out["calendar_permissions"] = self.calendar(resource, calendar)
        template = self.customer.templates.get(IMPLICIT_TEMPLATE) or {}
        for key, wanted in template.items():
            if key in out:
                continue
            expressible, live = self.setting(resource, key)
            if not expressible:
                self.warnings.append(
                    f"{resource.id}: the {IMPLICIT_TEMPLATE} template sets {key}, which import "
                    f"cannot state for this mailbox; the next plan may change it")
                continue
            if _canonical(live) != _canonical(wanted):
                out[key] = live
        return out


def _canonical(value: Any) -> str:
    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    return json.dumps(norm(value), sort_keys=True, default=str)
