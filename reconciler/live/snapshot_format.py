"""The tenant snapshot's JSON Schema (docs/format.md §9) and its validation.

The schema lives here as data so that an installed package validates without the repository;
``schemas/snapshot.schema.json`` is this dict written out (``python -m
reconciler.live.snapshot_format`` regenerates it, and a test keeps the two equal) for editors
and other tools.

Entries are rows as Exchange's own cmdlets return them, so unknown properties are allowed
everywhere except at the top level, where a misspelt list name would silently mean "empty".
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import re
import sys
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from reconciler.desired.cache import ParseCache, entry_key, product_version
from reconciler.errors import ReconcilerError

SNAPSHOT_FORMAT = "exchange-snapshot/1"

_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_STR_LIST = {"type": "array", "items": {"type": "string"}}
_BOOL = {"type": "boolean"}
_PROXY_ADDRESSES = {
    "type": "array", "items": {"type": "string"},
    "description": "Proxy addresses as Exchange lists them: the primary one as SMTP:, others "
                   "as smtp: (docs/format.md §9, optional).",
}


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
    "ArchiveGuid": {"type": ["string", "null"],
                    "description": "The archive mailbox's GUID; all zeros when there is none."},
    "ArchiveState": {"enum": ["None", "Local", "HostedProvisioned", "HostedPending",
                              "OnPremise"]},
    "DisabledArchiveGuid": _OPT_STR,
    "EmailAddresses": _PROXY_ADDRESSES,
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
        "One tenant as Exchange Online's cmdlets report it (docs/format.md §9): the file "
        "`reconciler export` writes, the sandbox persists and `--live snapshot:DIR` reads. "
        "Rows keep Exchange's own property names; principal fields (User, Trustee, ManagedBy, "
        "Member, GrantSendOnBehalfTo, ForwardingAddress) may hold a recipient's Name, GUID, "
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
                    "EmailAddresses": _PROXY_ADDRESSES,
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
        "calendar_processing": {
            "description": (
                "Get-CalendarProcessing rows of the mailboxes whose calendar processing was "
                "set; a room without one has Exchange's defaults (AutoAccept, AllBookInPolicy "
                "true, AllRequestInPolicy false, ForwardRequestsToDelegates true, no "
                "ResourceDelegates)."
            ),
            "type": "array",
            "items": _row(
                {"Identity": _STR},
                {"AutomateProcessing": {"enum": ["None", "AutoUpdate", "AutoAccept"]},
                 "AllBookInPolicy": _BOOL, "AllRequestInPolicy": _BOOL,
                 "ForwardRequestsToDelegates": _BOOL, "ResourceDelegates": _STR_LIST},
            ),
        },
        "distribution_groups": {
            "type": "array",
            "items": _row(
                {"Identity": _STR, "PrimarySmtpAddress": _STR},
                {"Name": _STR, "Alias": _STR, "DisplayName": _STR, "ManagedBy": _STR_LIST,
                 "GrantSendOnBehalfTo": _STR_LIST, "EmailAddresses": _PROXY_ADDRESSES,
                 "RequireSenderAuthenticationEnabled": _BOOL,
                 "RecipientTypeDetails": {
                     "type": "string",
                     "description": "MailUniversalDistributionGroup (the default), RoomList, "
                                    "MailUniversalSecurityGroup, MailNonUniversalGroup."}},
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


_JSON_TYPES: dict[str, str] = {
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "string": "isinstance({v}, str)",
    "integer": "(isinstance({v}, int) and not isinstance({v}, bool))",
    "number": "(isinstance({v}, int | float) and not isinstance({v}, bool))",
    "boolean": "isinstance({v}, bool)",
    "null": "{v} is None",
}
# Item types whose isinstance check is exactly the JSON type (bool is an int to Python).
_PYTHON_TYPES: dict[str, type] = {"string": str, "object": dict, "array": list}
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description"})
_MISSING = object()


class _Generator:
    """Writes a yes/no checker for the subset of JSON Schema that :data:`SCHEMA` uses as
    straight-line Python, one function per object schema with its checks inlined: on a large
    tenant this is several times faster than nested closures, and those in turn than
    jsonschema. It only decides whether a snapshot is valid: the messages for an invalid one
    still come from jsonschema, the reference. A keyword it does not know is a programming
    error, caught by tests."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {"_M": _MISSING, "_isinstance": isinstance,
                                          "_repeat": itertools.repeat}

    def _const(self, value: Any) -> str:
        name = f"c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def expr(self, schema: Mapping[str, Any], v: str,
             properties: Mapping[str, Any] | None = None) -> str:
        """An expression true when value ``v`` satisfies ``schema`` (whose ``properties``, when
        checked separately, are passed for ``additionalProperties``)."""
        if "properties" in schema:
            return f"{self.function(schema)}({v})"
        parts = []
        for keyword, arg in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            if keyword == "type":
                kinds = [arg] if isinstance(arg, str) else arg
                parts.append("(" + " or ".join(_JSON_TYPES[k].format(v=v) for k in kinds) + ")")
            elif keyword == "const":
                c = self._const(arg)
                parts.append(f"({v} == {c} and type({v}) is type({c}))")
            elif keyword == "enum" and all(type(a) is str for a in arg):
                # one set lookup, where a loop over the values would run for every row
                c = self._const(frozenset(arg))
                parts.append(f"(type({v}) is str and {v} in {c})")
            elif keyword == "enum":
                c = self._const(tuple(arg))
                parts.append(f"any({v} == a and type({v}) is type(a) for a in {c})")
            elif keyword == "minItems":
                parts.append(f"(not isinstance({v}, list) or len({v}) >= {int(arg)})")
            elif keyword == "maxLength":
                parts.append(f"(not isinstance({v}, str) or len({v}) <= {int(arg)})")
            elif keyword == "minimum":
                parts.append(f"(isinstance({v}, bool) or not isinstance({v}, int | float) "
                             f"or {v} >= {arg!r})")
            elif keyword == "pattern":
                rx = self._const(re.compile(arg))
                parts.append(f"(not isinstance({v}, str) or {rx}.search({v}) is not None)")
            elif keyword == "items" and set(arg) == {"type"} and arg["type"] in _PYTHON_TYPES:
                # items of one type: checked in C, no Python call per item
                kind = self._const(_PYTHON_TYPES[arg["type"]])
                parts.append(f"(not isinstance({v}, list) or "
                             f"all(map(_isinstance, {v}, _repeat({kind}))))")
            elif keyword == "items":
                item = self.function(arg)
                parts.append(f"(not isinstance({v}, list) or all(map({item}, {v})))")
            elif keyword == "required":
                names = " and ".join(f"{n!r} in {v}" for n in arg) or "True"
                parts.append(f"(not isinstance({v}, dict) or ({names}))")
            elif keyword == "additionalProperties":
                if arg is False:
                    allowed = self._const(frozenset(
                        schema.get("properties", properties or {})))
                    parts.append(f"(not isinstance({v}, dict) or {allowed}.issuperset({v}))")
                elif arg is not True:
                    raise ValueError(f"snapshot schema: unsupported additionalProperties {arg!r}")
            else:
                raise ValueError(f"snapshot schema: keyword {keyword!r} has no fast check")
        return " and ".join(parts) or "True"

    def function(self, schema: Mapping[str, Any]) -> str:
        name = f"f{sum(1 for line in self.lines if line.startswith('def '))}"
        body = [f"def {name}(v):"]
        self.lines.append(body[0])  # reserve the name before nested schemas take theirs
        rest = {k: a for k, a in schema.items() if k != "properties"}
        properties = schema.get("properties", {})
        body.append(f"    if not ({self.expr(rest, 'v', properties)}): return False")
        if properties:
            body.append("    if isinstance(v, dict):")
            for prop, sub in properties.items():
                body.append(f"        x = v.get({prop!r}, _M)")
                body.append(f"        if x is not _M and not ({self.expr(sub, 'x')}): "
                            f"return False")
        body.append("    return True")
        self.lines[self.lines.index(body[0])] = "\n".join(body)
        return name


