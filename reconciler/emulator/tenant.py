"""The emulated tenant: Exchange Online's cmdlets over a snapshot, with Exchange's behaviour.

Each call is first checked against the official cmdlet reference (:mod:`.reference`), then run
against an in-memory tenant indexed so that every per-identity call costs a dictionary lookup.
What the emulator reproduces, and which of it nobody has confirmed on a live tenant, is listed in
``docs/emulator.md``; the points a reader of this code needs:

- Rows are kept as Exchange returns them and returned as stored: a principal written into the
  snapshot as a GUID, a Name or a display name comes back in that form. Entries written by an
  ``Add-*`` store the recipient's ``Name`` (calendar entries its display name, as
  Get-MailboxFolderPermission shows them).
- Identities given to a cmdlet resolve through every recipient, strongest form first: Name,
  Identity, Guid, ExternalDirectoryObjectId; then primary, proxy or UPN address; then Alias;
  last the display name (two recipients sharing the first form that matches make the identity
  ambiguous).
- Read-after-write lag (``lag_seconds``): a created object stays invisible to ``Get-*`` and a
  removed entry or object stays listed until the lag has passed on the injected clock. Writes see
  the truth, unless ``lag_applies_to_writes`` asks for the harsher behaviour.
"""

from __future__ import annotations

import copy
import gc
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.emulator.handlers import HANDLERS as _HANDLERS
from reconciler.emulator.reference import canonical_parameters, is_hashtable
from reconciler.live.backend import (
    AlreadyExists,
    BadParameter,
    CmdletResult,
    ExchangeError,
    NotFound,
    ReadOnlyBackend,
    is_write,
)
from reconciler.live.reader import NO_ARCHIVE_GUID
from reconciler.live.snapshot_format import SNAPSHOT_FORMAT, SnapshotError, validate_snapshot

SOFT_DELETE_RETENTION = timedelta(days=30)
DEFAULT_RESULT_SIZE = 1000
MAX_MAILBOX_PERMISSION_ENTRIES = 500
# Exchange names the domain controller that answered in its not-found messages.
_SERVER = "AM0PR01A001DC01.EURPR01A001.prod.outlook.com"
SELF = "NT AUTHORITY\\SELF"
# Present, inherited and denied, on every mailbox of a real tenant.
INHERITED_DENY_ADMIN = "NAMPR01A001\\Administrator"
CALENDAR_BUILTINS = ("Default", "Anonymous")
# Key of a calendar entry naming the principal it belongs to (its Name), never shown: Exchange
# keeps entries by security principal and shows only a display name, which two may share.
FOLDER_WHO = "_principal"
DEFAULT_AUTO_REPLY: Mapping[str, Any] = {
    "AutoReplyState": "Disabled", "ExternalAudience": "All", "InternalMessage": "",
    "ExternalMessage": "", "StartTime": None, "EndTime": None}
# Who owns a group created without -ManagedBy: the calling application.
CALLER_NAME = "Reconciler App"
UUID_NAMESPACE = uuid.UUID("3c1f6a52-5d5e-4c8e-9a39-7b0d35b6e0a1")

MAILBOX_TYPES = ("UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox")
USER_TYPES = (*MAILBOX_TYPES, "User", "MailUser", "GuestMailUser", "DisabledUser")
GROUP_TYPES = ("MailUniversalDistributionGroup", "MailUniversalSecurityGroup",
               "MailNonUniversalGroup", "RoomList")
_CONVERSION = {"regular": "UserMailbox", "shared": "SharedMailbox", "room": "RoomMailbox",
               "equipment": "EquipmentMailbox"}
_RECIPIENT_COPY = ("Name", "Guid", "ExternalDirectoryObjectId", "UserPrincipalName",
                   "PrimarySmtpAddress", "Alias", "DisplayName", "RecipientTypeDetails", "Office",
                   "EmailAddresses")
# Identity forms, strongest first. Resolution stops at the first tier with a match, so an
# object's own Name wins over another's alias, and a display name is the last resort.
_KEY_TIERS = (("Identity", "Name", "Guid", "ExternalDirectoryObjectId"),
              ("PrimarySmtpAddress", "UserPrincipalName"),
              ("Alias",),
              ("DisplayName",))
_ADDRESS_TIER = 1
_ALIAS_DROP = re.compile(r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]")
_HTML_WRAPPED = re.compile(r"^\s*<html", re.IGNORECASE)

# Parameters a handler may ignore: they change nothing the emulator models.
_IGNORED = frozenset(p.lower() for p in (
    "Confirm", "Force", "BypassSecurityGroupManagerCheck", "InheritanceType", "ErrorAction",
    "WarningAction", "Verbose", "Debug", "ReadFromDomainController", "UseCustomRouting",
    "IncludeInactiveMailbox", "SendNotificationToUser", "IgnoreDefaultScope", "Properties",
    "PropertySet", "IncludeUserWithDisplayName",
    "IncludeTrusteeWithPrimarySmtpAddress", "IncludeSoftDeletedObjects",
))


def _now_utc() -> datetime:
    return datetime.now(UTC)


def _lower(value: Any) -> str:
    return str(value).strip().lower()


