"""The exact Exchange calls that carry out a change, minimal and in a safe order.

Order within one resource: create (or convert to shared) first, so that later calls find the
mailbox and shared-only settings apply; then one Set-Mailbox for scalar settings (SendOnBehalf
as an add/remove hashtable in the same call); archive; permission removals before additions
(a mailbox holds at most 500 entries, and an AutoMapping change is a removal then an addition);
calendar entries (Set when present, Add when absent, Set always carrying the sharing flags);
auto-reply; group owners and members last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from reconciler.model import (
    CALENDAR_BUILTIN_USERS,
    AccessGrant,
    AutoReply,
    Booking,
    CalendarGrant,
    DistributionGroup,
    Forwarding,
    Mailbox,
    Resource,
    RoomMailbox,
    SharedMailbox,
    UserMailbox,
)
from reconciler.plan.plan import Operation

HASHTABLE = "#Exchange.GenericHashTable"


def _hashtable(add: Iterable[str], remove: Iterable[str]) -> dict[str, Any]:
    table: dict[str, Any] = {"@odata.type": HASHTABLE}
    if add:
        table["add"] = sorted(add)
    if remove:
        table["remove"] = sorted(remove)
    return table


def create_operations(want: Resource) -> list[Operation]:
    ops: list[Operation] = []
    if isinstance(want, DistributionGroup):
        alias = want.alias or want.id.partition("@")[0]
        params: dict[str, Any] = {"Name": want.name or alias, "Alias": alias,
                                  "DisplayName": want.name or alias,
                                  "PrimarySmtpAddress": want.id,
                                  "ManagedBy": sorted(want.owners or ())}
        if want.members:
            params["Members"] = sorted(want.members)
        if want.accept_external_senders is not None:
            params["RequireSenderAuthenticationEnabled"] = not want.accept_external_senders
        ops.append(Operation("New-DistributionGroup", params))
        empty = DistributionGroup(id=want.id, located_at=want.located_at, permissions=(),
                                  owners=want.owners, members=want.members)
        ops.extend(_group_permission_ops(want, empty))
        return ops
    assert isinstance(want, SharedMailbox | RoomMailbox)
    alias = want.alias or want.id.partition("@")[0]
    name = want.name or alias
    params = {"Name": name, "Alias": alias, "DisplayName": name, "PrimarySmtpAddress": want.id}
    if isinstance(want, RoomMailbox):
        params = {"Room": True, **params}
        if want.capacity is not None:
            params["ResourceCapacity"] = want.capacity
        if want.location is not None:
            params["Office"] = want.location
    else:
        params = {"Shared": True, **params}
    ops.append(Operation("New-Mailbox", params))
    ops.extend(_mailbox_update_ops(want, starting_state(want), created=True))
    return ops


def starting_state(want: SharedMailbox | RoomMailbox, **settings: Any) -> Mailbox:
    """What a new (or just recovered) mailbox starts with, so that the update path emits only
    what differs; ``settings`` are those it already has (a recovered mailbox keeps its own)."""
    alias = want.alias or want.id.partition("@")[0]
    blank = dataclasses.replace(
        want, permissions=(), name=want.name or alias, alias=alias, retention_policy=None,
        archive=False, forwarding=Forwarding(), custom_attributes=(), auto_reply=None,
        calendar_permissions=tuple(
            CalendarGrant(u, role="AvailabilityOnly" if u == "Default" else "None")
            for u in CALENDAR_BUILTIN_USERS))
    if isinstance(blank, RoomMailbox):
        blank = dataclasses.replace(blank, booking=NEW_ROOM_BOOKING)
    return dataclasses.replace(blank, **settings) if settings else blank


def update_operations(want: Resource, have: Resource) -> list[Operation]:
    if isinstance(want, DistributionGroup):
        assert isinstance(have, DistributionGroup)
        return _group_update_ops(want, have)
    assert isinstance(want, Mailbox) and isinstance(have, Mailbox)
    return _mailbox_update_ops(want, have)


def delete_operations(have: Resource) -> list[Operation]:
    if isinstance(have, DistributionGroup):
        return [Operation("Remove-DistributionGroup", {
            "Identity": have.id, "BypassSecurityGroupManagerCheck": True, "Confirm": False})]
    return [Operation("Remove-Mailbox", {"Identity": have.id, "Confirm": False})]


# --- mailboxes ------------------------------------------------------------------------------


def _mailbox_update_ops(want: Mailbox, have: Mailbox, created: bool = False) -> list[Operation]:
    ops: list[Operation] = []
    identity = want.id
    if isinstance(want, UserMailbox) and want.convert_to == "shared" and (
            not isinstance(have, UserMailbox) or have.convert_to != "shared"):
        ops.append(Operation("Set-Mailbox", {"Identity": identity, "Type": "Shared"}))

    settings: dict[str, Any] = {}
    if isinstance(want, UserMailbox) and want.display_name is not None \
            and want.display_name != getattr(have, "display_name", None):
        settings["DisplayName"] = want.display_name
    if isinstance(want, SharedMailbox | RoomMailbox) and not created \
            and want.name is not None and want.name != getattr(have, "name", None):
        settings["DisplayName"] = want.name
    if want.retention_policy is not None and want.retention_policy != have.retention_policy:
        settings["RetentionPolicy"] = want.retention_policy
    if want.forwarding is not None and want.forwarding != have.forwarding:
        settings.update(_forwarding_params(want.forwarding))
    if want.custom_attributes is not None:
        had = dict(have.custom_attributes or ())
        for number, value in want.custom_attributes:
            if had.get(number, "") != value:
                settings[f"CustomAttribute{number}"] = value
    if isinstance(want, RoomMailbox) and isinstance(have, RoomMailbox):
        if want.location is not None and want.location != have.location:
            settings["Office"] = want.location
        if want.capacity is not None and want.capacity != have.capacity:
            settings["ResourceCapacity"] = want.capacity
    if want.permissions is not None:
        add, remove = _right_delta(want.permissions, have.permissions or (), "SendOnBehalf")
        if add or remove:
            settings["GrantSendOnBehalfTo"] = _hashtable(add, remove)
    if settings:
        ops.append(Operation("Set-Mailbox", {"Identity": identity, **settings}))

    if want.archive is not None and want.archive != bool(have.archive):
        ops.append(Operation("Enable-Mailbox" if want.archive else "Disable-Mailbox",
                             {"Identity": identity, "Archive": True}))

    if want.permissions is not None:
        ops.extend(_full_access_ops(identity, want.permissions, have.permissions or ()))
        ops.extend(_send_as_ops(identity, want.permissions, have.permissions or ()))

    if want.calendar_permissions is not None:
        ops.extend(_calendar_ops(calendar_identity(identity, have),
                                 want.calendar_permissions, have.calendar_permissions or ()))

    if isinstance(want, RoomMailbox) and want.booking is not None:
        ops.extend(booking_operations(identity, want.booking, getattr(have, "booking", None)))

    if want.auto_reply is not None and want.auto_reply != have.auto_reply:
        ops.append(Operation("Set-MailboxAutoReplyConfiguration",
                             {"Identity": identity, **_auto_reply_params(want.auto_reply)}))
    return ops


def _forwarding_params(forwarding: Forwarding) -> dict[str, Any]:
    # Clear the other target explicitly: if both are set, ForwardingAddress silently wins.
    return {
        "ForwardingAddress": forwarding.internal,
        "ForwardingSmtpAddress": forwarding.external,
        "DeliverToMailboxAndForward": bool(forwarding.deliver_to_mailbox
                                           and not forwarding.is_none),
    }


def _auto_reply_params(auto_reply: AutoReply) -> dict[str, Any]:
    params: dict[str, Any] = {"AutoReplyState": auto_reply.state}
    for key, param in (("internal_message", "InternalMessage"),
                       ("external_audience", "ExternalAudience"),
                       ("external_message", "ExternalMessage"),
                       ("start", "StartTime"), ("end", "EndTime")):
        value = getattr(auto_reply, key)
        if value is not None:
            params[param] = value
    return params


def _by_user(grants: Iterable[AccessGrant]) -> dict[str, AccessGrant]:
    return {g.user: g for g in grants}


def _right_delta(want: Iterable[AccessGrant], have: Iterable[AccessGrant],
                 right: str) -> tuple[list[str], list[str]]:
    wanted = {g.user for g in want if right in g.access}
    held = {g.user for g in have if right in g.access}
    return sorted(wanted - held), sorted(held - wanted)


def _full_access_ops(identity: str, want: tuple[AccessGrant, ...],
                     have: tuple[AccessGrant, ...]) -> list[Operation]:
    wanted = {u: g for u, g in _by_user(want).items() if "FullAccess" in g.access}
    held = {u: g for u, g in _by_user(have).items() if "FullAccess" in g.access}
    removals, additions = [], []
    for user in sorted(set(held) - set(wanted)):
        removals.append(user)
    for user in sorted(wanted):
        grant = wanted[user]
        if user not in held:
            additions.append(grant)
        elif (grant.automapping is not None and held[user].automapping is not None
              and grant.automapping != held[user].automapping):
            # AutoMapping cannot be changed in place: remove the grant and add it again.
            removals.append(user)
            additions.append(grant)
    ops = [Operation("Remove-MailboxPermission", {
        "Identity": identity, "User": user, "AccessRights": ["FullAccess"],
        "InheritanceType": "All", "Confirm": False}) for user in removals]
    for grant in additions:
        params: dict[str, Any] = {"Identity": identity, "User": grant.user,
                                  "AccessRights": ["FullAccess"], "InheritanceType": "All"}
        if grant.automapping is not None:
            params["AutoMapping"] = grant.automapping
        ops.append(Operation("Add-MailboxPermission", params))
    return ops


def _send_as_ops(identity: str, want: tuple[AccessGrant, ...],
                 have: tuple[AccessGrant, ...]) -> list[Operation]:
    add, remove = _right_delta(want, have, "SendAs")
    ops = [Operation("Remove-RecipientPermission", {
        "Identity": identity, "Trustee": user, "AccessRights": ["SendAs"], "Confirm": False})
        for user in remove]
    ops += [Operation("Add-RecipientPermission", {
        "Identity": identity, "Trustee": user, "AccessRights": ["SendAs"], "Confirm": False})
        for user in add]
    return ops


# What Exchange gives a new room (Set-CalendarProcessing.md: the parameters' defaults).
NEW_ROOM_BOOKING = Booking(automate="AutoAccept", delegates=(), all_book_in_policy=True,
                           delegates_receive_requests=False)


def booking_operations(identity: str, want: Booking, have: Booking | None) -> list[Operation]:
    """One Set-CalendarProcessing with every managed setting that differs. Delegates are the
    whole list (ResourceDelegates replaces it); for them to receive requests the room must
    forward them and let everyone request (Set-CalendarProcessing.md, Example 4)."""
    have = have or NEW_ROOM_BOOKING
    params: dict[str, Any] = {}
    if want.automate is not None and want.automate != have.automate:
        params["AutomateProcessing"] = want.automate
    if want.all_book_in_policy is not None and want.all_book_in_policy != have.all_book_in_policy:
        params["AllBookInPolicy"] = want.all_book_in_policy
    if want.delegates is not None and set(want.delegates) != set(have.delegates or ()):
        params["ResourceDelegates"] = sorted(want.delegates)
    if want.delegates_receive_requests and not have.delegates_receive_requests:
        params["ForwardRequestsToDelegates"] = True
        params["AllRequestInPolicy"] = True
    if not params:
        return []
    return [Operation("Set-CalendarProcessing", {"Identity": identity, **params})]


def calendar_identity(identity: str, have: Mailbox) -> str:
    """The calendar's folder as read live (its name may be localised); a mailbox this plan
    creates has the one Exchange gives a new mailbox, ``Calendar``."""
    return have.calendar_folder or f"{identity}:\\Calendar"


def _calendar_ops(folder: str, want: tuple[CalendarGrant, ...],
                  have: tuple[CalendarGrant, ...]) -> list[Operation]:
    wanted = {g.user: g for g in want}
    held = {g.user: g for g in have}
    ops = [Operation("Remove-MailboxFolderPermission", {
        "Identity": folder, "User": user, "Confirm": False})
        for user in sorted(set(held) - set(wanted)) if user not in CALENDAR_BUILTIN_USERS]
    for user in sorted(wanted):
        grant = wanted[user]
        if user in held and held[user] == grant:
            continue
        params: dict[str, Any] = {"Identity": folder, "User": user,
                                  "AccessRights": grant.access_rights}
        if user in held or user in CALENDAR_BUILTIN_USERS:
            ops.extend(_calendar_set_ops(params, grant, held.get(user)))
        else:
            if grant.delegate:
                params["SharingPermissionFlags"] = grant.sharing_permission_flags
            ops.append(Operation("Add-MailboxFolderPermission", params))
    return ops


def _calendar_set_ops(params: dict[str, Any], grant: CalendarGrant,
                      held: CalendarGrant | None) -> list[Operation]:
    """Set an existing entry. A Set that leaves SharingPermissionFlags out keeps a delegate a
    delegate, and the flags go only with Editor: an Editor entry always carries them, and a
    delegate moving to another role is first made a plain Editor (flags None, which also
    takes them out of the meeting message rule), then given the role."""
    if grant.role == "Editor":
        return [Operation("Set-MailboxFolderPermission",
                          {**params, "SharingPermissionFlags": grant.sharing_permission_flags})]
    ops = []
    if held is not None and held.delegate:
        ops.append(Operation("Set-MailboxFolderPermission", {
            **params, "AccessRights": ["Editor"], "SharingPermissionFlags": "None"}))
    ops.append(Operation("Set-MailboxFolderPermission", params))
    return ops


# --- distribution groups --------------------------------------------------------------------


def _group_update_ops(want: DistributionGroup, have: DistributionGroup) -> list[Operation]:
    ops: list[Operation] = []
    settings: dict[str, Any] = {}
    if want.name is not None and want.name != have.name:
        settings["DisplayName"] = want.name
    if want.accept_external_senders is not None \
            and want.accept_external_senders != have.accept_external_senders:
        settings["RequireSenderAuthenticationEnabled"] = not want.accept_external_senders
    if want.owners is not None:
        add = sorted(set(want.owners) - set(have.owners or ()))
        remove = sorted(set(have.owners or ()) - set(want.owners))
        if add or remove:
            settings["ManagedBy"] = _hashtable(add, remove)
    if settings:
        ops.append(Operation("Set-DistributionGroup", {
            "Identity": want.id, **settings, "BypassSecurityGroupManagerCheck": True}))
    ops.extend(_group_permission_ops(want, have))
    if want.members is not None:
        held = set(have.members or ())
        for member in sorted(held - set(want.members)):
            ops.append(Operation("Remove-DistributionGroupMember", {
                "Identity": want.id, "Member": member,
                "BypassSecurityGroupManagerCheck": True, "Confirm": False}))
        for member in sorted(set(want.members) - held):
            ops.append(Operation("Add-DistributionGroupMember", {
                "Identity": want.id, "Member": member,
                "BypassSecurityGroupManagerCheck": True}))
    return ops


def _group_permission_ops(want: DistributionGroup, have: DistributionGroup) -> list[Operation]:
    if want.permissions is None:
        return []
    ops: list[Operation] = []
    add, remove = _right_delta(want.permissions, have.permissions or (), "SendOnBehalf")
    if add or remove:
        ops.append(Operation("Set-DistributionGroup", {
            "Identity": want.id, "GrantSendOnBehalfTo": _hashtable(add, remove),
            "BypassSecurityGroupManagerCheck": True}))
    ops.extend(_send_as_ops(want.id, want.permissions, have.permissions or ()))
    return ops
