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
import re
import sys
from collections.abc import Callable, Mapping
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


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description"})


def _compile(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A yes/no checker for the subset of JSON Schema that :data:`SCHEMA` uses.

    Several times faster than jsonschema on large tenants (see BENCHMARKS.md). It only decides
    whether a snapshot is valid: the messages for an invalid one still come from jsonschema,
    the reference. A keyword it does not know is a programming error, caught by tests."""
    checks: list[Callable[[Any], bool]] = []
    for keyword, arg in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword == "type":
            kinds = [_JSON_TYPES[t] for t in ([arg] if isinstance(arg, str) else arg)]
            checks.append(lambda v, kinds=kinds: any(k(v) for k in kinds))
        elif keyword == "const":
            checks.append(lambda v, arg=arg: v == arg and type(v) is type(arg))
        elif keyword == "enum":
            checks.append(lambda v, arg=arg: any(v == a and type(v) is type(a) for a in arg))
        elif keyword == "minItems":
            checks.append(lambda v, arg=arg: not isinstance(v, list) or len(v) >= arg)
        elif keyword == "maxLength":
            checks.append(lambda v, arg=arg: not isinstance(v, str) or len(v) <= arg)
        elif keyword == "minimum":
            checks.append(lambda v, arg=arg: isinstance(v, bool) or
                          not isinstance(v, int | float) or v >= arg)
        elif keyword == "pattern":
            regex = re.compile(arg)
            checks.append(lambda v, regex=regex: not isinstance(v, str) or
                          regex.search(v) is not None)
        elif keyword == "items":
            item = _compile(arg)
            checks.append(lambda v, item=item: not isinstance(v, list) or all(map(item, v)))
        elif keyword == "required":
            names = tuple(arg)
            checks.append(lambda v, names=names: not isinstance(v, dict) or
                          all(n in v for n in names))
        elif keyword == "properties":
            props = {name: _compile(sub) for name, sub in arg.items()}
            checks.append(lambda v, props=props: not isinstance(v, dict) or all(
                check(v[name]) for name, check in props.items() if name in v))
        elif keyword == "additionalProperties":
            if arg is False:
                allowed = frozenset(schema.get("properties", {}))
                checks.append(lambda v, allowed=allowed: not isinstance(v, dict) or
                              allowed.issuperset(v))
            elif arg is not True:
                raise ValueError(f"snapshot schema: unsupported additionalProperties {arg!r}")
        else:
            raise ValueError(f"snapshot schema: keyword {keyword!r} has no fast check")
    return lambda v: all(check(v) for check in checks)


@cache
def _fast_check() -> Callable[[Any], bool]:
    return _compile(SCHEMA)


def validate_snapshot(snapshot: Any, origin: str = "snapshot") -> None:
    """Raise :class:`SnapshotError` listing every schema violation, each with its JSON path."""
    if _fast_check()(snapshot):
        return
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
