"""Stable pseudonyms for a tenant's addresses, names and GUIDs, so that a trace can be shared.

Redaction keeps structure, because a redacted trace must still replay to a plan of the same
shape: a string is cut into tokens and each token is replaced on its own, the same input giving
the same pseudonym everywhere (case-insensitively, as Exchange compares):

- a GUID becomes another GUID (``10000000-0000-4000-8000-00000000000N``), the tenant id included;
- an address keeps its shape: each word of the local part is replaced like any word, the domain
  as a whole (``domainN.example``; ``tenantN.onmicrosoft.com`` for a tenant's initial domain);
- a word becomes ``wN`` (``WN`` when the original began with a capital), a run of digits another
  number, a SID ``S-1-5-21-0-0-0-N``; punctuation, spaces, HTML tags and date-times stay, so a
  display name still derives the alias its pseudonym's address has.

Which strings are redacted is decided by field: Exchange's own vocabulary (recipient types,
access rights, states, a documented value list of the cmdlet reference) and system principals
(``NT AUTHORITY\\SELF``, ``Default``, ``Anonymous``) stay readable; every other string of an
answer or a parameter is redacted; message texts (errors, warnings, filters) have their quoted
parts, addresses and GUIDs redacted and keep Exchange's wording, which the connector matches on.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

_GUID = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
_EMAIL = r"[\w.+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_TOKEN = re.compile(
    rf"(?P<guid>{_GUID})"
    rf"|(?P<email>{_EMAIL})"
    r"|(?P<sid>S-1-5-21(?:-\d+)+)"
    r"|(?P<prefix>\b(?:smtp|SMTP|x500|X500|sip|SIP|spo|SPO|eum|EUM):)"
    r"|(?P<tag></?[A-Za-z][^<>]*>)"
    r"|(?P<when>\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?)"
    r"|(?P<word>[^\W\d_]+)"
    r"|(?P<digits>\d+)")
_GUID_ONLY = re.compile(_GUID)
# In a message: a quoted part (opening and closing outside a word, so that "couldn't" holds no
# quote), an address or a GUID; one pass, so that nothing is replaced twice.
_MESSAGE_TOKEN = re.compile(
    rf"(?<!\w)'(?P<single>[^']+?)'(?!\w)|(?<!\w)\"(?P<double>[^\"]+?)\"(?!\w)"
    rf"|(?P<guid>{_GUID})|(?P<email>{_EMAIL})")
_ADDRESS_OR_GUID = re.compile(rf"(?P<guid>{_GUID})|(?P<email>{_EMAIL})")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")

# Fields whose values are Exchange's vocabulary, never the tenant's.
KEEP_FIELDS = frozenset(f.lower() for f in (
    "RecipientTypeDetails", "RecipientType", "AccessRights", "AccessControlType",
    "InheritanceType", "SharingPermissionFlags", "AutoReplyState", "ExternalAudience",
    "ArchiveStatus", "ArchiveState", "AutomateProcessing", "Type", "ResultSize", "FolderScope",
    "FolderType", "DomainType", "code", "type", "CmdletName", "@odata.type", "WhenChanged",
    "WhenCreated", "StartTime", "EndTime", "ClassName", "stringId"))
# Fields holding domains: a bare domain there is mapped like an address's domain.
DOMAIN_FIELDS = frozenset(f.lower() for f in (
    "DomainName", "initial_domain", "accepted_domains", "default_domain", "mail_domains",
    "domain", "upn_domain"))
# Free texts in Exchange's words: only quoted parts, addresses and GUIDs are the tenant's.
MESSAGE_FIELDS = frozenset(f.lower() for f in (
    "message", "@adminapi.warnings", "@adminapi.errors", "Filter", "RecipientFilter"))
# Fields naming a recipient, a group or a folder: a value seen there is also looked for in the
# messages that follow, where Exchange may write it without quotes.
NAME_FIELDS = frozenset(f.lower() for f in (
    "DisplayName", "Name", "Alias", "Identity", "FirstName", "LastName", "SimpleDisplayName",
    "SamAccountName", "User", "Trustee", "Members", "Member", "FolderName"))
# Principals and names that Exchange itself defines.
SYSTEM_VALUES = frozenset(v.lower() for v in (
    "NT AUTHORITY\\SELF", "Default", "Anonymous", "Unlimited", "Default MRM Policy",
    "Calendar", "True", "False", "None", "Owner", "PublishingEditor", "Editor",
    "PublishingAuthor", "Author", "NonEditingAuthor", "Reviewer", "Contributor",
    "AvailabilityOnly", "LimitedDetails", "ReadItems", "CreateItems", "EditOwnedItems",
    "DeleteOwnedItems", "EditAllItems", "DeleteAllItems", "CreateSubfolders", "FolderOwner",
    "FolderContact", "FolderVisible", "SendOnBehalf", "Regular", "Shared", "Room",
    "AutoAccept", "AutoUpdate"))


@cache
def _reference_values() -> frozenset[str]:
    """Every documented value list of the cmdlet reference the product ships."""
    path = Path(__file__).resolve().parents[2] / "data" / "exchange-cmdlets.json"
    enums = json.loads(path.read_text(encoding="utf-8")).get("enums") or {}
    return frozenset(str(v).lower() for e in enums.values() for v in e.get("values") or ())


def is_vocabulary(value: str) -> bool:
    """Whether ``value`` is Exchange's own word (kept), not the tenant's."""
    lowered = value.strip().lower()
    if lowered in SYSTEM_VALUES or lowered.startswith("nt authority\\"):
        return True
    parts = [p.strip() for p in lowered.split(",")]
    return bool(parts) and all(p in _reference_values() or p in SYSTEM_VALUES for p in parts)


class Pseudonyms:
    """The mapping from a tenant's values to pseudonyms; thread-safe, persisted as JSON."""

    def __init__(self, tables: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._tables: dict[str, dict[str, str]] = {
            kind: dict((tables or {}).get(kind) or {})
            for kind in ("guid", "domain", "tenant", "word", "digits", "sid", "name")}
        self._lock = threading.RLock()
        self._names_pattern: tuple[int, re.Pattern[str] | None] = (-1, None)

    # --- persistence ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> Pseudonyms:
        if not path.exists():
            return cls()
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        with self._lock:
            text = json.dumps(self._tables, indent=1, sort_keys=True)
        path.write_text(text + "\n", encoding="utf-8")

    def originals(self) -> dict[str, str]:
        """pseudonym -> original (lower-cased), every kind together: to read a redacted trace
        back, never to share."""
        with self._lock:
            return {p: o for kind, table in self._tables.items() if kind != "name"
                for o, p in table.items()}

    # --- one value of each kind ----------------------------------------------------------------

    def _get(self, kind: str, original: str, make: Any) -> str:
        key = _fold(original)
        with self._lock:
            table = self._tables[kind]
            found = table.get(key)
            if found is None:
                found = table[key] = make(len(table) + 1)
            return found

    def guid(self, value: str) -> str:
        if not value.strip("0-"):
            return value  # the empty GUID means "none" (an ArchiveGuid without an archive)
        return self._get("guid", value, lambda n: f"10000000-0000-4000-8000-{n:012d}")

    def domain(self, value: str) -> str:
        lowered = value.lower()
        for suffix in (".mail.onmicrosoft.com", ".onmicrosoft.com"):
            if lowered.endswith(suffix) and lowered.count(".") == suffix.count("."):
                label = self._get("tenant", lowered[: -len(suffix)], lambda n: f"tenant{n}")
                return label + suffix
        return self._get("domain", lowered, lambda n: f"domain{n}.example")

    def knows_domain(self, value: str) -> bool:
        with self._lock:
            return value.lower() in self._tables["domain"] or any(
                value.lower().endswith(s) for s in (".onmicrosoft.com",))

    def word(self, value: str) -> str:
        pseudonym = self._get("word", value, lambda n: f"w{n}")
        if value[:1].isupper():
            return pseudonym.capitalize()
        return pseudonym

    def digits(self, value: str) -> str:
        return self._get("digits", value, lambda n: str(n))

    def sid(self, value: str) -> str:
        return self._get("sid", value, lambda n: f"S-1-5-21-0-0-0-{n}")

    # --- strings -------------------------------------------------------------------------------

    def address(self, value: str) -> str:
        # lower-case, as Exchange compares addresses: "Alice@x" and "alice@x" are one address
        local, _, domain = value.rpartition("@")
        return f"{self.name(local).lower()}@{self.domain(domain)}"

    def name(self, value: str) -> str:
        """A name-like string, token by token."""
        if not value or is_vocabulary(value):
            return value
        if ":\\" in value:  # a folder identity: mailbox and folder, each as its own name, so
            # that a calendar's localised name matches Get-MailboxFolderStatistics' answer
            mailbox, _, folder = value.partition(":\\")
            return f"{self.name(mailbox)}:\\{self.name(folder)}"
        if _DOMAIN.match(value) and self.knows_domain(value):
            return self.domain(value)
        return _TOKEN.sub(self._token, value)

    def _token(self, match: re.Match[str]) -> str:
        kind, text = match.lastgroup, match.group()
        if kind == "guid":
            return self.guid(text)
        if kind == "email":
            return self.address(text)
        if kind == "sid":
            return self.sid(text)
        if kind == "word":
            return self.word(text)
        if kind == "digits":
            return self.digits(text)
        return text  # prefix, tag, date-time

    def message(self, value: str) -> str:
        """Exchange's wording kept; quoted parts, addresses and GUIDs redacted."""
        if value.lstrip().startswith("{"):  # details as {localizedString, ClassName, Message}
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                return json.dumps(self.value(parsed), ensure_ascii=False)
        if value.count("|") >= 2:  # "<ErrorId>|<ExceptionType>|<text>"
            error_id, exception_type, text = value.split("|", 2)
            return f"{error_id}|{exception_type}|{self.message(text)}"
        out, at = [], 0
        for match in _MESSAGE_TOKEN.finditer(value):  # one pass: nothing replaced twice
            out += [self._known_names(value[at:match.start()]), self._message_token(match)]
            at = match.end()
        return "".join([*out, self._known_names(value[at:])])

    def remember_name(self, value: str) -> None:
        """A name seen in a name field, to be found again in messages written without quotes
        ("Alice Smith is already a member ...")."""
        if len(value.strip()) >= 3 and not is_vocabulary(value) and not _GUID_ONLY.search(value):
            with self._lock:
                self._tables["name"].setdefault(value.strip().lower(), self.name(value.strip()))

    def _known_names(self, text: str) -> str:
        """``text`` (Exchange's wording) with every whole name already seen redacted."""
        with self._lock:
            names = self._tables["name"]
            if self._names_pattern[0] != len(names):
                alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.I) if names else None
                self._names_pattern = (len(names), pattern)
            pattern = self._names_pattern[1]
        return pattern.sub(lambda m: self.name(m.group()), text) if pattern else text

    def _message_token(self, match: re.Match[str]) -> str:
        kind = match.lastgroup
        if kind in ("single", "double"):
            quote = match.group()[0]
            return f"{quote}{self.name(match.group(kind))}{quote}"
        return self._token(match)

    def header(self, value: str) -> str:
        """A header's text (``x-ms-diagnostics``): Exchange's own words, even quoted; only
        addresses and GUIDs are the tenant's."""
        return _ADDRESS_OR_GUID.sub(self._token, value)

    def url(self, value: str) -> str:
        return _GUID_ONLY.sub(lambda m: self.guid(m.group()), value)

    # --- structures ----------------------------------------------------------------------------

    def value(self, data: Any, field: str = "") -> Any:
        """``data`` (JSON-like) redacted, each string by the rule of the field it is in."""
        if isinstance(data, dict):
            return {k: self.value(v, k) for k, v in data.items()}
        if isinstance(data, list):
            return [self.value(v, field) for v in data]
        if not isinstance(data, str):
            return data
        return self.string(data, field)

    def string(self, value: str, field: str = "") -> str:
        key = field.lower()
        if key in KEEP_FIELDS:
            return value
        if key.startswith("@odata"):
            return self.url(value)
        if key in MESSAGE_FIELDS:
            return self.message(value)
        if key in DOMAIN_FIELDS and _DOMAIN.match(value):
            return self.domain(value)
        if key in NAME_FIELDS:
            self.remember_name(value)
        return self.name(value)

    def many(self, values: Iterable[str], field: str = "") -> list[str]:
        return [self.string(v, field) for v in values]


