"""Who holds an address: the proof a refused create needs before it may count as done.

Exchange answers a ``New-Mailbox`` / ``New-DistributionGroup`` whose address is taken with
``ProxyAddressExistsException``, whoever takes it: this plan's own object, created by an earlier
attempt whose answer was lost, or somebody else (a user holding it as an ``smtp:`` secondary, a
soft-deleted mailbox). The wording cannot tell these apart, and counting the second as "already
present" sends every later call naming that address to the other recipient. So the object now at
the address is read back and compared with what the plan creates: the same primary address, the
same type, and absent from the live state the plan was made against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.live.backend import Backend, NotFound
from reconciler.live.directory import strip_smtp
from reconciler.plan.plan import Operation

HOLDER_PROPERTIES = ("Name", "Guid", "ExternalDirectoryObjectId", "PrimarySmtpAddress",
                     "UserPrincipalName", "RecipientTypeDetails", "EmailAddresses")
_MAILBOX_KINDS = {"Shared": "SharedMailbox", "Room": "RoomMailbox",
                  "Equipment": "EquipmentMailbox"}
_TYPE_WORDS = {"SharedMailbox": "shared mailbox", "RoomMailbox": "room mailbox",
               "EquipmentMailbox": "equipment mailbox", "UserMailbox": "user mailbox",
               "MailUniversalDistributionGroup": "distribution group",
               "MailUniversalSecurityGroup": "mail-enabled security group",
               "MailUser": "mail user", "MailContact": "mail contact"}


@dataclass(frozen=True, slots=True)
class Holder:
    """The recipient found at an address a create asked for."""

    primary: str  # its primary SMTP address, lower case
    name: str
    type_details: str
    ids: frozenset[str]  # Guid and ExternalDirectoryObjectId, lower case
    upn: str = ""
    soft_deleted_at: str | None = None  # when it was soft-deleted, if it was


def planned_address(op: Operation) -> str:
    """The primary address a ``New-*`` gives its object (the planner always names one)."""
    return strip_smtp(str(op.parameters.get("PrimarySmtpAddress") or "")).lower()


def planned_type(op: Operation) -> str:
    """The RecipientTypeDetails of the object a ``New-*`` creates."""
    params = op.parameters
    if op.cmdlet == "New-DistributionGroup":
        security = str(params.get("Type") or "").lower() == "security"
        return "MailUniversalSecurityGroup" if security else "MailUniversalDistributionGroup"
    return next((kind for flag, kind in _MAILBOX_KINDS.items() if params.get(flag)),
                "SharedMailbox")


def type_words(type_details: str) -> str:
    return _TYPE_WORDS.get(type_details, type_details or "recipient")


def holder_of(row: Mapping[str, Any], soft_deleted_at: str | None = None) -> Holder:
    ids = frozenset(str(row[k]).lower() for k in ("Guid", "ExternalDirectoryObjectId")
                    if row.get(k))
    return Holder(primary=strip_smtp(str(row.get("PrimarySmtpAddress") or "")).lower(),
                  name=str(row.get("Name") or ""),
                  type_details=str(row.get("RecipientTypeDetails") or ""), ids=ids,
                  upn=str(row.get("UserPrincipalName") or "").lower(),
                  soft_deleted_at=soft_deleted_at)


def find_holder(backend: Backend, address: str) -> Holder | None:
    """The recipient holding ``address`` in any form (primary, UPN, proxy address), live or
    soft-deleted; None when none can be read (yet). Read errors propagate."""
    try:
        rows = backend.invoke("Get-Recipient", {"Identity": address},
                              list(HOLDER_PROPERTIES)).value
    except NotFound:
        rows = []
    if rows:
        return holder_of(rows[0])
    try:
        rows = backend.invoke("Get-Mailbox", {"Identity": address, "SoftDeletedMailbox": True},
                              [*HOLDER_PROPERTIES, "WhenSoftDeleted"]).value
    except NotFound:
        rows = []
    if rows:
        return holder_of(rows[0], str(rows[0].get("WhenSoftDeleted") or "unknown date"))
    return None


def is_planned_object(holder: Holder, op: Operation) -> bool:
    """Whether ``holder`` is what ``op`` creates: live, at its primary address, of its type.
    (Whether it is new is the caller's question: only it knows the state planned against.)"""
    return (holder.soft_deleted_at is None and holder.primary == planned_address(op)
            and holder.type_details == planned_type(op))


def describe(holder: Holder, op: Operation) -> str:
    """Who holds the address, in the words the summary gives: what to fix, and where."""
    address = planned_address(op)
    if holder.soft_deleted_at is not None:
        return (f"{address} is held by the soft-deleted mailbox {holder.primary or holder.name} "
                f"(deleted {holder.soft_deleted_at}); restore it with Undo-SoftDeletedMailbox "
                f"or free the address with Remove-Mailbox -PermanentlyDelete, then plan again")
    if holder.primary != address:
        how = ("the user principal name" if holder.upn == address else "a secondary address")
        return (f"{address} is {how} of {holder.primary} ({type_words(holder.type_details)}); "
                f"nothing was written to it. Give the new {type_words(planned_type(op))} "
                f"another address, or move the address off {holder.primary}, then plan again")
    if holder.type_details != planned_type(op):
        return (f"{address} is already the address of a {type_words(holder.type_details)}, "
                f"not the {type_words(planned_type(op))} this plan creates; plan again")
    return (f"{address} is held by an existing {type_words(holder.type_details)} that this "
            f"apply did not create (it appeared after the plan was made); plan again")
