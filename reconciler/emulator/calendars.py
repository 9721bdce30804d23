"""The emulated calendar cmdlets: folder permissions, the folder statistics that find a
mailbox's (possibly localised) calendar, and a resource mailbox's calendar processing.

Exchange's behaviour reproduced here, with its source (``docs/emulator.md`` lists it too):

- A mailbox's default calendar has a localised name (``Kalender``, ``Calendrier``); only that
  name addresses it, and Get-MailboxFolderStatistics ``-FolderScope Calendar`` lists it with
  ``FolderType Calendar`` among the mailbox's other calendar folders.
- Get-MailboxFolderPermission names each grantee by display name, whatever form the entry was
  written with; ``-User`` picks one principal's entry, however many share its display name.
- ``SharingPermissionFlags`` is accepted only with the Editor role, ``None`` included (Set-
  MailboxFolderPermission: "can only be used when the AccessRights parameter value is Editor").
  A Set without it leaves a delegate a delegate ("if you don't use ... SharingPermissionFlags
  ..., there are no changes": Example 5), so the user stays in the mailbox's meeting message
  rule; only ``None`` "removes delegate permissions and updates the meeting message rule".
- Set-CalendarProcessing replaces ResourceDelegates with the list given; its values are checked
  against the reference like every parameter's.
"""

from __future__ import annotations

from typing import Any

from reconciler.emulator.handlers import handler
from reconciler.emulator.reference import split_values
from reconciler.emulator.tenant import (
    CALENDAR_BUILTINS,
    FOLDER_WHO,
    Emulator,
    _as_bool,
    _copy_row,
    _get,
    _lower,
    _Object,
    _present,
    _strip_prefix,
    not_found,
    require_security_principal,
)
from reconciler.live.backend import AlreadyExists, BadParameter, CmdletResult, NotFound, NotPresent

MAILBOX = ("mailbox",)
ROLES = frozenset({"Owner", "PublishingEditor", "Editor", "PublishingAuthor", "Author",
                   "NonEditingAuthor", "Reviewer", "Contributor", "AvailabilityOnly",
                   "LimitedDetails"})
RESOURCE_TYPES = ("RoomMailbox", "EquipmentMailbox")


def _no_change_warning(identity: str) -> str:
    return (f"The command completed successfully but no settings of '{identity}' have been "
            f"modified.")


# --- folder permissions -----------------------------------------------------------------------


def _folder_owner(em: Emulator, identity: Any, cmdlet: str, *, read: bool) -> _Object:
    text = str(identity)
    mailbox_part, sep, folder = text.rpartition(":\\")
    if not sep:
        raise not_found(identity, cmdlet)
    obj = em._require(mailbox_part, MAILBOX, cmdlet, read=read)
    if _lower(folder) != _lower(obj.calendar_folder):
        # Only the calendar is modelled, under its own (possibly localised) name: a German
        # mailbox has no folder "Calendar", as in Exchange.
        raise not_found(identity, cmdlet)
    return obj


def _entry_owner(em: Emulator, row: dict[str, Any]) -> _Object | None:
    """The principal an entry belongs to: recorded when the entry was written, else resolved
    from the form the snapshot stored (None when that no longer resolves, or is ambiguous)."""
    # The identity tiers looked up directly (strongest first, as _resolve does): this runs
    # for every entry every listing shows, and visibility does not matter to whose it is.
    key = _lower(_strip_prefix(str(row.get(FOLDER_WHO) or row.get("User") or "")))
    for table in em._index_tiers:
        hits = table.get(key)
        if hits:
            return hits[0] if len(hits) == 1 else None
    return None


def _folder_entry(em: Emulator, obj: _Object, user: Any, cmdlet: str
                  ) -> tuple[dict[str, Any] | None, str, _Object | None]:
    """The calendar entry for ``user``, the name a new entry would show, and the principal."""
    builtin = next((b for b in CALENDAR_BUILTINS if _lower(b) == _lower(user)), None)
    if builtin is not None:
        return (next((r for r in obj.folder_permissions if r.get("User") == builtin), None),
                builtin, None)
    target = em._principal(user, cmdlet)
    shown = str(target.recipient.get("DisplayName") or target.name)
    for row in obj.folder_permissions:
        if row.get("User") not in CALENDAR_BUILTINS and _entry_owner(em, row) is target:
            return row, shown, target
    return None, shown, target


def shown_entry(em: Emulator, obj: _Object, row: dict[str, Any],
                folder: str | None = None) -> dict[str, Any]:
    """An entry as Get-MailboxFolderPermission shows it: the grantee by display name."""
    out = em._folder_out(obj, row, folder)
    if row.get("User") not in CALENDAR_BUILTINS:
        shown = _shown_name(em, row)
        if shown is not None:
            out["User"] = shown
    return out


