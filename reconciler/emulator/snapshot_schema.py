"""The tenant snapshot's JSON Schema (FORMAT.md §9) and its validation.

The schema lives here as data so that an installed package validates without the repository;
``schemas/snapshot.schema.json`` is this dict written out (``python -m
reconciler.emulator.snapshot_schema`` regenerates it, and a test keeps the two equal) for editors
and other tools.

Entries are rows as Exchange's own cmdlets return them, so unknown properties are allowed
everywhere except at the top level, where a misspelt list name would silently mean "empty".
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError

SNAPSHOT_FORMAT = "exchange-snapshot/1"

_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_STR_LIST = {"type": "array", "items": {"type": "string"}}
_BOOL = {"type": "boolean"}


def _row(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": True,
    }


_MAILBOX_ROW_PROPERTIES = {
    "Name": _STR,
    "Guid": _STR,
    "ExternalDirectoryObjectId": _OPT_STR,
    "UserPrincipalName": _OPT_STR,
    "Alias": _STR,
    "DisplayName": _STR,
    "ForwardingAddress": _OPT_STR,
    "ForwardingSmtpAddress": _OPT_STR,
    "DeliverToMailboxAndForward": _BOOL,
    "GrantSendOnBehalfTo": _STR_LIST,
    "RetentionPolicy": _OPT_STR,
    "ArchiveStatus": {"enum": ["None", "Active"]},
    "ResourceCapacity": {"type": ["integer", "null"], "minimum": 0},
    "Office": _OPT_STR,
    **{f"CustomAttribute{n}": {"type": ["string", "null"], "maxLength": 1024}
       for n in range(1, 16)},
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/exchange-reconciler/schemas/snapshot.schema.json",
    "title": "Exchange tenant snapshot",
    "description": (
        "One tenant as Exchange Online's cmdlets report it (FORMAT.md §9): the file `reconciler "
        "export` writes, the sandbox persists and `--live snapshot:DIR` reads. Rows keep "
        "Exchange's own property names; principal fields (User, Trustee, ManagedBy, Member, "
        "GrantSendOnBehalfTo, ForwardingAddress) may hold a recipient's Name, GUID, "
        "ExternalDirectoryObjectId, address or display name and are resolved through "
        "`recipients`."
    ),
    "type": "object",
    "required": ["format", "tenant", "recipients", "mailboxes"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": SNAPSHOT_FORMAT},
        "tenant": {
            "type": "object",
            "required": ["id", "initial_domain", "accepted_domains", "retention_policies"],
            "additionalProperties": True,
            "properties": {
                "id": _STR,
                "initial_domain": _STR,
                "accepted_domains": {**_STR_LIST, "minItems": 1},
                "retention_policies": _STR_LIST,
                "default_domain": {
                    "type": "string",
                    "description": "The default accepted domain; the first of accepted_domains "
                                   "when absent.",
                },
            },
        },
        "recipients": {
            "type": "array",
            "items": _row(
                {"Name": _STR, "PrimarySmtpAddress": _STR, "RecipientTypeDetails": _STR},
                {
                    "Guid": _STR,
                    "ExternalDirectoryObjectId": _OPT_STR,
                    "UserPrincipalName": _OPT_STR,
                    "DisplayName": _STR,
                    "Alias": _STR,
                    "Office": _OPT_STR,
                    "City": _OPT_STR,
                    "Department": _OPT_STR,
                    "CountryOrRegion": _OPT_STR,
                    "UsageLocation": _OPT_STR,
                },
            ),
        },
        "mailboxes": {
            "type": "array",
            "items": _row(
                {"Identity": _STR, "PrimarySmtpAddress": _STR, "RecipientTypeDetails": _STR},
                _MAILBOX_ROW_PROPERTIES,
            ),
        },
        "soft_deleted_mailboxes": {
            "description": (
                "Extension: mailboxes removed with Remove-Mailbox and still recoverable "
                "(Get-Mailbox -SoftDeletedMailbox). WhenSoftDeleted is ISO-8601 UTC; after 30 "
                "days the emulator purges them."
            ),
            "type": "array",
            "items": _row(
                {"Identity": _STR, "PrimarySmtpAddress": _STR, "RecipientTypeDetails": _STR,
                 "WhenSoftDeleted": _STR},
                _MAILBOX_ROW_PROPERTIES,
            ),
        },
        "mailbox_permissions": {
            "type": "array",
            "items": _row(
                {"Identity": _STR, "User": _STR, "AccessRights": _STR_LIST},
                {
                    "IsInherited": _BOOL,
                    "Deny": _BOOL,
                    "InheritanceType": _STR,
                    "AutoMapping": {
                        "type": "boolean",
                        "description": "Extension: recorded by Add-MailboxPermission "
                                       "-AutoMapping. Exchange itself does not return it.",
                    },
                },
            ),
        },
        "recipient_permissions": {
            "type": "array",
            "items": _row(
                {"Identity": _STR, "Trustee": _STR, "AccessRights": _STR_LIST},
                {"AccessControlType": {"enum": ["Allow", "Deny"]}, "IsInherited": _BOOL},
            ),
        },
        "mailbox_folder_permissions": {
            "type": "array",
            "items": _row(
                {"Identity": {"type": "string", "pattern": ":\\\\"}, "User": _STR,
                 "AccessRights": _STR_LIST},
                {"SharingPermissionFlags": _OPT_STR},
            ),
        },
        "auto_reply_configurations": {
            "type": "array",
            "items": _row(
                {"Identity": _STR},
                {
                    "AutoReplyState": {"enum": ["Enabled", "Disabled", "Scheduled"]},
                    "ExternalAudience": {"enum": ["None", "Known", "All"]},
                    "InternalMessage": _OPT_STR,
                    "ExternalMessage": _OPT_STR,
                    "StartTime": _OPT_STR,
                    "EndTime": _OPT_STR,
                },
            ),
        },
        "distribution_groups": {
            "type": "array",
            "items": _row(
                {"Identity": _STR, "PrimarySmtpAddress": _STR},
                {"Name": _STR, "Alias": _STR, "DisplayName": _STR, "ManagedBy": _STR_LIST,
                 "GrantSendOnBehalfTo": _STR_LIST, "RecipientTypeDetails": _STR},
            ),
        },
        "distribution_group_members": {
            "type": "array",
            "items": _row({"Group": _STR, "Member": _STR}),
        },
    },
}


class SnapshotError(ReconcilerError):
    """A snapshot file that is not a valid tenant snapshot; names the file and every problem."""


@cache
def _validator() -> Any:
    import jsonschema  # deferred: only snapshot loading pays for it

    return jsonschema.Draft202012Validator(SCHEMA)


def validate_snapshot(snapshot: Any, origin: str = "snapshot") -> None:
    """Raise :class:`SnapshotError` listing every schema violation, each with its JSON path."""
    errors = sorted(_validator().iter_errors(snapshot), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = []
    for err in errors[:20]:
        path = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        lines.append(f"  {path}: {err.message}")
    more = f"\n  … and {len(errors) - 20} more" if len(errors) > 20 else ""
    raise SnapshotError(
        f"{origin} is not a valid tenant snapshot ({SNAPSHOT_FORMAT}, schemas/"
        f"snapshot.schema.json):\n" + "\n".join(lines) + more
    )


def load_snapshot(path: Path) -> dict[str, Any]:
    """Read and validate one snapshot file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SnapshotError(f"cannot read tenant snapshot {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise SnapshotError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from e
    validate_snapshot(data, str(path))
    return data


def schema_json() -> str:
    """The schema as published in ``schemas/snapshot.schema.json``."""
    return json.dumps(SCHEMA, indent=2, ensure_ascii=False) + "\n"


def _main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path("schemas/snapshot.schema.json")
    target.write_text(schema_json(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


__all__ = ["SCHEMA", "SNAPSHOT_FORMAT", "SnapshotError", "load_snapshot", "validate_snapshot"]
