"""Learn whether a write committed by reading live state back.

When a write's outcome is unknown (a timeout, a dropped connection, a 5xx, or a run killed
between the call and its journal line), replaying it could run it twice; giving up could lose
it. Each cmdlet apply emits has a check here that reads the object it wrote and says whether the
write's effect is there. Principals are compared through the tenant's recipient map, because
Exchange reports them as Names, GUIDs or display names, never necessarily as the address the plan
names.

A check answers True (committed) or False (not visible). Under Exchange's read-after-write lag a
committed write can read as not visible; the retry that follows is then answered "already
present" / "not present", which apply counts as done, so lag costs a call, never a duplicate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.apply.holder import holder_of, is_planned_object, planned_address
from reconciler.live.backend import Backend, NotFound, NotPresent
from reconciler.live.directory import Directory, strip_smtp
from reconciler.live.reader import (
    RECIPIENT_PROPERTIES,
    has_archive,
    normalise_message,
    normalise_time,
)
from reconciler.plan.plan import Operation


class Recipients:
    """The tenant's recipient map, read once and refreshed when a principal does not resolve
    (it may have been created by this apply)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._directory: Directory | None = None
        self._lock = threading.Lock()

    def _read(self) -> Directory:
        rows = self._backend.invoke("Get-Recipient", {"ResultSize": "Unlimited"},
                                    list(RECIPIENT_PROPERTIES)).value
        return Directory(rows)

    def canonical(self, principal: Any) -> str:
        text = str(principal or "")
        with self._lock:
            if self._directory is None:
                self._directory = self._read()
            if self._directory.resolve(text) is None and text not in ("Default", "Anonymous"):
                self._directory = self._read()
            return self._directory.canonical(text)

    def ids(self) -> frozenset[str]:
        """Guid and ExternalDirectoryObjectId of every recipient, as the map was first read:
        called before any write, the tenant the plan was made against."""
        with self._lock:
            if self._directory is None:
                self._directory = self._read()
            return frozenset(str(r.attributes[k]).lower()
                             for r in self._directory.recipients.values()
                             for k in ("Guid", "ExternalDirectoryObjectId")
                             if r.attributes.get(k))

    def same(self, a: Any, b: Any) -> bool:
        return self.canonical(a).lower() == self.canonical(b).lower()


def _get(backend: Backend, cmdlet: str, identity: str,
         **switches: Any) -> list[dict[str, Any]] | None:
    """The rows a Get returns for ``identity``; None when the object does not exist."""
    if not identity:
        raise ValueError(f"refusing to run {cmdlet} with an empty Identity")
    try:
        return backend.invoke(cmdlet, {"Identity": identity, **switches}).value
    except NotFound:
        return None


def _rights(value: Any) -> set[str]:
    if value is None:
        return set()
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return {str(v).strip() for v in items if str(v).strip()}


def _hashtable_holds(current: Iterable[Any], table: Mapping[str, Any],
                     rec: Recipients) -> bool:
    have = {rec.canonical(p).lower() for p in current}
    added = {rec.canonical(p).lower() for p in table.get("add") or ()}
    removed = {rec.canonical(p).lower() for p in table.get("remove") or ()}
    return added <= have and not (removed & have)


def _principal_equal(current: Any, wanted: Any, rec: Recipients) -> bool:
    if not wanted:
        return not current
    return bool(current) and rec.same(current, wanted)


def _settings_hold(row: Mapping[str, Any], params: Mapping[str, Any],
                   rec: Recipients) -> bool:
    for key, wanted in params.items():
        if key in ("Identity", "Confirm", "BypassSecurityGroupManagerCheck"):
            continue
        current = row.get(key)
        if isinstance(wanted, Mapping):  # an add/remove hashtable
            if not _hashtable_holds(current or (), wanted, rec):
                return False
        elif key == "Type":
            expected = {"shared": "SharedMailbox", "regular": "UserMailbox",
                        "room": "RoomMailbox", "equipment": "EquipmentMailbox"}
            if str(row.get("RecipientTypeDetails")) != expected.get(str(wanted).lower()):
                return False
        elif key == "ForwardingAddress":
            if not _principal_equal(current, wanted, rec):
                return False
        elif key == "ForwardingSmtpAddress":
            if strip_smtp(str(current or "")).lower() != strip_smtp(str(wanted or "")).lower():
                return False
        elif key in ("ManagedBy", "ResourceDelegates") and isinstance(wanted, list):
            if {rec.canonical(p).lower() for p in current or ()} != {
                    rec.canonical(p).lower() for p in wanted}:
                return False
        elif isinstance(wanted, bool):
            if bool(current) != wanted:
                return False
        elif isinstance(wanted, int):
            if current in (None, "") or int(current) != wanted:
                return False
        elif str(current if current is not None else "") != str(wanted if wanted is not None
                                                                  else ""):
            return False
    return True


# --- one check per cmdlet -------------------------------------------------------------------


