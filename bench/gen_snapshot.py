"""Generate tenant snapshots (docs/format.md §9): synthetic tenants for benchmarks, and the building
blocks the sandbox seeds are made of.

    python bench/gen_snapshot.py --mailboxes 50000 --permissions 500000 --out /tmp/big.json

Every mailbox carries what Exchange puts on every mailbox (``NT AUTHORITY\\SELF``, an inherited
deny entry, the calendar's Default and Anonymous entries, an auto-reply configuration); the
requested number of permission entries counts the mailbox_permissions rows, system ones
included. Output is deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from pathlib import Path
from typing import Any

NAMESPACE = uuid.UUID("0d9a4f0e-3c0a-4a64-9b7e-5e0f1b2c3d4e")
SELF = "NT AUTHORITY\\SELF"
INHERITED_DENY = "NAMPR01A001\\Administrator"
NO_ARCHIVE = "00000000-0000-0000-0000-000000000000"


def guid(*parts: str) -> str:
    """A stable GUID for a name, so regenerated files do not churn."""
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def empty_snapshot(tenant_id: str, initial_domain: str, accepted_domains: list[str],
                   retention_policies: list[str]) -> dict[str, Any]:
    return {
        "format": "exchange-snapshot/1",
        "tenant": {"id": tenant_id, "initial_domain": initial_domain,
                   "accepted_domains": accepted_domains,
                   "retention_policies": retention_policies},
        "recipients": [], "mailboxes": [], "mailbox_permissions": [],
        "recipient_permissions": [], "mailbox_folder_permissions": [],
        "auto_reply_configurations": [], "distribution_groups": [],
        "distribution_group_members": [],
    }


def add_mailbox(snap: dict[str, Any], *, address: str, display_name: str,
                type_details: str = "UserMailbox", name: str | None = None,
                office: str = "", city: str = "", department: str = "", country: str = "",
                retention_policy: str = "Default MRM Policy", archive: bool = False,
                capacity: int | None = None, calendar_folder: str = "Calendar",
                default_calendar: str = "AvailabilityOnly", **settings: Any) -> str:
    """Add a mailbox with its recipient and system entries; returns its Identity (= Name).

    ``name`` defaults to the alias; pass a GUID to get a post-2022 style object whose Name is
    its Entra object id."""
    alias = address.split("@", 1)[0]
    tenant = snap["tenant"]["id"]
    edoid = guid(tenant, "entra", address)
    name = name or alias
    if name == "guid":
        name = edoid
    object_guid = guid(tenant, "exchange", address)
    user = type_details == "UserMailbox"
    snap["recipients"].append({
        "Name": name, "Guid": object_guid, "ExternalDirectoryObjectId": edoid,
        "UserPrincipalName": address, "PrimarySmtpAddress": address, "Alias": alias,
        "DisplayName": display_name, "RecipientTypeDetails": type_details, "Office": office,
        "City": city, "Department": department, "CountryOrRegion": country,
        "UsageLocation": country if user else "", "EmailAddresses": [f"SMTP:{address}"],
    })
    row = {
        "Identity": name, "Name": name, "Guid": object_guid, "ExternalDirectoryObjectId": edoid,
        "UserPrincipalName": address, "Alias": alias, "DisplayName": display_name,
        "PrimarySmtpAddress": address, "RecipientTypeDetails": type_details,
        "ForwardingAddress": None, "ForwardingSmtpAddress": None,
        "DeliverToMailboxAndForward": False, "GrantSendOnBehalfTo": [],
        "RetentionPolicy": retention_policy, "ArchiveStatus": "Active" if archive else "None",
        "ArchiveGuid": guid(tenant, "archive", address) if archive else NO_ARCHIVE,
        "ArchiveState": "HostedProvisioned" if archive else "None",
        "ResourceCapacity": capacity, "Office": office, "EmailAddresses": [f"SMTP:{address}"],
        **{f"CustomAttribute{n}": "" for n in range(1, 16)},
    }
    row.update(settings)
    snap["mailboxes"].append(row)
    snap["mailbox_permissions"] += [
        {"Identity": name, "User": SELF, "AccessRights": ["FullAccess", "ReadPermission"],
         "IsInherited": False, "Deny": False},
        {"Identity": name, "User": INHERITED_DENY, "AccessRights": ["FullAccess"],
         "IsInherited": True, "Deny": True},
    ]
    snap["recipient_permissions"].append(
        {"Identity": name, "Trustee": SELF, "AccessRights": ["SendAs"],
         "AccessControlType": "Allow", "IsInherited": False})
    folder = f"{name}:\\{calendar_folder}"
    snap["mailbox_folder_permissions"] += [
        {"Identity": folder, "User": "Default", "AccessRights": [default_calendar],
         "SharingPermissionFlags": "None"},
        {"Identity": folder, "User": "Anonymous", "AccessRights": ["None"],
         "SharingPermissionFlags": "None"},
    ]
    snap["auto_reply_configurations"].append(
        {"Identity": name, "AutoReplyState": "Disabled", "ExternalAudience": "All",
         "InternalMessage": "", "ExternalMessage": "", "StartTime": None, "EndTime": None})
    return name


def add_group(snap: dict[str, Any], *, address: str, display_name: str, managed_by: list[str],
              members: list[str], name: str | None = None,
              type_details: str = "MailUniversalDistributionGroup") -> str:
    """A group Get-DistributionGroup lists: a distribution group, or (``type_details``) a
    room list or a mail-enabled security group."""
    alias = address.split("@", 1)[0]
    tenant = snap["tenant"]["id"]
    name = name or alias
    object_guid = guid(tenant, "exchange", address)
    edoid = guid(tenant, "entra", address)
    snap["recipients"].append({
        "Name": name, "Guid": object_guid, "ExternalDirectoryObjectId": edoid,
        "UserPrincipalName": None, "PrimarySmtpAddress": address, "Alias": alias,
        "DisplayName": display_name, "RecipientTypeDetails": type_details,
        "Office": "", "City": "", "Department": "", "CountryOrRegion": "", "UsageLocation": "",
        "EmailAddresses": [f"SMTP:{address}"],
    })
    snap["distribution_groups"].append({
        "Identity": name, "Name": name, "Guid": object_guid, "Alias": alias,
        "DisplayName": display_name, "PrimarySmtpAddress": address, "ManagedBy": managed_by,
        "GrantSendOnBehalfTo": [], "RecipientTypeDetails": type_details,
        "EmailAddresses": [f"SMTP:{address}"],
    })
    snap["distribution_group_members"] += [{"Group": name, "Member": m} for m in members]
    return name


def grant_full_access(snap: dict[str, Any], identity: str, user: str, *,
                      rights: tuple[str, ...] = ("FullAccess",)) -> None:
    snap["mailbox_permissions"].append(
        {"Identity": identity, "User": user, "AccessRights": list(rights), "IsInherited": False,
         "Deny": False})


def grant_send_as(snap: dict[str, Any], identity: str, trustee: str) -> None:
    snap["recipient_permissions"].append(
        {"Identity": identity, "Trustee": trustee, "AccessRights": ["SendAs"],
         "AccessControlType": "Allow", "IsInherited": False})


def grant_calendar(snap: dict[str, Any], identity: str, user: str, rights: list[str],
                   flags: str = "None", folder: str = "Calendar") -> None:
    snap["mailbox_folder_permissions"].append(
        {"Identity": f"{identity}:\\{folder}", "User": user, "AccessRights": rights,
         "SharingPermissionFlags": flags})


def generate(mailboxes: int, permissions: int, *, seed: int = 0,
             domain: str = "bench.example") -> dict[str, Any]:
    """A synthetic tenant: ``mailboxes`` mailboxes (one in ten shared, one in fifty a room),
    and ``permissions`` mailbox_permissions rows in all (at least the two system rows per
    mailbox; the rest are FullAccess grants to random users, principals in mixed forms)."""
    rng = random.Random(seed)
    snap = empty_snapshot(guid("bench", str(seed)), f"{domain.split('.')[0]}.onmicrosoft.com",
                          [domain], ["Default MRM Policy"])
    names: list[str] = []
    users: list[tuple[str, str, str]] = []  # (Name, address, display name)
    for i in range(mailboxes):
        kind = "RoomMailbox" if i % 50 == 49 else "SharedMailbox" if i % 10 == 9 else "UserMailbox"
        address = f"mbx{i:06d}@{domain}"
        display = f"Mailbox {i:06d}"
        name = add_mailbox(snap, address=address, display_name=display, type_details=kind,
                           name="guid" if i % 3 == 0 else None,
                           office=("London", "Paris", "Berlin", "Remote")[i % 4],
                           capacity=8 if kind == "RoomMailbox" else None)
        names.append(name)
        if kind == "UserMailbox":
            users.append((name, address, display))
    extra = max(0, permissions - 2 * mailboxes)
    for n in range(extra):
        target = names[n % mailboxes]
        name, address, display = users[rng.randrange(len(users))]
        principal = (name, address, display)[n % 3]
        grant_full_access(snap, target, principal)
    return snap


# --- the example repository's sandbox seeds ----------------------------------------------------


def contoso_seed() -> dict[str, Any]:
    """Contoso as live for examples/desired-state. The first plan shows creates
    (sales-london, salle-lumiere), updates (support-london gains bob, board-room-3's capacity,
    ceo-office's stale grant, dave off-boarded, london-all's members and SendAs), a move
    (finance, Paris to London) and unmanaged mailboxes (old-projects, old-room), within the
    customer's max_change_percent. Principals come in the forms Exchange mixes: Names, GUIDs,
    display names, addresses."""
    snap = empty_snapshot("6f1c1f2e-0000-4000-8000-000000000001", "contoso.onmicrosoft.com",
                          ["contoso.com", "contoso.co.uk", "contoso.onmicrosoft.com"],
                          ["Default MRM Policy", "Contoso 2y"])
    london = {"office": "London", "city": "London", "country": "GB"}
    paris = {"office": "Paris", "city": "Paris", "country": "FR"}
    remote = {"office": "Remote", "city": "Manchester", "country": "GB"}
    alice = add_mailbox(snap, address="alice@contoso.com", display_name="Alice Smith",
                        retention_policy="Contoso 2y", archive=True,
                        CustomAttribute1="cost-centre-42", **london)
    grant_calendar(snap, alice, "Bob Jones", ["Editor"], "Delegate,CanViewPrivateItems")
    bob = add_mailbox(snap, address="bob@contoso.com", display_name="Bob Jones",
                      retention_policy="Contoso 2y", archive=True, **london)
    add_mailbox(snap, address="carol@contoso.com", display_name="Carol White",
                        **{**london, "office": "London HQ"})
    add_mailbox(snap, address="dave@contoso.com", display_name="Dave Brown", name="guid",
                **london)
    pierre = add_mailbox(snap, address="pierre@contoso.com", display_name="Pierre Martin",
                         retention_policy="Contoso 2y", archive=True, **paris)
    # Pierre set his own out-of-office, as the YAML has it: nothing to change there.
    snap["auto_reply_configurations"][-1].update(
        AutoReplyState="Scheduled", ExternalAudience="Known",
        InternalMessage="<html><body>Absent jusqu'au 4 janvier.</body></html>",
        ExternalMessage="<html><body>Absent jusqu'au 4 janvier. Pour toute urgence, "
                        "accueil-paris@contoso.com.</body></html>",
        StartTime="2026-12-20T00:00:00Z", EndTime="2027-01-04T00:00:00Z")
    marie = add_mailbox(snap, address="marie@contoso.com", display_name="Marie Dubois",
                        name="guid", **paris)
    add_mailbox(snap, address="sam@contoso.com", display_name="Sam Taylor", **remote)
    # A German-language mailbox: its calendar folder is "Kalender", not "Calendar".
    add_mailbox(snap, address="lena@contoso.com", display_name="Lena Fischer", name="guid",
                calendar_folder="Kalender", **{**remote, "city": "Berlin", "country": "DE"})
    add_mailbox(snap, address="omar@contoso.com", display_name="Omar Haddad", **remote)

    support = add_mailbox(snap, address="support-london@contoso.com",
                          display_name="Support London", type_details="SharedMailbox",
                          name="guid", office="London")
    grant_full_access(snap, support, "Alice Smith")
    grant_send_as(snap, support, "alice@contoso.com")
    finance = add_mailbox(snap, address="finance@contoso.com", display_name="Finance",
                          type_details="SharedMailbox", name="guid", office="Paris")
    grant_full_access(snap, finance, alice)
    room = add_mailbox(snap, address="board-room-3@contoso.com", display_name="Board Room 3",
                       type_details="RoomMailbox", office="London HQ, floor 3", capacity=10,
                       default_calendar="LimitedDetails")
    grant_calendar(snap, room, "Bob Jones", ["Editor"], "Delegate")
    # Bob approves the room's bookings live; the YAML hands that to Alice (booking: delegates).
    snap["calendar_processing"] = [
        {"Identity": room, "AutomateProcessing": "AutoAccept", "AllBookInPolicy": True,
         "AllRequestInPolicy": False, "ForwardRequestsToDelegates": True,
         "ResourceDelegates": [bob]}]
    ceo = add_mailbox(snap, address="ceo-office@contoso.com", display_name="CEO Office",
                      type_details="SharedMailbox", name="guid")
    grant_full_access(snap, ceo, guid(snap["tenant"]["id"], "entra", "carol@contoso.com"))
    accueil = add_mailbox(snap, address="accueil-paris@contoso.com",
                          display_name="Accueil Paris", type_details="SharedMailbox",
                          office="Paris")
    grant_full_access(snap, accueil, pierre)
    grant_full_access(snap, accueil, "Marie Dubois")
    old = add_mailbox(snap, address="old-projects@contoso.com", display_name="Old Projects",
                      type_details="SharedMailbox", retention_policy="Contoso 2y")
    grant_full_access(snap, old, bob)
    add_mailbox(snap, address="old-room@contoso.com", display_name="Old Room",
                type_details="RoomMailbox", capacity=4)
    add_group(snap, address="london-all@contoso.com", display_name="London All",
              managed_by=[alice], members=["Alice Smith", bob])
    add_group(snap, address="paris-all@contoso.com", display_name="Paris All", name="guid",
              managed_by=[pierre], members=[pierre, marie])
    return snap


def fabrikam_seed() -> dict[str, Any]:
    """Fabrikam as live: info-berlin matches but for its grants, konferenz-hamburg and
    team-berlin are to be created, and fabrikam-archive is unmanaged (prune: true deletes it).
    A room list and a mail-enabled security group are no resources of the product: prune leaves
    them alone."""
    snap = empty_snapshot("9d4e0000-0000-4000-8000-00000000000f", "fabrikam.onmicrosoft.com",
                          ["fabrikam.de", "fabrikam.onmicrosoft.com"], ["Default MRM Policy"])
    berlin = {"office": "Berlin", "city": "Berlin", "country": "DE"}
    hans = add_mailbox(snap, address="hans@fabrikam.de", display_name="Hans Becker",
                       **berlin)
    greta = add_mailbox(snap, address="greta@fabrikam.de", display_name="Greta Wolf",
                        name="guid", **berlin)
    add_mailbox(snap, address="jonas@fabrikam.de", display_name="Jonas Richter",
                office="Hamburg", city="Hamburg", country="DE")
    info = add_mailbox(snap, address="info-berlin@fabrikam.de", display_name="Info Berlin",
                       type_details="SharedMailbox", office="Berlin",
                       GrantSendOnBehalfTo=[greta])
    grant_full_access(snap, info, hans)
    add_mailbox(snap, address="fabrikam-archive@fabrikam.de", display_name="Fabrikam Archive",
                type_details="SharedMailbox", name="guid")
    add_group(snap, address="rooms@fabrikam.de", display_name="Fabrikam Rooms", managed_by=[],
              members=[], type_details="RoomList")
    add_group(snap, address="it-admins@fabrikam.de", display_name="IT Admins", name="guid",
              managed_by=[hans], members=[hans], type_details="MailUniversalSecurityGroup")
    return snap


SEEDS = {"contoso": contoso_seed, "fabrikam": fabrikam_seed}


def write_seeds(directory: Path) -> list[Path]:
    """Write every seed as ``<directory>/<customer>.json``, in the order and format the sandbox
    writes, so that the first write to a sandbox changes only what it changes."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from reconciler.emulator import Emulator

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for customer, build in SEEDS.items():
        path = directory / f"{customer}.json"
        canonical = Emulator(build()).to_snapshot()
        path.write_text(json.dumps(canonical, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--permissions", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seeds", type=Path, metavar="DIR",
                        help="write the example repository's sandbox seeds to DIR instead")
    args = parser.parse_args(argv)
    if args.seeds:
        for path in write_seeds(args.seeds):
            print(path, file=sys.stderr)
        return 0
    if args.out is None:
        parser.error("--out is required")
    snap = generate(args.mailboxes, args.permissions, seed=args.seed)
    args.out.write_text(json.dumps(snap, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(snap['mailboxes'])} mailboxes, "
          f"{len(snap['mailbox_permissions'])} mailbox permission entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