def _strip_prefix(value: str) -> str:
    return value[5:] if value[:5].lower() == "smtp:" else value


def _memoized(function: Callable[[Any], str]) -> Callable[[Any], str]:
    """``function`` remembering its answer per (hashable) argument."""
    known: dict[Any, str] = {}

    def remembered(value: Any) -> str:
        try:
            return known[value]
        except KeyError:
            result = known[value] = function(value)
            return result
        except TypeError:  # unhashable: not remembered
            return function(value)

    return remembered


def _identity_key(value: Any) -> str:
    """The form an identity is indexed and looked up by: without ``smtp:``, trimmed, lower
    case. A value already in that form is its own key (no second copy of the string)."""
    text = _strip_prefix(str(value))
    key = text.strip().lower()
    return text if key == text else key


def _new_guid(*parts: str) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, "/".join(parts)))


def _compact(row: Mapping[str, Any], shared: dict[tuple[Any, ...], list[Any]]
             ) -> dict[str, Any]:
    """The emulator's own copy of a snapshot row. Tenants of 500,000 entries repeat the same
    principals and rights lists endlessly: strings are interned and equal string lists shared
    between rows, so rows' lists must be replaced, never changed in place."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, str):
            value = sys.intern(value)
        elif isinstance(value, list):
            if all(isinstance(v, str) for v in value):
                frozen = tuple(sys.intern(v) for v in value)
                value = shared.get(frozen)
                if value is None:
                    value = shared[frozen] = list(frozen)
            else:
                value = copy.deepcopy(value)
        elif isinstance(value, dict):
            value = copy.deepcopy(value)
        out[key] = value
    return out


def _copy_value(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _copy_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in row.items()}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("$true", "true")
    return bool(value)


def _wrap_html(message: str | None) -> str:
    # Exchange stores auto-reply texts as HTML and returns them wrapped, even if sent as text.
    if not message:
        return ""
    if _HTML_WRAPPED.match(message):
        return message
    return f"<html><body>{message}</body></html>"


def not_found(identity: Any, cmdlet: str | None = None) -> NotFound:
    return NotFound(
        f"The operation couldn't be performed because object '{identity}' couldn't be found on "
        f"'{_SERVER}'.",
        cmdlet=cmdlet,
        exception_type="ManagementObjectNotFoundException",
        error_id="6F2B7E2A",
    )


@dataclass(eq=False)
class _Object:
    """One recipient, with what hangs off it. ``row`` is its Get-Mailbox or
    Get-DistributionGroup row (None for a recipient that is neither)."""

    kind: str  # "mailbox" | "group" | "recipient"
    recipient: dict[str, Any]
    row: dict[str, Any] | None = None
    visible_from: float = float("-inf")
    mailbox_permissions: list[dict[str, Any]] = field(default_factory=list)
    recipient_permissions: list[dict[str, Any]] = field(default_factory=list)
    calendar_folder: str = "Calendar"
    folder_permissions: list[dict[str, Any]] = field(default_factory=list)
    calendar_processing: dict[str, Any] | None = None  # Get-CalendarProcessing, once set
    auto_reply: dict[str, Any] | None = None
    members: list[str] = field(default_factory=list)
    # container name -> removed rows still listed until the time given
    ghosts: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=dict)
    ghost_until: float = float("-inf")  # a removed object still listed until then
    index_keys: tuple[tuple[int, str], ...] = ()

    @property
    def identity(self) -> str:
        source = self.row if self.row is not None else self.recipient
        return str(source.get("Identity") or source.get("Name") or
                   source.get("PrimarySmtpAddress"))

    @property
    def name(self) -> str:
        return str(self.recipient.get("Name") or self.identity)

    @property
    def address(self) -> str:
        source = self.row if self.row is not None else self.recipient
        return str(source.get("PrimarySmtpAddress") or "")

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.address.lower(), self.identity.lower())

    def identity_keys(self, key: Callable[[Any], str] = _identity_key
                      ) -> Iterator[tuple[int, str]]:
        """(tier, lower-cased key) for every form of identity this object answers to."""
        for source in (self.recipient, self.row or {}):
            for tier, props in enumerate(_KEY_TIERS):
                for prop in props:
                    value = source.get(prop)
                    if value:
                        yield tier, key(value)
            for proxy in source.get("EmailAddresses") or ():
                yield _ADDRESS_TIER, key(proxy)

    def live_rows(self, container: str, now: float) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = getattr(self, container)
        ghosts = self.ghosts.get(container)
        if not ghosts:
            return rows
        return rows + [row for until, row in ghosts if now < until]



# Recipient kinds that hold no security principal: Exchange's lists of who may be granted
# FullAccess, SendAs, SendOnBehalf or calendar access name mailbox users, mail users and
# mail-enabled security groups only (GATEWAY-FACTS §j).
NOT_GRANTEES = {
    "MailUniversalDistributionGroup": "a distribution group", "RoomList": "a distribution group",
    "DynamicDistributionGroup": "a dynamic distribution group",
    "MailContact": "a mail contact", "MailForestContact": "a mail contact",
}


def require_security_principal(target: _Object, value: Any, cmdlet: str) -> _Object:
    """``target``, unless it is a recipient that cannot be granted a permission."""
    kind = str((target.row or target.recipient).get("RecipientTypeDetails") or "")
    if kind in NOT_GRANTEES:
        raise BadParameter(
            f"\"{value}\" is {NOT_GRANTEES[kind]} ({kind}), not a security principal: only "
            f"mailbox users, mail users and mail-enabled security groups can be granted this "
            f"permission.", cmdlet=cmdlet, exception_type="InvalidOperationException")
    return target

class Emulator:
    """An Exchange Online tenant in memory, answering cmdlets as the real service does.

    ``snapshot`` is a tenant snapshot (docs/format.md §9), validated against its schema
    (:class:`SnapshotError` if invalid); the emulator copies it and never mutates the caller's
    dict. ``lag_seconds`` > 0 emulates read-after-write lag on ``clock`` (monotonic seconds;
    inject one in tests instead of sleeping). ``wall_clock`` dates soft deletions (30 days).

    Thread-safe: every call holds one lock, so the HTTP service may call from many threads.
    """

    read_only = False

    def __init__(
        self,
        snapshot: Mapping[str, Any],
        *,
        lag_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _now_utc,
        lag_applies_to_writes: bool = False,
        validate: bool = True,
        read_only: bool = False,
    ) -> None:
        # read_only: the tenant is only ever read (a snapshot plan). The emulator then takes
        # the caller's rows as its own instead of copying them, answers writes with an error,
        # and hands out its own rows unchanged: no copy per row and, for a call already in the
        # reference's spelling, no parameter check on every call (the product's calls are held
        # to the reference by the tests).
        self._read_only = read_only
        self.read_only = read_only  # the Backend protocol's flag: apply refuses a read-only one
        if validate:
            validate_snapshot(snapshot)
        self.lag_seconds = float(lag_seconds)
        self.lag_applies_to_writes = lag_applies_to_writes
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self._tenant: dict[str, Any] = copy.deepcopy(dict(snapshot["tenant"]))
        self._objects: list[_Object] = []
        # one table per identity tier: lower-cased key -> the objects answering to it
        self._index_tiers: list[dict[str, tuple[_Object, ...]]] = [{} for _ in _KEY_TIERS]
        self._soft_deleted: list[_Object] = []
        self._removed: list[_Object] = []  # recently removed, still listed while lag lasts
        self._serial = 0
        # Read-only: the display name each stored calendar grantee shows as (None: as stored).
        self._shown_names: dict[str, str | None] = {}
        self._ordered: list[_Object] | None = None  # read-only: every object, listing order
        # Loading builds hundreds of thousands of small dicts and no cycles: the cyclic
        # collector would rescan everything already built, over and over, for nothing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._load(snapshot)
        finally:
            if collecting:
                gc.enable()

    # --- public API ---------------------------------------------------------------------

    @property
    def tenant_id(self) -> str:
        return str(self._tenant["id"])

    @property
    def initial_domain(self) -> str:
        return str(self._tenant["initial_domain"])

    def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
    ) -> CmdletResult:
        """Run one cmdlet. Raises the typed errors of :mod:`reconciler.live.backend`:
        BadParameter / Forbidden for what the reference rejects, NotFound (exception_type
        ``ManagementObjectNotFoundException``), AlreadyExists, NotPresent, BadParameter for
        what Exchange refuses on the tenant's state. ``select`` keeps only those properties."""
        with self._lock:
            name = self._count_name(cmdlet)
            self.calls[name] += 1
            if self._read_only and is_write(name):
                raise ReadOnlyBackend(f"{name} refused: this tenant is read-only.", cmdlet=name)
            handler = _HANDLERS.get(name)
            if self._read_only and handler is not None and parameters is not None \
                    and handler[2].issuperset(parameters):
                return self._answer(name, handler[0], dict(parameters), select)
            params = canonical_parameters(cmdlet, parameters)
            if handler is None:
                raise BadParameter(
                    f"{name} is in the Exchange reference but not implemented by the emulator.",
                    cmdlet=name, exception_type="CmdletNotImplemented")
            method, supported, _ = handler
            for given in params:
                low = given.lower()
                if low not in supported and low not in _IGNORED and low != "whatif":
                    raise BadParameter(
                        f"The emulator does not implement -{given} of {name}.",
                        cmdlet=name, exception_type="ParameterNotImplemented")
            if is_write(name) and _as_bool(_get(params, "WhatIf", False)):
                return CmdletResult()
            return self._answer(name, method, params, select)

    def _answer(self, name: str, method: Callable[[Emulator, str, dict[str, Any]], CmdletResult],
                params: dict[str, Any], select: Sequence[str] | None) -> CmdletResult:
        result: CmdletResult = method(self, name, params)
        if self._read_only:  # nothing changes the rows: callers may share them
            if select:
                wanted = list(select)
                result.value = [{k: row[k] for k in wanted if k in row} for row in result.value]
            return result
        # Handlers may return the tenant's own rows: the caller gets copies, never those.
        if select:
            wanted = list(select)
            result.value = [{k: _copy_value(row[k]) for k in wanted if k in row}
                            for row in result.value]
        else:
            result.value = [_copy_row(row) for row in result.value]
        return result

    def calendar_identity(self, identity: str) -> str:
        """``<mailbox>:\\<calendar folder>`` for a mailbox: the folder's name may be localised
        (``Kalender``, ``Agenda``). An emulator convenience; Exchange has no such cmdlet."""
        with self._lock:
            obj = self._require(identity, ("mailbox",), "Get-MailboxFolderPermission", read=True)
            return self.folder_identity(obj)

    def close(self) -> None:
        """Nothing to release; present so an Emulator can stand in for a Backend."""

    def to_snapshot(self) -> dict[str, Any]:
        """The tenant as it now is (lag aside), in the snapshot format, sorted so that the same
        tenant always serialises to the same bytes."""
        with self._lock:
            self._purge_soft_deleted()
            objects = sorted(self._objects, key=lambda o: o.sort_key)
            mailboxes = [o for o in objects if o.kind == "mailbox"]
            groups = [o for o in objects if o.kind == "group"]
            snap: dict[str, Any] = {
                "format": SNAPSHOT_FORMAT,
                "tenant": copy.deepcopy(self._tenant),
                "recipients": [_copy_row(o.recipient) for o in objects],
                "mailboxes": [_copy_row(o.row or {}) for o in mailboxes],
            }
            if self._soft_deleted:
                snap["soft_deleted_mailboxes"] = [
                    _copy_row(o.row or {}) for o in sorted(self._soft_deleted,
                                                           key=lambda o: o.sort_key)]
            snap["mailbox_permissions"] = [
                _copy_row(self._perm_out(o, r)) for o in mailboxes
                for r in sorted(o.mailbox_permissions, key=_row_sort_key)]
            snap["recipient_permissions"] = [
                _copy_row(self._perm_out(o, r)) for o in objects
                for r in sorted(o.recipient_permissions, key=_row_sort_key)]
            snap["mailbox_folder_permissions"] = [
                _copy_row(self._folder_saved(o, r)) for o in mailboxes
                for r in sorted(o.folder_permissions, key=_folder_sort_key)]
            snap["auto_reply_configurations"] = [
                {"Identity": o.identity, **_copy_row(o.auto_reply)}
                for o in mailboxes if o.auto_reply is not None]
            processing = [{"Identity": o.identity, **_copy_row(o.calendar_processing)}
                          for o in mailboxes if o.calendar_processing is not None]
            if processing:
                snap["calendar_processing"] = processing
            snap["distribution_groups"] = [_copy_row(o.row or {}) for o in groups]
            snap["distribution_group_members"] = [
                {"Group": o.identity, "Member": m}
                for o in groups for m in sorted(o.members, key=str.lower)]
            return snap

    # --- loading --------------------------------------------------------------------------

    def _load(self, snapshot: Mapping[str, Any]) -> None:
        shared: dict[tuple[Any, ...], list[Any]] = {}

        def own(rows: Any) -> list[dict[str, Any]]:
            if self._read_only:
                return list(rows or ())
            return [_compact(row, shared) for row in rows or ()]

        snap = {name: own(value) for name, value in snapshot.items()
                if name not in ("format", "tenant")}
        key = _memoized(_identity_key)  # a recipient and its mailbox row repeat their values
        by_address: dict[str, _Object] = {}
        for rec in snap.get("recipients", []):
            obj = _Object(kind="recipient", recipient=rec)
            self._objects.append(obj)
            by_address.setdefault(_lower(rec["PrimarySmtpAddress"]), obj)

        def attach(row: dict[str, Any], kind: str) -> _Object:
            obj = by_address.get(_lower(row["PrimarySmtpAddress"]))
            if obj is None or obj.row is not None:
                obj = _Object(kind=kind, recipient=self._recipient_from(row))
                self._objects.append(obj)
                by_address[_lower(row["PrimarySmtpAddress"])] = obj
            obj.kind = kind
            obj.row = row
            return obj

        for row in snap.get("mailboxes", []):
            self._complete_mailbox_row(row)
            obj = attach(row, "mailbox")
            obj.auto_reply = None
        for row in snap.get("distribution_groups", []):
            row.setdefault("ManagedBy", [])
            row.setdefault("RecipientTypeDetails", "MailUniversalDistributionGroup")
            row.setdefault("RequireSenderAuthenticationEnabled", True)
            attach(row, "group")
        for obj in self._objects:
            _with_email_addresses(obj.recipient)
            if obj.row is not None:
                obj.row.setdefault("EmailAddresses", obj.recipient.get("EmailAddresses"))
                _with_email_addresses(obj.row)
            self._index(obj, key)
        for row in snap.get("soft_deleted_mailboxes", []):
            self._complete_mailbox_row(row)
            _with_email_addresses(row)
            self._soft_deleted.append(_Object(kind="mailbox", recipient=self._recipient_from(row),
                                              row=row))

        self._attach_entries(snap)

    def _owners(self, kinds: tuple[str, ...], what: str,
                known: dict[str, _Object]) -> Callable[[str], _Object]:
        """Who an entry of table ``what`` belongs to, by the Identity it names. A tenant's
        entries name the same few forms of each mailbox again and again: each is resolved
        once (nothing changes the index while entries are attached), and remembered in
        ``known``, shared by the tables whose entries belong to the same ``kinds``."""

        def owner(identity: str) -> _Object:
            obj = known.get(identity)
            if obj is None:
                obj = self._resolve(identity, kinds)
                if obj is None:
                    raise SnapshotError(f"snapshot: {what} entry names '{identity}', which is "
                                        f"no {' or '.join(kinds)} of the tenant")
                known[identity] = obj
            return obj

        return owner

    def _attach_entries(self, snap: Mapping[str, list[dict[str, Any]]]) -> None:
        """The permission, calendar, auto-reply and membership entries, each on its object."""
        mailboxes: dict[str, _Object] = {}
        owner = self._owners(("mailbox",), "mailbox_permissions", mailboxes)
        for row in snap.get("mailbox_permissions", []):
            owner(row.pop("Identity")).mailbox_permissions.append(row)
        owner = self._owners(("mailbox", "group", "recipient"), "recipient_permissions", {})
        for row in snap.get("recipient_permissions", []):
            owner(row.pop("Identity")).recipient_permissions.append(row)
        owner = self._owners(("mailbox",), "mailbox_folder_permissions", mailboxes)
        for row in snap.get("mailbox_folder_permissions", []):
            mailbox_part, _, folder = row.pop("Identity").rpartition(":\\")
            obj = owner(mailbox_part)
            obj.calendar_folder = folder or "Calendar"
            obj.folder_permissions.append(row)
        owner = self._owners(("mailbox",), "auto_reply_configurations", mailboxes)
        for row in snap.get("auto_reply_configurations", []):
            owner(row.pop("Identity")).auto_reply = row
        owner = self._owners(("mailbox",), "calendar_processing", mailboxes)
        for row in snap.get("calendar_processing", []):
            owner(row.pop("Identity")).calendar_processing = row
        owner = self._owners(("group",), "distribution_group_members", {})
        for row in snap.get("distribution_group_members", []):
            owner(row["Group"]).members.append(row["Member"])

    def _complete_mailbox_row(self, row: dict[str, Any]) -> None:
        """The newer snapshot fields (docs/format.md §9) a mailbox row may lack, from the older
        ones: an archive that ArchiveStatus says is active has a GUID and a hosted state."""
        active = row.get("ArchiveStatus") == "Active"
        if "ArchiveGuid" not in row:
            row["ArchiveGuid"] = (_new_guid(self.tenant_id, "archive", str(row["Identity"]))
                                  if active else NO_ARCHIVE_GUID)
        if "ArchiveState" not in row:
            row["ArchiveState"] = ("HostedProvisioned" if archive_guid(row) else "None")

    @staticmethod
    def _recipient_from(row: Mapping[str, Any]) -> dict[str, Any]:
        rec = {k: row[k] for k in _RECIPIENT_COPY if k in row}
        rec.setdefault("Name", row.get("Identity"))
        return rec

    # --- the identity index ---------------------------------------------------------------

    def _index(self, obj: _Object, key: Callable[[Any], str] = _identity_key) -> None:
        # Buckets are tuples (most keys name one object: a tuple of one is half a list's
        # size). A read-only tenant never unindexes, so it keeps no per-object key list.
        keys = dict.fromkeys(obj.identity_keys(key))
        if not self._read_only:
            obj.index_keys = tuple(keys)
        tiers = self._index_tiers
        for tier, key in keys:
            table = tiers[tier]
            bucket = table.get(key)
            if bucket is None:
                table[key] = (obj,)
            elif obj not in bucket:
                table[key] = (*bucket, obj)

    def _unindex(self, obj: _Object) -> None:
        for tier, key in obj.index_keys:
            table = self._index_tiers[tier]
            bucket = table.get(key)
            if bucket and obj in bucket:
                rest = tuple(o for o in bucket if o is not obj)
                if rest:
                    table[key] = rest
                else:
                    del table[key]
        obj.index_keys = ()

    def _reindex(self, obj: _Object) -> None:
        self._unindex(obj)
        self._index(obj)

    def _resolve(self, identity: Any, kinds: Iterable[str] | None = None,
                 *, read: bool = False, cmdlet: str | None = None) -> _Object | None:
        """The one object ``identity`` names, or None. Forms are tried strongest first (Name,
        Identity, GUIDs; then addresses; then alias; then display name); two matches in the
        first tier that matches are an ambiguity, as Exchange reports it."""
        if identity is None:
            return None
        key = _lower(_strip_prefix(str(identity)))
        wanted = tuple(kinds) if kinds is not None else None
        now = self._clock()
        visible_only = read or self.lag_applies_to_writes
        for table in self._index_tiers:
            bucket = table.get(key)
            if not bucket:  # most tiers know no such key: skip them cheaply
                continue
            hits = [o for o in bucket if (wanted is None or o.kind in wanted)
                    and (not visible_only or o.visible_from <= now)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise BadParameter(
                    f"The operation couldn't be performed because '{identity}' matches multiple "
                    f"entries.", cmdlet=cmdlet,
                    exception_type="ManagementObjectAmbiguousException")
        if read:
            for obj in self._removed:
                if now < obj.ghost_until and (wanted is None or obj.kind in wanted) and any(
                        k == key for _, k in dict.fromkeys(obj.identity_keys())):
                    return obj
        return None

    def _require(self, identity: Any, kinds: Iterable[str], cmdlet: str,
                 *, read: bool) -> _Object:
        obj = self._resolve(identity, kinds, read=read, cmdlet=cmdlet)
        if obj is None:
            raise not_found(identity, cmdlet)
        return obj

    def _principal(self, value: Any, cmdlet: str) -> _Object:
        obj = self._resolve(value, None, cmdlet=cmdlet)
        if obj is None:
            raise NotFound(
                f"User or group \"{value}\" wasn't found. Please make sure you've typed it "
                f"correctly.", cmdlet=cmdlet,
                exception_type="ManagementObjectNotFoundException")
        return obj

    def _same_principal(self, stored: Any, target: _Object) -> bool:
        try:
            found = self._resolve(stored)
        except ExchangeError:
            return False
        return found is target

    # --- helpers shared by handlers ----------------------------------------------------------

    def _lagged(self) -> float:
        return self._clock() + self.lag_seconds

    def _visible(self, obj: _Object, now: float) -> bool:
        return obj.visible_from <= now

    def _listing(self, kinds: tuple[str, ...], now: float) -> list[_Object]:
        if self._read_only:
            # Nothing is ever added or removed: the tenant is put in order once, not once per
            # listing (filtering what is in order keeps it in order).
            if self._ordered is None:
                self._ordered = sorted(self._objects, key=lambda o: o.sort_key)
            return [o for o in self._ordered if o.kind in kinds and o.visible_from <= now]
        live = [o for o in self._objects if o.kind in kinds and o.visible_from <= now]
        live += [o for o in self._removed if o.kind in kinds and now < o.ghost_until]
        return sorted(live, key=lambda o: o.sort_key)

    def _answering(self, values: Iterable[str], kinds: tuple[str, ...],
                   now: float) -> list[_Object]:
        """What :meth:`_listing` lists, narrowed to objects answering to one of ``values`` in
        any identity form (an index lookup, not a scan of the tenant)."""
        keys = {_lower(_strip_prefix(str(v))) for v in values}
        found = {id(o): o for table in self._index_tiers for key in keys
                 for o in table.get(key, ())}
        live = [o for o in found.values() if o.kind in kinds and o.visible_from <= now]
        live += [o for o in self._removed if o.kind in kinds and now < o.ghost_until
                 and any(k in keys for _, k in o.identity_keys())]
        return sorted(live, key=lambda o: o.sort_key)

    def _forget_removed(self, obj: _Object) -> None:
        now = self._clock()
        self._removed = [o for o in self._removed if now < o.ghost_until]
        if self.lag_seconds > 0:
            obj.ghost_until = now + self.lag_seconds
            self._removed.append(obj)

    def _remove_row(self, obj: _Object, container: str, row: dict[str, Any]) -> None:
        rows: list[dict[str, Any]] = getattr(obj, container)
        rows.remove(row)
        if self.lag_seconds > 0:
            now = self._clock()
            ghosts = [(t, r) for t, r in obj.ghosts.get(container, []) if now < t]
            ghosts.append((now + self.lag_seconds, row))
            obj.ghosts[container] = ghosts

    def _perm_out(self, obj: _Object, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"Identity": obj.identity, **row}

    def _perms_out(self, obj: _Object, rows: Iterable[Mapping[str, Any]]
                   ) -> list[dict[str, Any]]:
        """Each of ``rows`` as :meth:`_perm_out` shows it (the identity worked out once)."""
        identity = obj.identity
        return [{"Identity": identity, **row} for row in rows]

    def _folder_out(self, obj: _Object, row: Mapping[str, Any],
                    folder: str | None = None) -> dict[str, Any]:
        """An entry as Exchange lists it, under the folder's identity (``folder``, when the
        caller already worked it out for a whole listing)."""
        out = {"Identity": folder or self.folder_identity(obj), **row}
        out.pop(FOLDER_WHO, None)
        return out

    def folder_identity(self, obj: _Object) -> str:
        return f"{obj.identity}:\\{obj.calendar_folder}"

    def _folder_saved(self, obj: _Object, row: Mapping[str, Any]) -> dict[str, Any]:
        """An entry as the snapshot keeps it: as written, unless its display name is shared,
        then by the principal's Name, so that a reloaded tenant still tells the two apart."""
        out = self._folder_out(obj, row)
        who = row.get(FOLDER_WHO)
        if who:
            try:
                self._resolve(row.get("User"))
            except ExchangeError:
                out["User"] = who
        return out

    def meeting_message_rule(self, identity: str) -> list[str]:
        """Who receives the mailbox's meeting invites and responses as a delegate (display
        names): the entries whose sharing flags hold Delegate. An emulator convenience for
        tests; Exchange shows the rule only through the entries' flags."""
        with self._lock:
            obj = self._require(identity, ("mailbox",), "Get-MailboxFolderPermission", read=True)
            return sorted(str(r.get("User")) for r in obj.folder_permissions
                          if "Delegate" in str(r.get("SharingPermissionFlags") or ""))

    def _next_guid(self, *parts: str) -> str:
        self._serial += 1
        return _new_guid(self.tenant_id, *parts, str(self._serial))

    def _address_owner(self, address: str) -> _Object | None:
        key = _lower(_strip_prefix(address))
        for obj in self._index_tiers[_ADDRESS_TIER].get(key, ()):
            if obj.kind != "recipient" or _lower(obj.address) == key:
                return obj
        return None

    def _soft_deleted_holding(self, address: str) -> _Object | None:
        self._purge_soft_deleted()
        key = _lower(_strip_prefix(address))
        return next((o for o in self._soft_deleted if key in _held_addresses(o)), None)

    def _proxy_conflict(self, address: str, cmdlet: str) -> AlreadyExists | None:
        """Exchange's refusal of an address another recipient holds: as its primary address,
        its UPN or any proxy address (``smtp:`` secondaries included), live or soft-deleted.
        The text is the documented one; the holder's path is its distinguished name in the
        hosted organisation (soft-deleted objects live in their own container)."""
        holder = self._address_owner(address)
        container = ""
        if holder is None:
            holder = self._soft_deleted_holding(address)
            container = "Soft Deleted Objects/"
        if holder is None:
            return None
        path = (f"{_SERVER.split('.', 1)[1]}/Microsoft Exchange Hosted Organizations/"
                f"{self.initial_domain}/{container}{holder.name}")
        return AlreadyExists(
            f"The proxy address \"SMTP:{_strip_prefix(address)}\" is already being used by "
            f"\"{path}\". Choose another proxy address.", cmdlet=cmdlet,
            exception_type="ProxyAddressExistsException")

    def _purge_soft_deleted(self) -> None:
        cutoff = self._wall_clock() - SOFT_DELETE_RETENTION
        self._soft_deleted = [o for o in self._soft_deleted
                              if _parse_time(o.row and o.row.get("WhenSoftDeleted")) > cutoff]

    def _default_domain(self) -> str:
        return str(self._tenant.get("default_domain") or self._tenant["accepted_domains"][0])

    def _check_address(self, address: str, cmdlet: str) -> str:
        address = _strip_prefix(address).strip()
        local, at, domain = address.rpartition("@")
        if not at or not local:
            raise BadParameter(f"\"{address}\" isn't a valid SMTP address.", cmdlet=cmdlet,
                               exception_type="DataValidationException")
        accepted = {d.lower() for d in self._tenant["accepted_domains"]}
        accepted.add(self.initial_domain.lower())
        if domain.lower() not in accepted:
            raise BadParameter(
                f"The domain '{domain}' isn't an accepted domain for your organization.",
                cmdlet=cmdlet, exception_type="DataValidationException")
        conflict = self._proxy_conflict(address, cmdlet)
        if conflict is not None:
            raise conflict
        return address

    def _check_name(self, name: str, cmdlet: str) -> None:
        if any(_lower(o.name) == _lower(name) for o in self._index_tiers[0].get(_lower(name), ())):
            raise AlreadyExists(
                f"The name \"{name}\" is already being used. Please try another name.",
                cmdlet=cmdlet, exception_type="ADObjectAlreadyExistsException")

    def _new_object(self, kind: str, *, name: str, alias: str, display_name: str, address: str,
                    type_details: str, row_extra: Mapping[str, Any]) -> _Object:
        guid = self._next_guid(kind, address)
        edoid = self._next_guid("entra", address)
        recipient: dict[str, Any] = {
            "Name": name, "Guid": guid, "ExternalDirectoryObjectId": edoid,
            "UserPrincipalName": address if kind == "mailbox" else None,
            "PrimarySmtpAddress": address, "Alias": alias, "DisplayName": display_name,
            "RecipientTypeDetails": type_details, "Office": row_extra.get("Office") or "",
            "City": "", "Department": "", "CountryOrRegion": "", "UsageLocation": "",
            "EmailAddresses": [f"SMTP:{address}"],
        }
        row: dict[str, Any] = {
            "Identity": name, "Name": name, "Guid": guid, "ExternalDirectoryObjectId": edoid,
            **({"UserPrincipalName": address} if kind == "mailbox" else {}),
            "Alias": alias, "DisplayName": display_name, "PrimarySmtpAddress": address,
            "RecipientTypeDetails": type_details, "EmailAddresses": [f"SMTP:{address}"],
            **row_extra,
        }
        obj = _Object(kind=kind, recipient=recipient, row=row, visible_from=self._lagged()
                      if self.lag_seconds > 0 else float("-inf"))
        self._objects.append(obj)
        self._index(obj)
        return obj

    def _system_entries(self, obj: _Object) -> None:
        obj.mailbox_permissions = [
            {"User": SELF, "AccessRights": ["FullAccess", "ReadPermission"],
             "IsInherited": False, "Deny": False},
            {"User": INHERITED_DENY_ADMIN, "AccessRights": ["FullAccess"], "IsInherited": True,
             "Deny": True},
        ]
        obj.recipient_permissions = [
            {"Trustee": SELF, "AccessRights": ["SendAs"], "AccessControlType": "Allow",
             "IsInherited": False},
        ]
        obj.folder_permissions = [
            {"User": "Default", "AccessRights": ["AvailabilityOnly"],
             "SharingPermissionFlags": "None"},
            {"User": "Anonymous", "AccessRights": ["None"], "SharingPermissionFlags": "None"},
        ]
        obj.auto_reply = dict(DEFAULT_AUTO_REPLY)

    def _update_multi(self, current: list[str], value: Any, cmdlet: str) -> list[str]:
        """A multi-valued principal property after a replace (list) or an add/remove
        hashtable. New entries store the recipient's Name."""
        if is_hashtable(value):
            result = list(current)
            for item in _as_list(value.get("add", value.get("Add"))):
                target = self._principal(item, cmdlet)
                if not any(self._same_principal(s, target) for s in result):
                    result.append(target.name)
            for item in _as_list(value.get("remove", value.get("Remove"))):
                target = self._principal(item, cmdlet)
                result = [s for s in result if not self._same_principal(s, target)]
            return result
        result = []
        for item in _as_list(value):
            target = self._principal(item, cmdlet)
            if not any(self._same_principal(s, target) for s in result):
                result.append(target.name)
        return result

    @staticmethod
    def _result_size(params: Mapping[str, Any]) -> int | None:
        value = _get(params, "ResultSize", DEFAULT_RESULT_SIZE)
        if isinstance(value, str):
            return None if value.lower() == "unlimited" else int(value)
        return int(value)

    def _limited(self, rows: list[dict[str, Any]], params: Mapping[str, Any]) -> CmdletResult:
        limit = self._result_size(params)
        if limit is None or len(rows) <= limit:
            return CmdletResult(value=rows)
        warnings = []
        if _get(params, "ResultSize", None) is None:
            warnings.append(
                f"By default only the first {DEFAULT_RESULT_SIZE} items are returned. Use the "
                f"ResultSize parameter to specify the number of items returned. To return all "
                f"items, specify \"-ResultSize Unlimited\".")
        else:
            warnings.append("There are more results available than are currently displayed. "
                            "To view them, increase the value for the ResultSize parameter.")
        return CmdletResult(value=rows[:limit], warnings=warnings)

    @staticmethod
    def _count_name(cmdlet: str) -> str:
        # The reference never changes within a process: each spelling is looked up once.
        name = _COUNT_NAMES.get(cmdlet)
        if name is None:
            from reconciler.emulator.reference import load_reference

            found = load_reference().get(cmdlet.lower())
            name = _COUNT_NAMES[cmdlet] = found.name if found is not None else cmdlet
        return name


_COUNT_NAMES: dict[str, str] = {}  # a cmdlet as spelled by a caller -> the reference's name


def _held_addresses(obj: _Object) -> set[str]:
    """Every address ``obj`` answers to: primary, UPN and each proxy address."""
    out: set[str] = set()
    for source in (obj.recipient, obj.row or {}):
        for prop in ("PrimarySmtpAddress", "UserPrincipalName"):
            if source.get(prop):
                out.add(_lower(_strip_prefix(str(source[prop]))))
        out.update(_lower(_strip_prefix(str(p))) for p in source.get("EmailAddresses") or ())
    return out


def _get(params: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A parameter's value, its name in any letter case (as PowerShell binds it)."""
    if name in params:  # spelled as the reference spells it: the common case
        return params[name]
    low = name.lower()
    for key, value in params.items():
        if key.lower() == low:
            return value
    return default


def _present(params: Mapping[str, Any], name: str) -> bool:
    low = name.lower()
    return name in params or any(key.lower() == low for key in params)


def _with_email_addresses(row: dict[str, Any]) -> None:
    """Every recipient has proxy addresses, the primary one spelled ``SMTP:`` (docs/format.md §9);
    a snapshot written before the field existed gets just its primary address."""
    if not row.get("EmailAddresses") and row.get("PrimarySmtpAddress"):
        row["EmailAddresses"] = [f"SMTP:{row['PrimarySmtpAddress']}"]


def archive_guid(row: Mapping[str, Any]) -> str | None:
    """A mailbox's archive GUID, None when it has no archive."""
    guid = str(row.get("ArchiveGuid") or "")
    return guid if guid and guid != NO_ARCHIVE_GUID else None


def _parse_time(value: Any) -> datetime:
    if not value:
        return datetime.max.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row_sort_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    principal = str(row.get("User") or row.get("Trustee") or "")
    return (bool(row.get("IsInherited")), principal.lower(), bool(row.get("Deny")),
            tuple(row.get("AccessRights") or ()))


def _folder_sort_key(row: Mapping[str, Any]) -> tuple[int, str]:
    user = str(row.get("User") or "")
    builtin = CALENDAR_BUILTINS.index(user) if user in CALENDAR_BUILTINS else len(
        CALENDAR_BUILTINS)
    return (builtin, user.lower())
