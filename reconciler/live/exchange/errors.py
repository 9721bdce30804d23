"""Exchange's error answers, classified from the service's own words.

The exception type is looked for where real clients look, in this order
(docs/exchange.md, "What an Exchange error means"):

1. the ``x-ExceptionType`` response header;
2. the error details: ``details[0].message`` as ``<ErrorId>|<ExceptionType>|<text>``, or as
   JSON ``{"localizedString": {"stringId"}, "ClassName", "Message"}``;
3. ``innererror.type``, then the exception names in ``innererror`` and its
   ``internalexception`` texts.

A wrapper type (``CmdletProxyException`` and its kin) is never the answer: a proxied cmdlet's
text names the inner exception ("Cmdlet error with following error message:
Microsoft.Exchange....ManagementObjectNotFoundException: ..."), and that one decides. Only when
no type is known does Exchange's wording decide, and only then the HTTP status: a 500 wrapping
ManagementObjectNotFoundException is a not-found, never a transient failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.live.backend import ErrorInfo, ErrorKind

# Types that only carry another exception: look inside them.
WRAPPER_TYPES = frozenset({
    "CmdletProxyException", "DirectInvokeCmdletExecutionException", "RemoteException",
    "CmdletInvocationException", "ActionPreferenceStopException", "TaskException",
    "RecipientTaskException", "Exception", "ODataServiceException",
})

# Exchange's exception types (the last dotted component) and what they mean to the caller.
EXCEPTION_KINDS: dict[str, ErrorKind] = {
    "ManagementObjectNotFoundException": ErrorKind.NOT_FOUND,
    "ObjectNotFoundException": ErrorKind.NOT_FOUND,
    "MailboxNotFoundException": ErrorKind.NOT_FOUND,
    "RecipientNotFoundException": ErrorKind.NOT_FOUND,
    "ADNoSuchObjectException": ErrorKind.NOT_FOUND,
    "ManagementObjectAmbiguousException": ErrorKind.BAD_PARAMETER,
    "ManagementObjectAlreadyExistsException": ErrorKind.ALREADY_EXISTS,
    "ADObjectAlreadyExistsException": ErrorKind.ALREADY_EXISTS,
    "MemberAlreadyExistsException": ErrorKind.ALREADY_EXISTS,
    "ProxyAddressExistsException": ErrorKind.ALREADY_EXISTS,
    "UserAlreadyExistsInPermissionEntryException": ErrorKind.ALREADY_EXISTS,
    "MemberNotFoundException": ErrorKind.NOT_PRESENT,
    "UserNotFoundInPermissionEntryException": ErrorKind.NOT_PRESENT,
    "ParameterBindingException": ErrorKind.BAD_PARAMETER,
    "ParameterBindingValidationException": ErrorKind.BAD_PARAMETER,
    "ParameterBindingArgumentTransformationException": ErrorKind.BAD_PARAMETER,
    "ParameterTransformationException": ErrorKind.BAD_PARAMETER,
    "ValidationArgumentException": ErrorKind.BAD_PARAMETER,
    "ArgumentException": ErrorKind.BAD_PARAMETER,
    "ArgumentNullException": ErrorKind.BAD_PARAMETER,
    "ArgumentOutOfRangeException": ErrorKind.BAD_PARAMETER,
    "InvalidParameterException": ErrorKind.BAD_PARAMETER,
    "CommandNotFoundException": ErrorKind.FORBIDDEN,
    "AccessDeniedException": ErrorKind.FORBIDDEN,
    "UnauthorizedAccessException": ErrorKind.FORBIDDEN,
    # Passing conditions of the directory, the store or the front end: real clients retry them.
    "ADTransientException": ErrorKind.TRANSIENT,
    "ADServerSettingsChangedException": ErrorKind.TRANSIENT,
    "DCOverloadedException": ErrorKind.TRANSIENT,
    "SuitabilityDirectoryException": ErrorKind.TRANSIENT,
    "ServerInMMException": ErrorKind.TRANSIENT,
    "StorageTransientException": ErrorKind.TRANSIENT,
    "ServerBusyException": ErrorKind.TRANSIENT,
    "UnableToWriteToAadException": ErrorKind.TRANSIENT,
}
# Families by name, for types the table does not list.
_NAME_RULES: tuple[tuple[re.Pattern[str], ErrorKind], ...] = (
    (re.compile(r"Transient\w*Exception$"), ErrorKind.TRANSIENT),
    (re.compile(r"NotFoundException$"), ErrorKind.NOT_FOUND),
    (re.compile(r"AlreadyExists\w*Exception$"), ErrorKind.ALREADY_EXISTS),
    (re.compile(r"^ParameterBinding\w*Exception$"), ErrorKind.BAD_PARAMETER),
)
# Where no exception type says anything, Exchange's wording still does.
_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], ErrorKind], ...] = (
    (re.compile(r"maximum number of concurrent requests|throttl", re.I), ErrorKind.THROTTLED),
    (re.compile(r"couldn't be found|could not be found|wasn't found", re.I), ErrorKind.NOT_FOUND),
    (re.compile(r"is already a member|already exists|already present|is already being used",
                re.I), ErrorKind.ALREADY_EXISTS),
    (re.compile(r"isn't a member|is not a member|doesn't exist in the ACL", re.I),
     ErrorKind.NOT_PRESENT),
    (re.compile(r"cannot be found that matches parameter name|cannot bind|"
                r"cannot validate argument", re.I), ErrorKind.BAD_PARAMETER),
    (re.compile(r"may be transient|server is (?:too )?busy|temporarily unavailable", re.I),
     ErrorKind.TRANSIENT),
)
# A dotted .NET exception name, as Exchange embeds it in a text.
_EXCEPTION_NAME = re.compile(r"\b((?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*Exception))\b")
_SERVER_SUFFIX = re.compile(r"\s*\[Server=[^\]]*\]\s*$")


def short_type(name: str | None) -> str | None:
    """``Microsoft.Exchange.X.FooException`` -> ``FooException``; None for nothing."""
    if not name:
        return None
    return str(name).strip().rsplit(".", 1)[-1] or None


def kind_of_type(name: str | None) -> ErrorKind | None:
    """What an exception type means, or None when Exchange's name says nothing specific."""
    if not name or name in WRAPPER_TYPES:
        return None
    known = EXCEPTION_KINDS.get(name)
    if known is not None:
        return known
    return next((kind for rule, kind in _NAME_RULES if rule.search(name)), None)