def _shown_name(em: Emulator, row: dict[str, Any]) -> str | None:
    """The display name an entry's grantee shows as, None when nobody owns the entry. A
    read-only tenant never changes whose an entry is: each stored form is looked up once."""
    who = str(row.get(FOLDER_WHO) or row.get("User") or "")
    if em._read_only and who in em._shown_names:
        return em._shown_names[who]
    owner = _entry_owner(em, row)
    shown = str(owner.recipient.get("DisplayName") or owner.name) if owner is not None else None
    if em._read_only:
        em._shown_names[who] = shown
    return shown


def _folder_rights(params: dict[str, Any], cmdlet: str) -> tuple[list[str], str | None]:
    """AccessRights as the reference spells them, and the sharing flags given (None when the
    call leaves them out)."""
    from reconciler.emulator.reference import load_reference

    param = load_reference()[cmdlet.lower()].parameters["accessrights"]
    spelled = param.values or {}
    rights = list(dict.fromkeys(spelled.get(_lower(v), str(v))
                                for v in split_values(params["AccessRights"])))
    if len(rights) > 1 and any(r in ROLES or r == "None" for r in rights):
        raise BadParameter(
            "A role (or None) can't be combined with other access rights: "
            f"{', '.join(rights)}.", cmdlet=cmdlet, exception_type="InvalidParameterException")
    if not _present(params, "SharingPermissionFlags"):
        return rights, None
    if rights != ["Editor"]:
        raise BadParameter(
            "SharingPermissionFlags can only be used when the AccessRights parameter value is "
            "Editor.", cmdlet=cmdlet, exception_type="InvalidParameterException")
    flags = [spelled_flag(v) for v in split_values(params["SharingPermissionFlags"])]
    if "None" in flags and len(flags) > 1:
        raise BadParameter("SharingPermissionFlags None can't be combined with other flags.",
                           cmdlet=cmdlet, exception_type="InvalidParameterException")
    if "CanViewPrivateItems" in flags and "Delegate" not in flags:
        raise BadParameter("CanViewPrivateItems requires Delegate.", cmdlet=cmdlet,
                           exception_type="InvalidParameterException")
    order = ("Delegate", "CanViewPrivateItems")
    return rights, ",".join(f for f in order if f in flags) or "None"


def spelled_flag(value: Any) -> str:
    for flag in ("None", "Delegate", "CanViewPrivateItems"):
        if _lower(flag) == _lower(value):
            return flag
    return str(value)


def _no_entry(kind: type[NotFound] | type[NotPresent], user: Any, cmdlet: str
              ) -> NotFound | NotPresent:
    return kind(f"There is no existing permission entry found for user: {user}.", cmdlet=cmdlet,
                exception_type="UserNotFoundInPermissionEntryException")


@handler("Get-MailboxFolderPermission", "Identity", "User", "ResultSize")
def get_mailbox_folder_permission(em: Emulator, cmdlet: str, params: dict[str, Any]
                                  ) -> CmdletResult:
    obj = _folder_owner(em, params["Identity"], cmdlet, read=True)
    rows = obj.live_rows("folder_permissions", em._clock())
    if _get(params, "User"):
        row, _, _ = _folder_entry(em, obj, params["User"], cmdlet)
        if row is None:
            raise _no_entry(NotFound, params["User"], cmdlet)
        rows = [row]
    folder = em.folder_identity(obj)
    return em._limited([shown_entry(em, obj, r, folder) for r in rows], params)


def _write_target(em: Emulator, params: dict[str, Any], cmdlet: str
                  ) -> tuple[_Object, dict[str, Any] | None, str, _Object | None]:
    obj = _folder_owner(em, params["Identity"], cmdlet, read=False)
    return (obj, *_folder_entry(em, obj, params["User"], cmdlet))


@handler("Add-MailboxFolderPermission", "Identity", "User", "AccessRights",
         "SharingPermissionFlags")
def add_mailbox_folder_permission(em: Emulator, cmdlet: str, params: dict[str, Any]
                                  ) -> CmdletResult:
    obj, row, shown, target = _write_target(em, params, cmdlet)
    if target is not None:
        require_security_principal(target, params["User"], cmdlet)
    rights, flags = _folder_rights(params, cmdlet)
    if row is not None:
        raise AlreadyExists(f"An existing permission entry was found for user: {shown}.",
                            cmdlet=cmdlet,
                            exception_type="UserAlreadyExistsInPermissionEntryException")
    row = {"User": shown, "AccessRights": rights, "SharingPermissionFlags": flags or "None"}
    if target is not None:
        row[FOLDER_WHO] = target.name
    obj.folder_permissions.append(row)
    return CmdletResult(value=[shown_entry(em, obj, row)])


@handler("Set-MailboxFolderPermission", "Identity", "User", "AccessRights",
         "SharingPermissionFlags")
def set_mailbox_folder_permission(em: Emulator, cmdlet: str, params: dict[str, Any]
                                  ) -> CmdletResult:
    obj, row, shown, _ = _write_target(em, params, cmdlet)
    if row is None:
        raise _no_entry(NotPresent, shown, cmdlet)
    rights, flags = _folder_rights(params, cmdlet)
    before = _copy_row(row)
    row["AccessRights"] = rights
    if flags is not None:
        # Left out, the flags (and the meeting message rule) stay as they are.
        row["SharingPermissionFlags"] = flags
    if row == before:
        return CmdletResult(warnings=[_no_change_warning(em.folder_identity(obj))])
    return CmdletResult()


