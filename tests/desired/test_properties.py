"""Property tests: whatever the input, the loader returns a model or reports problems; it never
fails any other way. And the compiled schema checker never accepts what jsonschema rejects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.desired import load
from reconciler.desired.schema import SCHEMA_DIR, fast_check, validator
from reconciler.errors import InputError
from reconciler.model import DesiredState

from .conftest import write_repo

HQ = "customers/acme/sites/hq/mailboxes.yaml"
CUST = "customers/acme/customer.yaml"
SITE = "customers/acme/sites/hq/site.yaml"


def _schema_words() -> list[str]:
    """Every key and enumerated value the schemas know: generated documents use them, so that
    they get past the schema often enough to exercise the meaning checks."""
    words: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            words.update(k for k in node.get("properties", {}))
            words.update(v for v in node.get("enum", []) if isinstance(v, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for file in SCHEMA_DIR.glob("*.schema.json"):
        walk(json.loads(file.read_text()))
    return sorted(words)


WORDS = _schema_words()
_RESOURCE_DEFS = json.loads((SCHEMA_DIR / "resources.schema.json").read_text())["$defs"]
SCALARS = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(["a@acme.com", "B@Acme.com", "x@other.org", "none", "Default", "acme.com",
                     "env:KEY", "file:/k.pem", "2026-12-20T00:00:00Z", "00000000-0000-4000-8000-"
                     "000000000001", "Support London", "", "***", "1"]),
    st.text(max_size=12),
    st.integers(min_value=-3, max_value=20),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)
KEYS = st.one_of(st.sampled_from(WORDS), st.text(max_size=8),
                 st.integers(min_value=0, max_value=16).map(str))
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(KEYS, children, max_size=6)),
    max_leaves=30,
)
TOP = st.dictionaries(st.sampled_from(WORDS), DOCUMENTS, max_size=4)

EMAILS = st.sampled_from(["a@acme.com", "B@acme.com", "c@acme.co.uk", "x@other.org", "Default"])
GRANT = st.fixed_dictionaries(
    {"user": EMAILS},
    optional={"access": st.lists(st.sampled_from(["FullAccess", "SendAs", "SendOnBehalf"]),
                                 max_size=3),
              "automapping": st.booleans(),
              "role": st.sampled_from(["Editor", "Reviewer", "Owner"]),
              "rights": st.lists(st.sampled_from(["ReadItems", "CreateItems"]), max_size=2),
              "delegate": st.booleans(), "private_items": st.booleans()})
# Entries close to valid ones, so that most get past the schema into the meaning checks.
ENTRY = st.fixed_dictionaries(
    {"name": st.sampled_from(["A", "Help Desk", "Salle Lumière", "***"])},
    optional={
        "user": EMAILS, "alias": st.sampled_from(["a", "help-desk", "b.c"]),
        "domain": st.sampled_from(["acme.com", "acme.co.uk", "other.org"]),
        "template": st.sampled_from(["leaver", "nope"]),
        "permissions": st.lists(GRANT, max_size=3),
        "calendar_permissions": st.lists(GRANT, max_size=3),
        "owners": st.lists(EMAILS, max_size=3), "members": st.lists(EMAILS, max_size=3),
        "forwarding": st.one_of(st.just("none"), st.fixed_dictionaries(
            {}, optional={"internal": EMAILS, "external": EMAILS,
                          "deliver_to_mailbox": st.booleans()})),
        "auto_reply": st.fixed_dictionaries(
            {"state": st.sampled_from(["Enabled", "Disabled", "Scheduled"])},
            optional={"start": st.sampled_from(["2026-12-20T00:00:00Z", "2027-01-01T00:00:00Z"]),
                      "end": st.sampled_from(["2026-12-20T00:00:00Z", "2027-01-01T00:00:00Z"]),
                      "internal_message": st.text(max_size=5)}),
        "custom_attributes": st.dictionaries(st.integers(0, 16), st.text(max_size=3),
                                             max_size=2),
        "capacity": st.integers(-1, 20), "location": st.text(max_size=5),
        "convert_to": st.just("shared"), "archive": st.booleans(),
    })

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _load_or_problems(root: Path) -> None:
    try:
        result = load(root)
    except InputError as e:
        assert e.problems
        assert all(p.message for p in e.problems)
    else:
        assert isinstance(result, DesiredState)


@PROPERTY
@given(data=st.one_of(DOCUMENTS, TOP), where=st.sampled_from([HQ, CUST, SITE, "reconciler.yaml"]))
def test_arbitrary_yaml_documents(tmp_path_factory: Any, data: Any, where: str) -> None:
    root = write_repo(tmp_path_factory.mktemp("repo"),
                      {where: yaml.safe_dump(data, allow_unicode=True)})
    _load_or_problems(root)


@PROPERTY
@given(mailboxes=st.lists(st.one_of(ENTRY, st.dictionaries(st.sampled_from(WORDS), DOCUMENTS,
                                                         max_size=6)), max_size=4),
       key=st.sampled_from(["user_mailboxes", "shared_mailboxes", "room_mailboxes",
                            "distribution_groups"]),
       drop=st.booleans())
def test_arbitrary_resource_entries(tmp_path_factory: Any, mailboxes: list[Any],
                                    key: str, drop: bool) -> None:
    if drop:
        # keep only the keys this list's entries may have, so that more reach the meaning checks
        allowed = set(_RESOURCE_DEFS[key[:-2] if key.endswith("es") else key[:-1]]
                      ["properties"])
        mailboxes = [{k: v for k, v in m.items() if k in allowed} if isinstance(m, dict) else m
                     for m in mailboxes]
        if key == "user_mailboxes":
            mailboxes = [{**m, "user": "u@acme.com"} if isinstance(m, dict) else m
                         for m in mailboxes]
    root = write_repo(tmp_path_factory.mktemp("repo"),
                      {HQ: yaml.safe_dump({key: mailboxes}, allow_unicode=True)})
    _load_or_problems(root)


@PROPERTY
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_arbitrary_bytes(tmp_path_factory: Any, raw: bytes) -> None:
    root = write_repo(tmp_path_factory.mktemp("repo"), {HQ: raw})
    _load_or_problems(root)


@settings(max_examples=400, deadline=None)
@given(data=st.one_of(DOCUMENTS, TOP,
                      st.dictionaries(st.sampled_from(["shared_mailboxes", "user_mailboxes",
                                                       "room_mailboxes", "distribution_groups"]),
                                      st.lists(st.dictionaries(st.sampled_from(WORDS), DOCUMENTS,
                                                               max_size=5), max_size=3),
                                      max_size=2)),
       kind=st.sampled_from(["resources", "customer", "site", "reconciler"]))
def test_compiled_checker_never_accepts_what_jsonschema_rejects(data: Any, kind: str) -> None:
    check = fast_check(kind)
    assert check is not None
    if check(data):
        assert validator(kind).is_valid(data)
    if validator(kind).is_valid(data) and _plain(data):
        # on the plain data the loader produces, the two agree both ways
        assert check(data)


def _plain(value: Any) -> bool:
    """Data without the values the compiled checker leaves to jsonschema (floats as integers)."""
    if isinstance(value, float):
        return False
    if isinstance(value, list):
        return all(_plain(v) for v in value) and (
            not value or all(isinstance(v, str) for v in value)
            or not any(isinstance(v, str) for v in value))
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    return True