def inner_exception(text: str) -> tuple[str, str] | None:
    """The first exception named in ``text`` that is not a wrapper, with the text after it
    (``"... error message: Microsoft...ADTransientException: The LDAP server ..."``)."""
    for match in _EXCEPTION_NAME.finditer(text or ""):
        name = match.group(2)
        if name in WRAPPER_TYPES:
            continue
        rest = text[match.end():].lstrip()
        rest = rest[1:].strip() if rest.startswith(":") else ""
        return name, _SERVER_SUFFIX.sub("", rest)
    return None


def classify(status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
    """The meaning of an error answer (status >= 400, not 401)."""
    error = _error_object(body)
    message = _first_text(error)
    error_id: str | None = None
    found: str | None = None  # the deciding exception type
    wrapper: str | None = None  # the first wrapper seen, if nothing better is found
    for name, text, ident in _candidates(headers, error):
        error_id = error_id or ident
        if text and not message:
            message = text
        name = short_type(name)
        if name and kind_of_type(name) is not None:
            found = name
            if text:
                message = text
            break
        if name and name in WRAPPER_TYPES:
            wrapper = wrapper or name
        inner = inner_exception(text) if text else None
        if inner is not None and kind_of_type(inner[0]) is not None:
            found, message = inner[0], inner[1] or message
            break
    kind = kind_of_type(found)
    if kind is None and message:
        kind = next((k for pattern, k in _TEXT_PATTERNS if pattern.search(message)), None)
    if status == 429:
        kind = ErrorKind.THROTTLED  # refused before processing, whatever the body says
    elif kind is None:
        kind = _kind_of_status(status)
    return ErrorInfo(kind, found or wrapper, _SERVER_SUFFIX.sub("", message.strip()), status,
                     error_id)


def _kind_of_status(status: int) -> ErrorKind:
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 403:
        return ErrorKind.FORBIDDEN
    if status >= 500 or status == 408:
        return ErrorKind.TRANSIENT
    return ErrorKind.FAILED


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        return {}
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return parsed["error"]
    return {}


def _first_text(error: Mapping[str, Any]) -> str:
    return str(error.get("message") or "").strip()


def _candidates(headers: Mapping[str, str],
                error: Mapping[str, Any]) -> Iterator[tuple[str | None, str, str | None]]:
    """(exception type, text, error id) from each place, in the order real clients read."""
    header = headers.get("x-ExceptionType")
    if header:
        yield header, "", None
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("message"):
            yield _detail(str(detail["message"]))
    inner = error.get("innererror")
    while isinstance(inner, dict):
        yield inner.get("type"), str(inner.get("message") or ""), None
        inner = inner.get("internalexception")


def _detail(raw: str) -> tuple[str | None, str, str | None]:
    """One ``details[].message``: the ``|`` form, the JSON form, or plain text."""
    text = raw.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            localized = parsed.get("localizedString")
            ident = localized.get("stringId") if isinstance(localized, dict) else None
            return (parsed.get("ClassName") or parsed.get("ExceptionType"),
                    str(parsed.get("Message") or ""), ident)
    parts = text.split("|", 2)
    if len(parts) == 3 and re.fullmatch(r"[\w.]*", parts[1].strip()):
        return parts[1].strip() or None, parts[2].strip(), parts[0].strip() or None
    return None, text, None
