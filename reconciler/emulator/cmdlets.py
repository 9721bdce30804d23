"""The emulated cmdlets, one function each, registered with :func:`tenant.handler`.

Each function gets the emulator (its lock held) and the call's parameters as checked against
the reference (keyed by the reference's spelling), and returns the rows Exchange would return.
Messages and exception types are Exchange's own where known, since callers match on them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from reconciler.emulator.handlers import handler
from reconciler.emulator.opath import FilterError, compile_filter, equalities
from reconciler.emulator.reference import is_hashtable, split_values
from reconciler.emulator.tenant import (
    _CONVERSION,
    CALLER_NAME,
    DEFAULT_AUTO_REPLY,
    GROUP_TYPES,
    MAX_MAILBOX_PERMISSION_ENTRIES,
    NO_ARCHIVE_GUID,
    USER_TYPES,
    Emulator,
    _as_bool,
    _as_list,
    _copy_row,
    _get,
    _iso,
    _lower,
    _Object,
    _present,
    _strip_prefix,
    _wrap_html,
    archive_guid,
    not_found,
    require_security_principal,
)
from reconciler.live.backend import (
    AlreadyExists,
    BadParameter,
    CmdletResult,
    ExchangeError,
    NotPresent,
)

MAILBOX = ("mailbox",)
_SID = re.compile(r"^S-1-\d+(-\d+)+$", re.IGNORECASE)
GROUP = ("group",)
ANY = ("mailbox", "group", "recipient")


def _no_change_warning(identity: str) -> str:
    return (f"The command completed successfully but no settings of '{identity}' have been "
            f"modified.")


def _type_filter(params: dict[str, Any]) -> set[str] | None:
    value = _get(params, "RecipientTypeDetails")
    if value is None:
        return None
    return {_lower(v) for v in split_values(value)}


def _mailbox_objects(em: Emulator, params: dict[str, Any], kinds: tuple[str, ...],
                     cmdlet: str) -> list[_Object]:
    """Objects a Get-* returns: the one named by Identity, or, when Identity is absent, null or
    empty, every one (as Exchange does: an empty Identity is not an error on these Gets)."""
    identity = _get(params, "Identity")
    now = em._clock()
    indexed = _indexed_values(_get(params, "Filter"))
    if identity is None or (isinstance(identity, str) and not identity.strip()):
        objects = em._listing(kinds, now) if indexed is None else \
            em._answering(indexed, kinds, now)
    else:
        objects = [em._require(identity, kinds, cmdlet, read=True)]
    wanted = _type_filter(params)
    if wanted is not None:
        objects = [o for o in objects if _lower((o.row or o.recipient).get(
            "RecipientTypeDetails", "")) in wanted]
    text = _get(params, "Filter")
    if text:
        matches = _filter(text, cmdlet)
        objects = [o for o in objects if matches({**o.recipient, **(o.row or {})})]
    return objects


def _filter(text: Any, cmdlet: str) -> Callable[[dict[str, Any]], bool]:
    """The OPATH filter ``text`` as a test of a row; refused as Exchange refuses it."""
    try:
        return compile_filter(str(text))
    except FilterError as e:
        raise BadParameter(f"Cannot bind parameter 'Filter' to the target. Exception setting "
                           f"\"Filter\": \"{e}\"", cmdlet=cmdlet,
                           exception_type="ParameterBindingException") from None


# Properties every object is indexed by (each of its identity forms).
_INDEXED = frozenset({"emailaddresses", "primarysmtpaddress", "userprincipalname", "name",
                      "alias", "displayname", "guid", "externaldirectoryobjectid", "identity"})


def _indexed_values(text: Any) -> list[str] | None:
    """The values of a filter the identity index can narrow to (the filter still decides)."""
    if not text:
        return None
    try:
        pairs = equalities(str(text))
    except FilterError:
        return None  # refused with its message below
    if pairs is None or any(prop not in _INDEXED for prop, _ in pairs):
        return None
    return [value for _, value in pairs]


# --- mailboxes --------------------------------------------------------------------------------


@handler("Get-Mailbox", "Identity", "ResultSize", "RecipientTypeDetails", "SoftDeletedMailbox",
         "Filter")
def get_mailbox(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    if _as_bool(_get(params, "SoftDeletedMailbox", False)):
        em._purge_soft_deleted()
        identity = _get(params, "Identity")
        rows = sorted(em._soft_deleted, key=lambda o: o.sort_key)
        if identity:
            key = _lower(_strip_prefix(str(identity)))
            rows = [o for o in rows if any(k == key for _, k in o.identity_keys())]
            if not rows:
                raise not_found(identity, cmdlet)
        text = _get(params, "Filter")
        if text:
            matches = _filter(text, cmdlet)
            rows = [o for o in rows if matches({**o.recipient, **(o.row or {})})]
        out = [dict(o.row or {}, IsSoftDeletedByRemove=True) for o in rows]
        return em._limited(out, params)
    objects = _mailbox_objects(em, params, MAILBOX, cmdlet)
    return em._limited([o.row or {} for o in objects], params)


@handler("Get-Recipient", "Identity", "ResultSize", "RecipientTypeDetails", "RecipientType",
         "Filter")
def get_recipient(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    objects = _mailbox_objects(em, {k: v for k, v in params.items()
                                    if k != "RecipientTypeDetails"}, ANY, cmdlet)
    wanted = _type_filter(params)
    if wanted is not None:
        objects = [o for o in objects if _lower(o.recipient.get("RecipientTypeDetails", ""))
                   in wanted]
    kinds = _get(params, "RecipientType")
    if kinds is not None:
        wanted_kinds = {_lower(v) for v in split_values(kinds)}
        objects = [o for o in objects if _lower(_recipient_type(o)) in wanted_kinds]
    return em._limited([_recipient_row(o) for o in objects], params)


def _recipient_type(obj: _Object) -> str:
    details = str(obj.recipient.get("RecipientTypeDetails", ""))
    if details.endswith("Mailbox"):
        return "UserMailbox"
    if details in ("MailUniversalSecurityGroup", "MailNonUniversalGroup"):
        return details
    if details in GROUP_TYPES:
        return "MailUniversalDistributionGroup"
    return details


def _recipient_row(obj: _Object) -> dict[str, Any]:
    row = obj.recipient
    return {"Identity": obj.identity, **row} if "Identity" not in row else row


def _grantee(em: Emulator, value: Any, cmdlet: str) -> _Object:
    return require_security_principal(em._principal(value, cmdlet), value, cmdlet)


def _check_grantees(em: Emulator, value: Any, cmdlet: str) -> None:
    """Every principal a GrantSendOnBehalfTo value adds must be a valid grantee."""
    added = value.get("add", value.get("Add")) if is_hashtable(value) else value
    for item in _as_list(added):
        _grantee(em, item, cmdlet)


@handler("Get-User", "Identity", "ResultSize", "RecipientTypeDetails")
def get_user(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    identity = _get(params, "Identity")
    if identity:
        obj = em._require(identity, ANY, cmdlet, read=True)
        if obj.recipient.get("RecipientTypeDetails") not in USER_TYPES:
            raise not_found(identity, cmdlet)
        objects = [obj]
    else:
        objects = [o for o in em._listing(ANY, em._clock())
                   if o.recipient.get("RecipientTypeDetails") in USER_TYPES]
    wanted = _type_filter(params)
    if wanted is not None:
        objects = [o for o in objects if _lower(o.recipient.get("RecipientTypeDetails", ""))
                   in wanted]
    return em._limited([_recipient_row(o) for o in objects], params)


@handler("New-Mailbox", "Name", "Alias", "DisplayName", "PrimarySmtpAddress", "Shared", "Room",
         "Equipment", "ResourceCapacity", "Office")
def new_mailbox(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    kinds = [k for k in ("Shared", "Room", "Equipment") if _as_bool(_get(params, k, False))]
    if len(kinds) != 1:
        raise BadParameter(
            "The emulator creates shared, room and equipment mailboxes: give exactly one of "
            "-Shared, -Room, -Equipment (user mailboxes come from Microsoft 365 licences).",
            cmdlet=cmdlet, exception_type="ParameterNotImplemented")
    type_details = {"Shared": "SharedMailbox", "Room": "RoomMailbox",
                    "Equipment": "EquipmentMailbox"}[kinds[0]]
    name = str(params["Name"])
    alias = str(_get(params, "Alias") or _derive_alias(name))
    address = str(_get(params, "PrimarySmtpAddress") or f"{alias}@{em._default_domain()}")
    em._check_name(name, cmdlet)
    address = em._check_address(address, cmdlet)
    policies = em._tenant.get("retention_policies") or []
    capacity = _get(params, "ResourceCapacity")
    extra: dict[str, Any] = {
        "ForwardingAddress": None, "ForwardingSmtpAddress": None,
        "DeliverToMailboxAndForward": False, "GrantSendOnBehalfTo": [],
        "RetentionPolicy": "Default MRM Policy" if "Default MRM Policy" in policies else (
            policies[0] if policies else None),
        "ArchiveStatus": "None", "ArchiveGuid": NO_ARCHIVE_GUID, "ArchiveState": "None",
        "ResourceCapacity": int(capacity) if capacity is not None else None,
        "Office": str(_get(params, "Office") or ""),
        **{f"CustomAttribute{n}": "" for n in range(1, 16)},
    }
    obj = em._new_object("mailbox", name=name, alias=alias,
                         display_name=str(_get(params, "DisplayName") or name), address=address,
                         type_details=type_details, row_extra=extra)
    em._system_entries(obj)
    return CmdletResult(value=[obj.row or {}])


def _derive_alias(name: str) -> str:
    from reconciler.emulator.tenant import _ALIAS_DROP

    return _ALIAS_DROP.sub("", name) or "mailbox"


_SET_MAILBOX_SIMPLE = ("DisplayName", "Office", "DeliverToMailboxAndForward",
                       *(f"CustomAttribute{n}" for n in range(1, 16)))


@handler("Set-Mailbox", "Identity", "Type", "GrantSendOnBehalfTo", "ForwardingAddress",
         "ForwardingSmtpAddress", "RetentionPolicy", "ResourceCapacity", "Name", "Alias",
         *_SET_MAILBOX_SIMPLE)
def set_mailbox(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=False)
    row = obj.row
    assert row is not None
    # Every value is checked before any is stored: a refused Set changes nothing.
    changes: dict[str, Any] = {}
    for prop in _SET_MAILBOX_SIMPLE:
        if not _present(params, prop):
            continue
        value = _get(params, prop)
        if prop == "DeliverToMailboxAndForward":
            changes[prop] = _as_bool(value)
        elif prop.startswith("CustomAttribute"):
            text = "" if value is None else str(value)
            if len(text) > 1024:
                raise BadParameter(
                    f"The length of the property is too long. The maximum length is 1024 and "
                    f"the length of the value provided is {len(text)}. Property: {prop}",
                    cmdlet=cmdlet, exception_type="DataValidationException")
            changes[prop] = text
        else:
            changes[prop] = "" if value is None else str(value)
    if _present(params, "Name"):
        name = str(params["Name"])
        if _lower(name) != _lower(obj.name):
            em._check_name(name, cmdlet)
        changes["Name"] = name
    if _present(params, "Alias"):
        changes["Alias"] = str(params["Alias"])
    if _present(params, "ForwardingAddress"):
        value = params["ForwardingAddress"]
        changes["ForwardingAddress"] = None if not value else em._principal(value, cmdlet).name
    if _present(params, "ForwardingSmtpAddress"):
        value = params["ForwardingSmtpAddress"]
        # Exchange returns the external target as a proxy address, with its "smtp:" prefix.
        changes["ForwardingSmtpAddress"] = (None if not value
                                            else f"smtp:{_strip_prefix(str(value))}")
    if _present(params, "GrantSendOnBehalfTo"):
        _check_grantees(em, params["GrantSendOnBehalfTo"], cmdlet)
        changes["GrantSendOnBehalfTo"] = em._update_multi(
            list(row.get("GrantSendOnBehalfTo") or []), params["GrantSendOnBehalfTo"], cmdlet)
    if _present(params, "RetentionPolicy"):
        policy = params["RetentionPolicy"]
        known = {p.lower(): p for p in em._tenant.get("retention_policies") or []}
        if policy is not None and _lower(policy) not in known:
            raise not_found(policy, cmdlet)
        changes["RetentionPolicy"] = None if policy is None else known[_lower(policy)]
    if _present(params, "ResourceCapacity"):
        value = params["ResourceCapacity"]
        changes["ResourceCapacity"] = None if value is None else int(value)
    if _present(params, "Type"):
        target = _CONVERSION.get(_lower(params["Type"]))
        if target is None:
            raise BadParameter(f"The emulator does not convert mailboxes to {params['Type']}.",
                               cmdlet=cmdlet, exception_type="ParameterNotImplemented")
        changes["RecipientTypeDetails"] = target
    return _store(em, obj, changes)


def _store(em: Emulator, obj: _Object, changes: dict[str, Any]) -> CmdletResult:
    """Apply checked changes to an object's row (and its recipient's copy of the same
    properties); the no-op warning when nothing differs."""
    row = obj.row
    assert row is not None
    if all(row.get(k) == v for k, v in changes.items()):
        return CmdletResult(warnings=[_no_change_warning(obj.identity)])
    if "Name" in changes and row.get("Identity") == obj.recipient.get("Name"):
        row["Identity"] = changes["Name"]
    for key, value in changes.items():
        row[key] = value
        if key in obj.recipient or key in ("Name", "Alias", "DisplayName",
                                           "RecipientTypeDetails"):
            obj.recipient[key] = value
    em._reindex(obj)
    return CmdletResult()


@handler("Remove-Mailbox", "Identity")
def remove_mailbox(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=False)
    em._objects.remove(obj)
    em._unindex(obj)
    em._forget_removed(obj)
    assert obj.row is not None
    soft = _Object(kind="mailbox", recipient=_copy_row(obj.recipient),
                   row=dict(_copy_row(obj.row), WhenSoftDeleted=_iso(em._wall_clock())))
    em._soft_deleted.append(soft)
    return CmdletResult()


@handler("Undo-SoftDeletedMailbox", "SoftDeletedObject", "Name", "DisplayName")
def undo_soft_deleted_mailbox(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    em._purge_soft_deleted()
    identity = params["SoftDeletedObject"]
    key = _lower(_strip_prefix(str(identity)))
    matches = [o for o in em._soft_deleted if any(k == key for _, k in o.identity_keys())]
    if not matches:
        raise not_found(identity, cmdlet)
    soft = matches[0]
    assert soft.row is not None
    if em._address_owner(soft.address) is not None:
        conflict = em._proxy_conflict(soft.address, cmdlet)
        assert conflict is not None
        raise conflict
    em._soft_deleted.remove(soft)
    row = {k: v for k, v in soft.row.items() if k != "WhenSoftDeleted"}
    recipient = soft.recipient
    for prop in ("Name", "DisplayName"):
        if _get(params, prop):
            row[prop] = recipient[prop] = str(_get(params, prop))
    obj = _Object(kind="mailbox", recipient=recipient, row=row,
                  visible_from=em._lagged() if em.lag_seconds > 0 else float("-inf"))
    em._system_entries(obj)
    em._objects.append(obj)
    em._index(obj)
    return CmdletResult(value=[row])


@handler("Enable-Mailbox", "Identity", "Archive")
def enable_mailbox(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    return _archive(em, cmdlet, params, enable=True)


@handler("Disable-Mailbox", "Identity", "Archive")
def disable_mailbox(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    return _archive(em, cmdlet, params, enable=False)


def _archive(em: Emulator, cmdlet: str, params: dict[str, Any], *, enable: bool) -> CmdletResult:
    if not _as_bool(_get(params, "Archive", False)):
        raise BadParameter(f"The emulator implements {cmdlet} only with -Archive.",
                           cmdlet=cmdlet, exception_type="ParameterNotImplemented")
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=False)
    row = obj.row
    assert row is not None
    active = archive_guid(row) is not None
    if enable and active:
        raise AlreadyExists(f"The mailbox \"{obj.identity}\" is already enabled for archive.",
                            cmdlet=cmdlet, exception_type="RecipientTaskException")
    if not enable and not active:
        raise NotPresent(f"The mailbox \"{obj.identity}\" doesn't have an archive.",
                         cmdlet=cmdlet, exception_type="RecipientTaskException")
    if enable:
        # Provisioning: the archive has its GUID at once, but ArchiveStatus stays None until
        # Exchange has finished, which the emulator never reports (GATEWAY-FACTS §g).
        row["ArchiveGuid"] = em._next_guid("archive", obj.identity)
        row["ArchiveState"] = "HostedPending"
        return CmdletResult(value=[row])
    row["DisabledArchiveGuid"] = row["ArchiveGuid"]
    row["ArchiveGuid"] = NO_ARCHIVE_GUID
    row["ArchiveState"] = "None"
    row["ArchiveStatus"] = "None"
    return CmdletResult()


# --- FullAccess -------------------------------------------------------------------------------


def _explicit(row: dict[str, Any]) -> bool:
    return not row.get("IsInherited") and not row.get("Deny")


@handler("Get-MailboxPermission", "Identity", "User", "ResultSize",
         "IncludeUnresolvedPermissions")
def get_mailbox_permission(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=True)
    rows = obj.live_rows("mailbox_permissions", em._clock())
    if not _as_bool(_get(params, "IncludeUnresolvedPermissions", False)):
        # A grant whose account was deleted (a bare SID) is hidden unless asked for.
        rows = [r for r in rows if not _unresolved(em, r.get("User"))]
    if _get(params, "User"):
        target = em._principal(params["User"], cmdlet)
        rows = [r for r in rows if em._same_principal(r.get("User"), target)]
    return em._limited(em._perms_out(obj, rows), params)


@handler("Add-MailboxPermission", "Identity", "User", "AccessRights", "AutoMapping", "Deny")
def add_mailbox_permission(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=False)
    target = _grantee(em, params["User"], cmdlet)
    rights = _rights(params["AccessRights"])
    deny = _as_bool(_get(params, "Deny", False))
    for row in obj.mailbox_permissions:
        if (not row.get("IsInherited") and bool(row.get("Deny")) == deny
                and em._same_principal(row.get("User"), target)):
            missing = [r for r in rights if r not in row["AccessRights"]]
            if not missing:
                return CmdletResult(
                    value=[em._perm_out(obj, row)],
                    warnings=[f"The appropriate access control entry is already present on the "
                              f"object \"{obj.identity}\" for account \"{target.name}\"."])
            row["AccessRights"] = [*row["AccessRights"], *missing]
            if _present(params, "AutoMapping") and not deny:
                row["AutoMapping"] = _as_bool(params["AutoMapping"])
            return CmdletResult(value=[em._perm_out(obj, row)])
    if len(obj.mailbox_permissions) >= MAX_MAILBOX_PERMISSION_ENTRIES:
        raise BadParameter(
            f"The mailbox \"{obj.identity}\" already has {MAX_MAILBOX_PERMISSION_ENTRIES} "
            f"permission entries, the most Exchange allows.", cmdlet=cmdlet,
            exception_type="ADOperationException")
    row = {"User": target.name, "AccessRights": rights, "IsInherited": False, "Deny": deny}
    if _present(params, "AutoMapping") and not deny:
        row["AutoMapping"] = _as_bool(params["AutoMapping"])
    obj.mailbox_permissions.append(row)
    return CmdletResult(value=[em._perm_out(obj, row)])


def _rights(value: Any) -> list[str]:
    from reconciler.emulator.reference import lookup

    # Store the reference's spelling, whatever letter case the caller used.
    spelled: dict[str, str] = {}
    for cmd in ("Add-MailboxPermission", "Remove-MailboxPermission", "Add-RecipientPermission"):
        param = lookup(cmd).parameters["accessrights"]
        spelled.update(param.values or {})
    return list(dict.fromkeys(spelled.get(_lower(v), str(v)) for v in split_values(value)))


def _unresolved(em: Emulator, user: Any) -> bool:
    """A deleted account's grant: Exchange shows its bare SID (``S-1-5-21-…``), which no
    recipient answers to."""
    text = str(user or "")
    if not _SID.match(text):
        return False
    try:
        return em._resolve(text) is None
    except ExchangeError:
        return False


def _is_user(em: Emulator, stored: Any, given: Any, target: _Object | None) -> bool:
    if target is None:  # an unresolved principal is named as Exchange shows it
        return _lower(stored) == _lower(given)
    return em._same_principal(stored, target)


@handler("Remove-MailboxPermission", "Identity", "User", "AccessRights", "Deny")
def remove_mailbox_permission(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=False)
    given = params["User"]
    orphan = any(_lower(r.get("User")) == _lower(given) and _unresolved(em, given)
                 for r in obj.mailbox_permissions)
    target = None if orphan else em._principal(given, cmdlet)
    rights = _rights(params["AccessRights"])
    deny = _as_bool(_get(params, "Deny", False))
    for row in list(obj.mailbox_permissions):
        if (row.get("IsInherited") or bool(row.get("Deny")) != deny
                or not _is_user(em, row.get("User"), given, target)):
            continue
        if not any(r in row["AccessRights"] for r in rights):
            break
        remaining = [r for r in row["AccessRights"] if r not in rights]
        em._remove_row(obj, "mailbox_permissions", row)
        if remaining:
            obj.mailbox_permissions.append(dict(row, AccessRights=remaining))
        return CmdletResult()
    # Exchange answers a missing ACE with a warning, not an error.
    return CmdletResult(warnings=[
        f"Can't remove the access control entry on the object \"{obj.identity}\" for account "
        f"\"{target.name if target else given}\" because the ACE doesn't exist on the "
        f"object."])


# --- SendAs -----------------------------------------------------------------------------------


@handler("Get-RecipientPermission", "Identity", "Trustee", "AccessRights", "ResultSize")
def get_recipient_permission(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    objects = _mailbox_objects(em, params, ANY, cmdlet)
    now = em._clock()
    target = em._principal(params["Trustee"], cmdlet) if _get(params, "Trustee") else None
    rows: list[dict[str, Any]] = []
    for obj in objects:
        rows.extend(em._perms_out(obj, (
            row for row in obj.live_rows("recipient_permissions", now)
            if target is None or em._same_principal(row.get("Trustee"), target))))
    return em._limited(rows, params)


@handler("Add-RecipientPermission", "Identity", "Trustee", "AccessRights")
def add_recipient_permission(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], ANY, cmdlet, read=False)
    target = _grantee(em, params["Trustee"], cmdlet)
    for row in obj.recipient_permissions:
        if (not row.get("IsInherited") and row.get("AccessControlType", "Allow") == "Allow"
                and em._same_principal(row.get("Trustee"), target)):
            return CmdletResult(
                value=[em._perm_out(obj, row)],
                warnings=[f"The appropriate access control entry is already present on the "
                          f"object \"{obj.identity}\" for account \"{target.name}\"."])
    row = {"Trustee": target.name, "AccessRights": ["SendAs"], "AccessControlType": "Allow",
           "IsInherited": False}
    obj.recipient_permissions.append(row)
    return CmdletResult(value=[em._perm_out(obj, row)])


@handler("Remove-RecipientPermission", "Identity", "Trustee", "AccessRights")
def remove_recipient_permission(em: Emulator, cmdlet: str, params: dict[str, Any]
                                ) -> CmdletResult:
    obj = em._require(params["Identity"], ANY, cmdlet, read=False)
    target = em._principal(params["Trustee"], cmdlet)
    for row in list(obj.recipient_permissions):
        if (not row.get("IsInherited") and row.get("AccessControlType", "Allow") == "Allow"
                and em._same_principal(row.get("Trustee"), target)):
            em._remove_row(obj, "recipient_permissions", row)
            return CmdletResult()
    return CmdletResult(warnings=[
        f"Can't remove the access control entry on the object \"{obj.identity}\" for account "
        f"\"{target.name}\" because the ACE doesn't exist on the object."])


# --- auto-reply -------------------------------------------------------------------------------


@handler("Get-MailboxAutoReplyConfiguration", "Identity", "ResultSize")
def get_auto_reply(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=True)
    config = obj.auto_reply or DEFAULT_AUTO_REPLY
    return CmdletResult(value=[{"Identity": obj.identity, **config}])


@handler("Set-MailboxAutoReplyConfiguration", "Identity", "AutoReplyState", "ExternalAudience",
         "InternalMessage", "ExternalMessage", "StartTime", "EndTime")
def set_auto_reply(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=False)
    config = dict(obj.auto_reply or DEFAULT_AUTO_REPLY)
    for prop, choices in (("AutoReplyState", ("Enabled", "Disabled", "Scheduled")),
                          ("ExternalAudience", ("None", "Known", "All"))):
        if _present(params, prop):
            config[prop] = next(c for c in choices if _lower(c) == _lower(params[prop]))
    for prop in ("InternalMessage", "ExternalMessage"):
        if _present(params, prop):
            config[prop] = _wrap_html(params[prop])
    for prop in ("StartTime", "EndTime"):
        if _present(params, prop):
            value = params[prop]
            config[prop] = None if value is None else _iso_time(str(value))
    start, end = config.get("StartTime"), config.get("EndTime")
    if config["AutoReplyState"] == "Scheduled" and start and end and end <= start:
        raise BadParameter("The end time must be later than the start time.", cmdlet=cmdlet,
                           exception_type="InvalidParameterException")
    obj.auto_reply = config
    return CmdletResult()


def _iso_time(text: str) -> str:
    from reconciler.emulator.tenant import _parse_time

    return _iso(_parse_time(text))


# --- distribution groups ----------------------------------------------------------------------


@handler("Get-DistributionGroup", "Identity", "ResultSize", "RecipientTypeDetails", "Filter")
def get_distribution_group(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    objects = _mailbox_objects(em, params, GROUP, cmdlet)
    return em._limited([o.row or {} for o in objects], params)


@handler("New-DistributionGroup", "Name", "Alias", "DisplayName", "PrimarySmtpAddress",
         "ManagedBy", "Members", "Type", "Notes", "Description", "RoomList",
         "RequireSenderAuthenticationEnabled")
def new_distribution_group(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    name = str(params["Name"])
    alias = str(_get(params, "Alias") or _derive_alias(name))
    address = str(_get(params, "PrimarySmtpAddress") or f"{alias}@{em._default_domain()}")
    em._check_name(name, cmdlet)
    address = em._check_address(address, cmdlet)
    # Without -ManagedBy the caller becomes the owner: for an app, the app itself.
    managed = (em._update_multi([], params["ManagedBy"], cmdlet)
               if _get(params, "ManagedBy") else [CALLER_NAME])
    members = em._update_multi([], _get(params, "Members"), cmdlet)
    security = _lower(_get(params, "Type") or "distribution") == "security"
    kind = ("RoomList" if _as_bool(_get(params, "RoomList", False)) else
            "MailUniversalSecurityGroup" if security else "MailUniversalDistributionGroup")
    obj = em._new_object(
        "group", name=name, alias=alias, display_name=str(_get(params, "DisplayName") or name),
        address=address, type_details=kind,
        row_extra={"ManagedBy": managed, "GrantSendOnBehalfTo": [],
                   # A new group rejects mail from outside the organisation unless told.
                   "RequireSenderAuthenticationEnabled": _as_bool(
                       _get(params, "RequireSenderAuthenticationEnabled", True))})
    obj.members = members
    obj.recipient_permissions = []
    return CmdletResult(value=[obj.row or {}])


@handler("Set-DistributionGroup", "Identity", "ManagedBy", "GrantSendOnBehalfTo", "DisplayName",
         "Name", "Alias", "RequireSenderAuthenticationEnabled")
def set_distribution_group(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], GROUP, cmdlet, read=False)
    row = obj.row
    assert row is not None
    changes: dict[str, Any] = {}
    if _present(params, "GrantSendOnBehalfTo"):
        _check_grantees(em, params["GrantSendOnBehalfTo"], cmdlet)
    for prop in ("ManagedBy", "GrantSendOnBehalfTo"):
        if _present(params, prop):
            changes[prop] = em._update_multi(list(row.get(prop) or []), params[prop], cmdlet)
    if _present(params, "DisplayName"):
        changes["DisplayName"] = str(params["DisplayName"] or "")
    if _present(params, "Alias"):
        changes["Alias"] = str(params["Alias"])
    if _present(params, "RequireSenderAuthenticationEnabled"):
        changes["RequireSenderAuthenticationEnabled"] = _as_bool(
            params["RequireSenderAuthenticationEnabled"])
    if _present(params, "Name"):
        name = str(params["Name"])
        if _lower(name) != _lower(obj.name):
            em._check_name(name, cmdlet)
        changes["Name"] = name
    return _store(em, obj, changes)


@handler("Remove-DistributionGroup", "Identity")
def remove_distribution_group(em: Emulator, cmdlet: str, params: dict[str, Any]
                              ) -> CmdletResult:
    obj = em._require(params["Identity"], GROUP, cmdlet, read=False)
    em._objects.remove(obj)
    em._unindex(obj)
    em._forget_removed(obj)
    # Groups are not soft-deleted; memberships of the group in other groups go with it.
    for other in em._objects:
        if other.kind == "group" and other.members:
            other.members = [m for m in other.members if not em._same_principal(m, obj)]
    return CmdletResult()


@handler("Get-DistributionGroupMember", "Identity", "ResultSize")
def get_distribution_group_member(em: Emulator, cmdlet: str, params: dict[str, Any]
                                  ) -> CmdletResult:
    obj = em._require(params["Identity"], GROUP, cmdlet, read=True)
    now = em._clock()
    rows = []
    members = list(obj.members) + [r["Member"] for t, r in obj.ghosts.get("members", [])
                                   if now < t]
    for member in members:
        target = em._resolve(member)
        rows.append(_recipient_row(target) if target is not None
                    else {"Identity": member, "Name": member})
    return em._limited(rows, params)


def _member_target(em: Emulator, params: dict[str, Any], cmdlet: str) -> _Object:
    member = _get(params, "Member")
    if not member:
        raise BadParameter("Cannot process command because of one or more missing mandatory "
                           "parameters: Member.", cmdlet=cmdlet,
                           exception_type="ParameterBindingException")
    return em._principal(member, cmdlet)


@handler("Add-DistributionGroupMember", "Identity", "Member")
def add_distribution_group_member(em: Emulator, cmdlet: str, params: dict[str, Any]
                                  ) -> CmdletResult:
    obj = em._require(params["Identity"], GROUP, cmdlet, read=False)
    target = _member_target(em, params, cmdlet)
    if any(em._same_principal(m, target) for m in obj.members):
        raise AlreadyExists(
            f"The recipient \"{params['Member']}\" is already a member of the group "
            f"\"{obj.identity}\".", cmdlet=cmdlet, exception_type="MemberAlreadyExistsException")
    obj.members.append(target.name)
    return CmdletResult()


@handler("Remove-DistributionGroupMember", "Identity", "Member")
def remove_distribution_group_member(em: Emulator, cmdlet: str, params: dict[str, Any]
                                     ) -> CmdletResult:
    obj = em._require(params["Identity"], GROUP, cmdlet, read=False)
    target = _member_target(em, params, cmdlet)
    for member in obj.members:
        if em._same_principal(member, target):
            obj.members.remove(member)
            _ghost_member(em, obj, member)
            return CmdletResult()
    raise NotPresent(
        f"The recipient \"{params['Member']}\" isn't a member of the group \"{obj.identity}\".",
        cmdlet=cmdlet, exception_type="MemberNotFoundException")


def _ghost_member(em: Emulator, obj: _Object, member: str) -> None:
    if em.lag_seconds > 0:
        now = em._clock()
        ghosts = [(t, r) for t, r in obj.ghosts.get("members", []) if now < t]
        ghosts.append((now + em.lag_seconds, {"Member": member}))
        obj.ghosts["members"] = ghosts


@handler("Update-DistributionGroupMember", "Identity", "Members")
def update_distribution_group_member(em: Emulator, cmdlet: str, params: dict[str, Any]
                                     ) -> CmdletResult:
    obj = em._require(params["Identity"], GROUP, cmdlet, read=False)
    value = _get(params, "Members")
    if is_hashtable(value):
        raise BadParameter("Update-DistributionGroupMember -Members replaces the whole list; "
                           "use Add-/Remove-DistributionGroupMember to change one member.",
                           cmdlet=cmdlet, exception_type="ParameterBindingException")
    new = em._update_multi([], value, cmdlet)
    for member in obj.members:
        if not any(em._same_principal(member, em._principal(n, cmdlet)) for n in new):
            _ghost_member(em, obj, member)
    # Members already present keep the form they were stored in.
    kept = [m for m in obj.members
            if any(em._same_principal(m, em._principal(n, cmdlet)) for n in new)]
    added = [n for n in new if not any(em._same_principal(m, em._principal(n, cmdlet))
                                       for m in kept)]
    obj.members = kept + added
    return CmdletResult()


# --- tenant configuration ---------------------------------------------------------------------


@handler("Get-AcceptedDomain", "Identity", "ResultSize")
def get_accepted_domain(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    default = _lower(em._default_domain())
    domains = list(dict.fromkeys([*em._tenant["accepted_domains"], em.initial_domain]))
    rows = [{"Identity": d, "Name": d, "DomainName": d, "DomainType": "Authoritative",
             "Default": _lower(d) == default, "InitialDomain": _lower(d) == _lower(
                 em.initial_domain)} for d in domains]
    identity = _get(params, "Identity")
    if identity:
        rows = [r for r in rows if _lower(r["Name"]) == _lower(identity)]
        if not rows:
            raise not_found(identity, cmdlet)
    return CmdletResult(value=rows)


@handler("Get-RetentionPolicy", "Identity")
def get_retention_policy(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    rows = [{"Identity": p, "Name": p, "IsDefault": p == "Default MRM Policy"}
            for p in em._tenant.get("retention_policies") or []]
    identity = _get(params, "Identity")
    if identity:
        rows = [r for r in rows if _lower(r["Name"]) == _lower(identity)]
        if not rows:
            raise not_found(identity, cmdlet)
    return CmdletResult(value=rows)



@handler("Get-HostedOutboundSpamFilterPolicy", "Identity")
def get_hosted_outbound_spam_filter_policy(em: Emulator, cmdlet: str, params: dict[str, Any]
                                           ) -> CmdletResult:
    # One policy, the default. AutoForwardingMode Automatic (Exchange's default) blocks
    # automatic forwarding outside the organisation, as Off does; On allows it.
    mode = str(em._tenant.get("auto_forwarding_mode") or "Automatic")
    row = {"Identity": "Default", "Name": "Default", "IsDefault": True,
           "AutoForwardingMode": mode}
    if _lower(params["Identity"]) != "default":
        raise not_found(params["Identity"], cmdlet)
    return CmdletResult(value=[row])


@handler("Get-MailboxStatistics", "Identity")
def get_mailbox_statistics(em: Emulator, cmdlet: str, params: dict[str, Any]) -> CmdletResult:
    obj = em._require(params["Identity"], MAILBOX, cmdlet, read=True)
    row = obj.row or {}
    size = int(row.get("TotalItemBytes") or 0)
    return CmdletResult(value=[{
        "Identity": obj.identity, "DisplayName": row.get("DisplayName"),
        "TotalItemSize": f"{size / 1024 ** 3:.3f} GB ({size:,} bytes)",
        "ItemCount": int(row.get("ItemCount") or 0)}])