def _compile(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    generator = _Generator()
    entry = generator.function(schema)
    exec(compile("\n\n".join(generator.lines), "<snapshot-check>", "exec"),
         generator.namespace)
    return generator.namespace[entry]  # type: ignore[no-any-return]


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


class _Sharing:
    """The parser's hook that makes a tenant's rows share what they repeat.

    A tenant of 50,000 mailboxes has about a million rows naming the same principals, rights
    and settings again and again; the JSON parser makes a new string for every value (it shares
    only keys) and a new list for every ``AccessRights``. Equal strings become one string, and
    equal lists of strings one list, as each row is parsed: the rows take half the memory. A
    shared list must be replaced, never changed in place."""

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}
        self._lists: dict[tuple[str, ...], list[str]] = {}

    def row(self, row: dict[str, Any]) -> dict[str, Any]:
        strings = self._strings
        for key, value in row.items():
            kind = value.__class__
            if kind is str:
                row[key] = strings.setdefault(value, value)
            elif kind is list and value:
                row[key] = self._list(value)
        return row

    def _list(self, value: list[Any]) -> list[Any]:
        # Looked up as it is first: most lists repeat one already seen (only a list of
        # strings is ever stored, and no other list equals one).
        try:
            shared = self._lists.get(tuple(value))
        except TypeError:  # holds a list or an object
            return value
        if shared is not None:
            return shared
        strings = self._strings
        for i, item in enumerate(value):
            if item.__class__ is not str:
                return value
            value[i] = strings.setdefault(item, item)
        self._lists[tuple(value)] = value
        return value


