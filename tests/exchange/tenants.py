"""Synthetic tenant snapshots (docs/format.md §9) of any size, for protocol tests and benchmarks."""

from __future__ import annotations

from typing import Any

TENANT_ID = "6f1c1f2e-0000-4000-8000-00000000abcd"
DOMAIN = "contoso.com"


def synthetic_snapshot(mailboxes: int, *, grants_per_mailbox: int = 1,
                       tenant_id: str = TENANT_ID) -> dict[str, Any]:
    """A tenant with ``mailboxes`` shared mailboxes, each granting FullAccess and SendAs to
    ``grants_per_mailbox`` of the others, plus Exchange's own SELF entries."""
    recipients: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    full_access: list[dict[str, Any]] = []
    send_as: list[dict[str, Any]] = []
    for n in range(mailboxes):
        name = f"mbx{n:06d}"
        address = f"{name}@{DOMAIN}"
        guid = f"00000000-0000-4000-9000-{n:012d}"
        recipients.append({"Name": name, "Guid": guid, "ExternalDirectoryObjectId": guid,
                           "PrimarySmtpAddress": address, "DisplayName": f"Mailbox {n}",
                           "RecipientTypeDetails": "SharedMailbox", "Office": "London"})
        rows.append({"Identity": name, "Name": name, "Guid": guid, "Alias": name,
                     "DisplayName": f"Mailbox {n}", "PrimarySmtpAddress": address,
                     "UserPrincipalName": address, "RecipientTypeDetails": "SharedMailbox",
                     "ForwardingAddress": None, "ForwardingSmtpAddress": None,
                     "DeliverToMailboxAndForward": False, "GrantSendOnBehalfTo": [],
                     "RetentionPolicy": "Default MRM Policy", "ArchiveStatus": "None",
                     "ResourceCapacity": None, "Office": "London"})
        full_access.append({"Identity": name, "User": "NT AUTHORITY\\SELF",
                            "AccessRights": ["FullAccess", "ReadPermission"],
                            "IsInherited": False, "Deny": False})
        send_as.append({"Identity": name, "Trustee": "NT AUTHORITY\\SELF",
                        "AccessRights": ["SendAs"], "AccessControlType": "Allow",
                        "IsInherited": False})
        for k in range(1, grants_per_mailbox + 1):
            other = f"mbx{(n + k) % mailboxes:06d}"
            if other == name:
                continue
            full_access.append({"Identity": name, "User": other, "AccessRights": ["FullAccess"],
                                "IsInherited": False, "Deny": False})
            send_as.append({"Identity": name, "Trustee": other, "AccessRights": ["SendAs"],
                            "AccessControlType": "Allow", "IsInherited": False})
    return {
        "format": "exchange-snapshot/1",
        "tenant": {"id": tenant_id, "initial_domain": "contoso.onmicrosoft.com",
                   "accepted_domains": [DOMAIN, "contoso.onmicrosoft.com"],
                   "retention_policies": ["Default MRM Policy"]},
        "recipients": recipients,
        "mailboxes": rows,
        "mailbox_permissions": full_access,
        "recipient_permissions": send_as,
    }