@handler("Remove-MailboxFolderPermission", "Identity", "User")
def remove_mailbox_folder_permission(em: Emulator, cmdlet: str, params: dict[str, Any]
                                     ) -> CmdletResult:
    obj = _folder_owner(em, params["Identity"], cmdlet, read=False)
    if any(_lower(b) == _lower(params["User"]) for b in CALENDAR_BUILTINS):
        raise BadParameter(
            f"The permission entry for '{params['User']}' can't be removed: Default and "
            f"Anonymous exist on every folder. Use Set-MailboxFolderPermission to change them.",
            cmdlet=cmdlet, exception_type="InvalidOperationException")
    row, shown, _ = _folder_entry(em, obj, params["User"], cmdlet)
    if row is None:
        raise _no_entry(NotPresent, shown, cmdlet)
    em._remove_row(obj, "folder_permissions", row)
    return CmdletResult()


# --- the calendar folder ----------------------------------------------------------------------


@handler("Get-MailboxFolderStatistics", "Identity", "FolderScope", "ResultSize")
def get_mailbox_folder_statistics(em: Emulator, cmdlet: str, params: dict[str, Any]
                                  ) -> CmdletResult:
    scope = _get(params, "FolderScope")
    if scope is None or _lower(scope) != "calendar":
        raise BadParameter("The emulator implements Get-MailboxFolderStatistics only with "
                           "-FolderScope Calendar.", cmdlet=cmdlet,
                           exception_type="ParameterNotImplemented")
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=True)
    return em._limited(calendar_folders(obj), params)


def calendar_folders(obj: _Object) -> list[dict[str, Any]]:
    """What ``-FolderScope Calendar`` lists: the default calendar (``FolderType Calendar``,
    under its localised name) and, like every Exchange Online mailbox, a Birthdays calendar
    beside it, so a reader that does not filter on FolderType picks the wrong one."""
    name = obj.calendar_folder
    folders = [(name, f"/{name}", "Calendar"), ("Birthdays", f"/{name}/Birthdays", "Birthdays")]
    guid = str(obj.recipient.get("Guid") or obj.identity)
    return [{"Identity": f"{obj.identity}\\{path.strip('/').replace('/', chr(92))}",
             "Name": folder, "FolderPath": path, "FolderType": kind,
             "FolderId": f"LgAAAAA{guid.replace('-', '')}{index:02d}",
             "ItemsInFolder": 0, "FolderSize": "0 B (0 bytes)"}
            for index, (folder, path, kind) in enumerate(folders)]


# --- calendar processing (resource mailboxes) ---------------------------------------------------


DEFAULT_PROCESSING: dict[str, Any] = {
    "AutomateProcessing": "AutoAccept", "AllBookInPolicy": True, "AllRequestInPolicy": False,
    "ForwardRequestsToDelegates": True, "ResourceDelegates": []}
# What a mailbox that is not a resource reports (the Calendar Attendant only).
USER_PROCESSING: dict[str, Any] = {**DEFAULT_PROCESSING, "AutomateProcessing": "AutoUpdate"}
_PROCESSING_BOOLEANS = ("AllBookInPolicy", "AllRequestInPolicy", "ForwardRequestsToDelegates")


def processing_of(obj: _Object) -> dict[str, Any]:
    if obj.calendar_processing is not None:
        return obj.calendar_processing
    kind = (obj.row or {}).get("RecipientTypeDetails")
    return dict(DEFAULT_PROCESSING if kind in RESOURCE_TYPES else USER_PROCESSING)


@handler("Get-CalendarProcessing", "Identity", "ResultSize")
def get_calendar_processing(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=True)
    return CmdletResult(value=[{"Identity": obj.identity, **processing_of(obj)}])


@handler("Set-CalendarProcessing", "Identity", "AutomateProcessing", "ResourceDelegates",
         *_PROCESSING_BOOLEANS)
def set_calendar_processing(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=False)
    current = processing_of(obj)
    changed = dict(current)
    if _present(params, "AutomateProcessing"):
        changed["AutomateProcessing"] = next(
            v for v in ("None", "AutoUpdate", "AutoAccept")
            if _lower(v) == _lower(params["AutomateProcessing"]))
    for prop in _PROCESSING_BOOLEANS:
        if _present(params, prop):
            changed[prop] = _as_bool(params[prop])
    if _present(params, "ResourceDelegates"):
        changed["ResourceDelegates"] = em._update_multi(
            list(current.get("ResourceDelegates") or []), params["ResourceDelegates"], cmdlet)
    if changed == current:
        return CmdletResult(warnings=[_no_change_warning(obj.identity)])
    obj.calendar_processing = changed
    return CmdletResult()