def _parse(text: str) -> Any:
    """JSON, each row's repeated values shared (:class:`_Sharing`), with the cyclic garbage
    collector paused: parsing makes millions of objects and no cycles, and the collector's
    rescans of them took two thirds of the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(text, object_hook=_Sharing().row)
    finally:
        if enabled:
            gc.enable()


# --- records of files found valid -----------------------------------------------------------

CHECK_RECORD = "reconciler-snapshot-check/1"
CHECK_SUFFIX = ".snapshot-check"  # beside the parse cache's entries, never taken for one


@cache
def checker_version() -> str:
    """What decides whether given bytes are a valid snapshot, besides the bytes: the product's
    version (reconciler.desired.cache) and this module, which holds the schema and its checker."""
    digest = hashlib.sha256(product_version().encode())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


def _record(key: str) -> dict[str, Any]:
    return {"format": CHECK_RECORD, "key": key, "valid": True}


def _recorded_valid(cache: ParseCache, key: str) -> bool:
    """Whether ``cache`` holds the record that the bytes of ``key`` were found valid."""
    assert cache.directory is not None
    try:
        record = json.loads((cache.directory / f"{key}{CHECK_SUFFIX}").read_bytes())
    except (OSError, ValueError):
        return False
    return bool(record == _record(key))


def load_snapshot(path: Path, cache: ParseCache | None = None) -> dict[str, Any]:
    """Read and validate one snapshot file. Equal string lists of its rows are one list.

    With an enabled ``cache`` (the repository's parse cache), a file whose very bytes were
    validated before by this version of the checker is not validated again: the record, a
    small JSON file, is named by the SHA-256 of the checker's version and of those bytes, so
    a file with any byte changed is validated in full. Only valid files are recorded."""
    key = None
    try:
        raw = path.read_bytes()
        if cache is not None and cache.enabled:
            key = entry_key(checker_version(), raw, "snapshot")
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        del raw  # the parser would otherwise hold the bytes and the text together
        data = _parse(text)
        del text
    except OSError as e:
        raise SnapshotError(f"cannot read tenant snapshot {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise SnapshotError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise SnapshotError(f"{path}: not valid JSON: not {e.encoding} text at byte "
                            f"{e.start}") from e
    except RecursionError as e:  # the decoder's own limit: no snapshot nests this deep
        raise SnapshotError(f"{path}: not valid JSON: nested too deep for a snapshot") from e
    if key is None or cache is None or not _recorded_valid(cache, key):
        validate_snapshot(data, str(path))
        if key is not None and cache is not None:
            cache.write(key, json.dumps(_record(key)).encode(), CHECK_SUFFIX)
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