def _new_object(getter: str) -> Callable[[Backend, Mapping[str, Any], Recipients], bool]:
    def check(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
        op = Operation(getter.replace("Get-", "New-"), dict(params))
        rows = _get(backend, getter, planned_address(op) or str(params.get("Name")))
        # Found by the address is not enough: another recipient may hold it as a secondary
        # address. Only the object this create makes counts.
        return bool(rows) and is_planned_object(holder_of(rows[0]), op)
    return check


def _recovered(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
    """A soft-deleted mailbox is back when Get-Mailbox finds it by the identity it was
    recovered by (its GUID), no longer among the soft-deleted."""
    return bool(_get(backend, "Get-Mailbox", str(params["SoftDeletedObject"])))


def _removed_object(getter: str) -> Callable[[Backend, Mapping[str, Any], Recipients], bool]:
    def check(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
        return _get(backend, getter, str(params["Identity"])) is None
    return check


def _set_object(getter: str) -> Callable[[Backend, Mapping[str, Any], Recipients], bool]:
    def check(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
        rows = _get(backend, getter, str(params["Identity"]))
        return bool(rows) and _settings_hold(rows[0], params, rec)
    return check


def _archive(active: bool) -> Callable[[Backend, Mapping[str, Any], Recipients], bool]:
    def check(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
        rows = _get(backend, "Get-Mailbox", str(params["Identity"]))
        if not rows:
            return False
        return has_archive(rows[0]) == active
    return check


def _full_access(present: bool) -> Callable[[Backend, Mapping[str, Any], Recipients], bool]:
    def check(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
        # A deleted account's grant too, which Exchange hides unless asked.
        rows = _get(backend, "Get-MailboxPermission", str(params["Identity"]),
                    IncludeUnresolvedPermissions=True) or []
        found = any(
            not row.get("IsInherited") and not row.get("Deny")
            and "FullAccess" in _rights(row.get("AccessRights"))
            and rec.same(row.get("User"), params["User"]) for row in rows)
        return found == present
    return check


def _send_as(present: bool) -> Callable[[Backend, Mapping[str, Any], Recipients], bool]:
    def check(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
        rows = _get(backend, "Get-RecipientPermission", str(params["Identity"])) or []
        found = any(
            str(row.get("AccessControlType", "Allow")) == "Allow"
            and "SendAs" in _rights(row.get("AccessRights"))
            and rec.same(row.get("Trustee"), params["Trustee"]) for row in rows)
        return found == present
    return check


def _calendar_entry(backend: Backend, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The entry of the operation's grantee, asked for by the address the plan names:
    Exchange shows grantees by display name, which two recipients may share."""
    user = str(params["User"])
    if not user:
        raise ValueError("refusing to read a calendar entry without a User")
    try:
        rows = backend.invoke("Get-MailboxFolderPermission",
                              {"Identity": str(params["Identity"]), "User": user}).value
    except (NotFound, NotPresent):  # "no existing permission entry" maps to either
        return None
    return rows[0] if rows else None


def _calendar_set(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
    entry = _calendar_entry(backend, params)
    if entry is None or _rights(entry.get("AccessRights")) != _rights(params["AccessRights"]):
        return False
    if "SharingPermissionFlags" in params:
        flags = _rights(entry.get("SharingPermissionFlags")) - {"None"}
        return flags == _rights(params["SharingPermissionFlags"]) - {"None"}
    return True


def _calendar_removed(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
    return _calendar_entry(backend, params) is None


def _auto_reply(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
    rows = _get(backend, "Get-MailboxAutoReplyConfiguration", str(params["Identity"]))
    if not rows:
        return False
    row = rows[0]
    for key, wanted in params.items():
        if key == "Identity":
            continue
        current = row.get(key)
        if key in ("InternalMessage", "ExternalMessage"):
            same = normalise_message(current) == normalise_message(wanted)
        elif key in ("StartTime", "EndTime"):
            same = normalise_time(current) == normalise_time(wanted)
        else:
            same = str(current) == str(wanted)
        if not same:
            return False
    return True


def _member(present: bool) -> Callable[[Backend, Mapping[str, Any], Recipients], bool]:
    def check(backend: Backend, params: Mapping[str, Any], rec: Recipients) -> bool:
        rows = _get(backend, "Get-DistributionGroupMember", str(params["Identity"])) or []
        found = any(rec.same(row.get("PrimarySmtpAddress") or row.get("Identity")
                             or row.get("Name"), params["Member"]) for row in rows)
        return found == present
    return check


CHECKS: dict[str, Callable[[Backend, Mapping[str, Any], Recipients], bool]] = {
    "New-Mailbox": _new_object("Get-Mailbox"),
    "Remove-Mailbox": _removed_object("Get-Mailbox"),
    "Undo-SoftDeletedMailbox": _recovered,
    "Set-Mailbox": _set_object("Get-Mailbox"),
    "Enable-Mailbox": _archive(True),
    "Disable-Mailbox": _archive(False),
    "Add-MailboxPermission": _full_access(True),
    "Remove-MailboxPermission": _full_access(False),
    "Add-RecipientPermission": _send_as(True),
    "Remove-RecipientPermission": _send_as(False),
    "Add-MailboxFolderPermission": _calendar_set,
    "Set-MailboxFolderPermission": _calendar_set,
    "Remove-MailboxFolderPermission": _calendar_removed,
    "Set-MailboxAutoReplyConfiguration": _auto_reply,
    "Set-CalendarProcessing": _set_object("Get-CalendarProcessing"),
    "New-DistributionGroup": _new_object("Get-DistributionGroup"),
    "Set-DistributionGroup": _set_object("Get-DistributionGroup"),
    "Remove-DistributionGroup": _removed_object("Get-DistributionGroup"),
    "Add-DistributionGroupMember": _member(True),
    "Remove-DistributionGroupMember": _member(False),
}


def can_confirm(cmdlet: str) -> bool:
    return cmdlet in CHECKS


def confirm(op: Operation, backend: Backend, recipients: Recipients) -> bool:
    """True when live state shows ``op``'s effect. Read errors propagate: an unanswered
    question is not a "no"."""
    check = CHECKS.get(op.cmdlet)
    if check is None:
        raise KeyError(f"no way to confirm {op.cmdlet} by reading back")
    return check(backend, op.parameters, recipients)
