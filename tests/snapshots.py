"""Shape a tenant snapshot the way Exchange reports it, for tests that need what no cmdlet can
make: user mailboxes (they come from licences), localised calendar folders, recipients that
share a display name."""

from __future__ import annotations

import uuid
from typing import Any

_NAMESPACE = uuid.UUID("0b5e3a1c-7d2f-4e8a-9c61-2f4d8b7e9a10")


def add_user(snap: dict[str, Any], alias: str, display_name: str, *, office: str = "London",
             calendar: str = "Calendar", domain: str = "contoso.com") -> str:
    """A user mailbox with its recipient and the entries every calendar has; its calendar
    folder is named ``calendar`` (``Kalender`` for a German mailbox). Returns its address."""
    address = f"{alias}@{domain}"
    guid = str(uuid.uuid5(_NAMESPACE, address))
    edoid = str(uuid.uuid5(_NAMESPACE, "entra/" + address))
    common = {"Name": alias, "Guid": guid, "ExternalDirectoryObjectId": edoid,
              "UserPrincipalName": address, "PrimarySmtpAddress": address, "Alias": alias,
              "DisplayName": display_name, "RecipientTypeDetails": "UserMailbox",
              "Office": office}
    snap["recipients"].append({**common, "City": office, "Department": "",
                               "CountryOrRegion": "GB", "UsageLocation": "GB"})
    snap["mailboxes"].append({
        "Identity": alias, **common, "ForwardingAddress": None, "ForwardingSmtpAddress": None,
        "DeliverToMailboxAndForward": False, "GrantSendOnBehalfTo": [],
        "RetentionPolicy": "Default MRM Policy", "ArchiveStatus": "None",
        "ResourceCapacity": None, **{f"CustomAttribute{n}": "" for n in range(1, 16)}})
    folder = f"{alias}:\\{calendar}"
    snap["mailbox_folder_permissions"] += [
        {"Identity": folder, "User": "Default", "AccessRights": ["AvailabilityOnly"],
         "SharingPermissionFlags": "None"},
        {"Identity": folder, "User": "Anonymous", "AccessRights": ["None"],
         "SharingPermissionFlags": "None"}]
    return address