def _fold(value: str) -> str:
    """The key a value is known by: Exchange compares case-insensitively, and an alias is its
    name without accents ('Lumière' and 'lumiere' are one word)."""
    text = unicodedata.normalize("NFKD", value)
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


# Desired-state keys whose values are the product's or Exchange's words, not the tenant's.
DESIRED_KEEP = frozenset((
    "app_id", "certificate_thumbprint", "certificate", "certificate_key",
    "certificate_passphrase", "connection", "exchange", "exchange_url", "authority_host",
    "template", "convert_to", "cross_site_permissions", "rights", "role", "access", "state",
    "external_audience", "automate", "customer", "site"))


def redact_desired(data: Any, pseudonyms: Pseudonyms, key: str = "") -> Any:
    """A desired-state document (YAML, loaded) redacted with the trace's pseudonyms, so that
    it plans against the redacted trace as the original plans against the tenant."""
    if isinstance(data, dict):
        return {k: redact_desired(v, pseudonyms, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_desired(v, pseudonyms, key) for v in data]
    if not isinstance(data, str) or key in DESIRED_KEEP:
        return data
    return pseudonyms.string(data, key)


def redact_tree(source: Path, target: Path, pseudonyms: Pseudonyms) -> list[Path]:
    """The desired-state repository ``source`` (``reconciler.yaml`` and ``customers/``) written
    to ``target`` with ``pseudonyms``: what a reporter shares beside a redacted trace, so that
    the plan can be made again from both. Comments are not kept. Returns the files written."""
    import yaml  # the desired state's own dependency, needed only here

    written = []
    files = [source / "reconciler.yaml", *sorted((source / "customers").rglob("*.yaml"))]
    for path in files:
        if not path.is_file():
            continue
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(redact_desired(document, pseudonyms), sort_keys=False,
                                      allow_unicode=True), encoding="utf-8")
        written.append(out)
    return written


def scrub_secrets(data: Any) -> Any:
    """``data`` without any credential: secret-named keys (an ``Authorization`` header inside
    a ``$batch``, a ``Password`` parameter) left out, token-shaped strings removed. Applied to
    every record, redacted or not."""
    if isinstance(data, dict):
        return {k: scrub_secrets(v) for k, v in data.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(data, list):
        return [scrub_secrets(v) for v in data]
    if isinstance(data, str):
        return _JWT.sub("[token removed]", data)
    return data


_SECRET_KEY = re.compile(r"authorization|password|secret|token|assertion|cookie|credential",
                         re.I)
