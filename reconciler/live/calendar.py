"""A mailbox's calendar as Exchange Online has it: found under its own, possibly localised,
name, with each entry's grantee told apart from another that shares its display name.

- The default calendar of a German mailbox is ``Kalender``; ``<mailbox>:\\Calendar`` is not
  found. Get-MailboxFolderStatistics ``-FolderScope Calendar`` lists the mailbox's calendar
  folders; the default one has ``FolderType`` ``Calendar`` whatever its name
  (GATEWAY-FACTS §e).
- Get-MailboxFolderPermission names grantees by display name (§f). A display name two
  recipients share is asked about again, once per recipient bearing it, with ``-User
  <address>``, so that every entry is known by its principal's primary address.

One extra call per mailbox whose calendar is read; the second kind of call is made only for a
display name that is shared, never per grant otherwise. A room's booking (its calendar
processing) is read here too, one Get-CalendarProcessing per room that declares ``booking:``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.live.backend import Backend, NotFound, NotPresent
from reconciler.live.directory import Directory, is_system_principal
from reconciler.model import CALENDAR_BUILTIN_USERS, Booking

FOLDER_PROPERTIES = ("Name", "FolderPath", "FolderType")
PROCESSING_PROPERTIES = ("Identity", "AutomateProcessing", "ResourceDelegates", "AllBookInPolicy",
                         "AllRequestInPolicy", "ForwardRequestsToDelegates")


class NoCalendar(ReconcilerError):
    """Exchange lists no default calendar for a mailbox."""


def calendar_folder(backend: Backend, mailbox: str) -> str:
    """``<mailbox>:\\<name>`` of ``mailbox``'s default calendar."""
    if not mailbox:
        raise ValueError("refusing to look for a calendar with an empty Identity")
    rows = backend.invoke("Get-MailboxFolderStatistics",
                          {"Identity": mailbox, "FolderScope": "Calendar"},
                          list(FOLDER_PROPERTIES)).value
    for row in rows:
        if str(row.get("FolderType") or "") == "Calendar" and row.get("Name"):
            return f"{mailbox}:\\{row['Name']}"
    raise NoCalendar(
        f"{mailbox}: Exchange lists no default calendar (no folder of FolderType Calendar "
        f"under -FolderScope Calendar); its calendar permissions cannot be read")


def read_calendar(backend: Backend, mailbox: str, directory: Directory
                  ) -> tuple[str, list[dict[str, Any]]]:
    """The calendar's folder identity and its entries, each grantee named unambiguously."""
    folder = calendar_folder(backend, mailbox)
    rows = backend.invoke("Get-MailboxFolderPermission", {"Identity": folder}).value
    return folder, disambiguate(backend, folder, rows, directory)


def disambiguate(backend: Backend, folder: str, rows: Iterable[dict[str, Any]],
                 directory: Directory) -> list[dict[str, Any]]:
    """``rows`` with each entry whose grantee is a shared display name replaced by what
    Exchange answers for each recipient bearing that name, named by its primary address."""
    rows = list(rows)
    if not directory.any_display_name_shared(str(row.get("User") or "") for row in rows):
        return rows  # no display name is shared: the entries as read
    out: list[dict[str, Any]] = []
    asked: set[str] = set()
    for row in rows:
        user = str(row.get("User") or "")
        bearers = _bearers(user, directory)
        if not bearers:
            out.append(dict(row))
            continue
        if user.lower() in asked:
            continue
        asked.add(user.lower())
        for recipient in bearers:
            try:
                found = backend.invoke("Get-MailboxFolderPermission",
                                       {"Identity": folder, "User": recipient.key}).value
            except (NotFound, NotPresent):  # no entry for this one
                continue
            out.extend(dict(entry, User=recipient.key) for entry in found)
    return out


def _bearers(user: str, directory: Directory) -> list[Any]:
    """The recipients sharing display name ``user``, when more than one does (else [])."""
    if not user or user in CALENDAR_BUILTIN_USERS or is_system_principal(user):
        return []
    bearers = directory.bearing_display_name(user)
    if len(bearers) < 2 or directory.resolve(user) is not None:
        return []
    return bearers


def booking_of(row: Mapping[str, Any], canonical: Callable[[str], str]) -> Booking:
    """A room's booking as Get-CalendarProcessing reports it. Delegates receive requests when
    the room forwards them (ForwardRequestsToDelegates) and lets everyone request
    (AllRequestInPolicy): Set-CalendarProcessing.md, Example 4 and GATEWAY-FACTS §h."""
    return Booking(
        automate=str(row.get("AutomateProcessing") or "None"),
        delegates=tuple(sorted({canonical(str(d)) for d in row.get("ResourceDelegates") or ()})),
        all_book_in_policy=_flag(row.get("AllBookInPolicy")),
        delegates_receive_requests=(_flag(row.get("ForwardRequestsToDelegates"))
                                    and _flag(row.get("AllRequestInPolicy"))))


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "$true")
    return bool(value)
