"""Validating documents against the published JSON Schemas (``schemas/*.schema.json``).

The schemas are the ones editors use, so the loader and the editor agree on what is valid.
Validation runs in two steps: a compact checker compiled once from the schemas answers "valid
or not" quickly for the common case of a valid document; only a document it rejects goes
through the ``jsonschema`` library, which finds every error and is the reference. The checker
is conservative: whenever it is unsure (a keyword it does not know, an unusual value) it says
"not valid", which only costs the slower, exact path.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import referencing
from jsonschema.exceptions import ValidationError
from referencing.jsonschema import DRAFT202012

from reconciler.errors import Problem
from reconciler.model import SourceRef
from reconciler.secretref import env_name_problem

from .yamlfile import YamlDocument

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_FILES = ("resources", "customer", "site", "reconciler")
SECRET_KEYS = frozenset({"certificate_key", "certificate_passphrase"})

Check = Callable[[Any], bool]


@cache
def raw_schemas() -> dict[str, dict[str, Any]]:
    """Every schema by file name (``customer.schema.json`` ...)."""
    result = {}
    for name in SCHEMA_FILES:
        file = f"{name}.schema.json"
        result[file] = json.loads((SCHEMA_DIR / file).read_text(encoding="utf-8"))
    return result


@cache
def _registry() -> referencing.Registry:
    resources = [(name, DRAFT202012.create_resource(s)) for name, s in raw_schemas().items()]
    return referencing.Registry().with_resources(resources)


@cache
def validator(kind: str) -> jsonschema.protocols.Validator:
    """The reference validator for ``kind`` (resources, customer, site, reconciler)."""
    schema = raw_schemas()[f"{kind}.schema.json"]
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=_registry())


@cache
def fast_check(kind: str) -> Check | None:
    """The compiled checker for ``kind``, or None when the schema uses what it cannot check."""
    try:
        return _Compiler(raw_schemas()).compile_file(f"{kind}.schema.json")
    except _Unsupported:
        return None


def schema_problems(doc: YamlDocument, kind: str) -> list[Problem]:
    """Every way ``doc`` breaks the ``kind`` schema, as problems with positions."""
    check = fast_check(kind)
    if check is not None and check(doc.data):
        return []
    errors = sorted(validator(kind).iter_errors(doc.data), key=lambda e: list(e.absolute_path))
    problems: list[Problem] = []
    for error in errors:
        problems.extend(_explain(doc, error))
    return problems


# --- turning jsonschema's errors into messages a person acts on ---------------------------------

_TYPE_NAMES = {
    "object": "a mapping (key: value lines)",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


def _type_of(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__  # pragma: no cover - the walker yields only the above


def _where(path: Iterable[str | int]) -> str:
    """A human name for a position: 'tenant.id', 'shared_mailboxes[2].permissions[0].user'."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _key(path: list[str | int]) -> str | None:
    for step in reversed(path):
        if isinstance(step, str):
            return step
    return None


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _explain(doc: YamlDocument, error: ValidationError) -> list[Problem]:
    path = list(error.absolute_path)
    name = _where(path) or "the file"
    key = _key(path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    secret = key in SECRET_KEYS
    at = doc.path_ref(path)

    container = _value_at(doc.data, path)
    if (kind in ("enum", "pattern") and isinstance(container, dict) and isinstance(value, str)
            and value in container and container.get(value) is not value):
        # a propertyNames failure: jsonschema reports the key itself at the mapping's path
        return [Problem(_bad_key_name(error, schema, value, name),
                        doc.key_ref(container, value) or at)]
    if key == "forwarding" and kind in ("type", "pattern"):
        word = " (YAML reads off, no and false as false: write none)" if value is False else ""
        return [Problem(f"{name} must be the word none, or a mapping with internal or external"
                        f"{word}", at)]

    if kind == "additionalProperties" and isinstance(value, dict):
        return _unknown_keys(doc, schema, value, path, at)
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        where = f"in {name}" if path else "at the top of the file"
        return [Problem(f"'{k}' is missing {where}; add it", at) for k in missing]
    if kind == "type":
        return [Problem(_wrong_type(error.validator_value, value, name, secret or not path),
                        at)]
    if kind == "enum":
        options = [str(o) for o in error.validator_value]
        close = difflib.get_close_matches(value, options, n=1) if isinstance(value, str) else []
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return [Problem(f"{name} is {_show(value)}, which is not one of: "
                        f"{', '.join(options)}{hint}", at)]
    if kind == "pattern":
        return [Problem(_mismatch(error, schema, value, name, secret), at)]
    if kind == "propertyNames":
        return [Problem(f"{name} has a key that is not allowed: {error.message}", at)]
    if kind in ("minLength", "maxLength") and isinstance(value, str):
        if kind == "minLength":
            return [Problem(f"{name} is empty; write a value or remove the key", at)]
        return [Problem(f"{name} is {len(value)} characters long; at most "
                        f"{error.validator_value} are allowed", at)]
    if kind == "minItems":
        return [Problem(f"{name} needs at least {error.validator_value} "
                        f"entr{'y' if error.validator_value == 1 else 'ies'}", at)]
    if kind == "uniqueItems":
        return [Problem(f"{name} lists the same value more than once; list each once", at)]
    if kind == "minProperties":
        return [Problem(f"{name} is an empty mapping; say what it should hold", at)]
    if kind in ("minimum", "maximum"):
        bound = "at least" if kind == "minimum" else "at most"
        return [Problem(f"{name} is {value}; it must be {bound} {error.validator_value}", at)]
    return [Problem(f"{name}: {error.message}", at)]


def _bad_key_name(error: ValidationError, schema: dict[str, Any], value: str,
                  name: str) -> str:
    """A key of a mapping that is not one of its names (enum) or not a valid name."""
    if error.validator == "enum":
        allowed = [str(o) for o in error.validator_value]
        close = difflib.get_close_matches(value, allowed, n=1)
        hint = (f"did you mean '{close[0]}'?" if close else
                f"use one of: {', '.join(allowed)}")
        return f"unknown key '{value}' in {name}; {hint}"
    rule = schema.get("title") or f"text matching {error.validator_value}"
    if error.validator_value == "^[a-z0-9][a-z0-9_-]*$":
        rule = "lower-case letters, digits, '_' and '-'"
    return f"the key '{value}' in {name} is not a valid name; use {rule}"


def _unknown_keys(doc: YamlDocument, schema: dict[str, Any], value: dict[str, Any],
                  path: list[str | int], at: SourceRef) -> list[Problem]:
    """One problem per key the mapping's schema neither names nor matches."""
    allowed = list((schema.get("properties") or {}).keys())
    patterns = list((schema.get("patternProperties") or {}).keys())
    problems = []
    for extra in value:
        if extra in allowed or any(re.search(p, extra) for p in patterns):
            continue
        problems.append(Problem(_unknown_key(extra, path, allowed, patterns),
                                doc.key_ref(value, extra) or at))
    return problems


def _wrong_type(expected: str | list[str], value: Any, name: str, quiet: bool) -> str:
    """What the value should be and what it is. ``quiet``: a secret, or a whole file."""
    names = [expected] if isinstance(expected, str) else list(expected)
    wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in names)
    # Neither a secret nor a whole file that is not YAML at all is ever quoted.
    quiet = quiet or not isinstance(value, str | int | float)
    shown = "" if quiet else f" ({_show(value)})"
    hint = ""
    if "string" in names and isinstance(value, int | float | bool):
        hint = "; put it in quotes to make it text"
    if value is None:
        return f"{name} is empty; it must be {wanted}"
    return f"{name} must be {wanted}, not {_type_of(value)}{shown}{hint}"


def _mismatch(error: ValidationError, schema: dict[str, Any], value: Any, name: str,
              secret: bool) -> str:
    """A text not of its pattern; a secret is never shown, and must be a reference."""
    if secret and isinstance(value, str) and value.startswith("env:"):
        return f"{name}: {env_name_problem(value.removeprefix('env:'))}"
    if secret:
        return (f"{name} must be a reference to the secret, env:VARIABLE or "
                "file:path, never the secret itself (the value written here is not "
                "shown); put it in an environment variable or a file and write "
                "e.g. env:CONTOSO_EXO_KEY")
    title = schema.get("title") or f"text matching {error.validator_value}"
    return f"{name} is {_show(value)}; it must be {title}"


def _value_at(data: Any, path: list[str | int]) -> Any:
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _unknown_key(extra: str, path: list[str | int], allowed: list[str],
                 patterns: list[str]) -> str:
    parent = _key(path)
    if parent == "custom_attributes":
        return (f"custom attribute '{extra}' does not exist; custom attributes are numbered "
                "1 to 15")
    if extra == "calendar_permissions" and parent == "distribution_groups":
        return ("distribution groups have no calendar; remove calendar_permissions "
                "(calendar permissions belong on a user, shared or room mailbox)")
    where = f" in {_where(path)}" if path else " at the top of the file"
    close = difflib.get_close_matches(extra, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{extra}'{where}; did you mean '{close[0]}'?"
    if allowed:
        return f"unknown key '{extra}'{where}; expected one of: {', '.join(allowed)}"
    return f"unknown key '{extra}'{where}"


# --- the compiled checker -----------------------------------------------------------------------


class _Unsupported(Exception):
    pass


_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples",
     "markdownDescription", "deprecated"}
)
_NUMBER_TYPES = (int, float)


class _Compiler:
    """Compiles the subset of JSON Schema the published schemas use into closures."""

    def __init__(self, schemas: dict[str, dict[str, Any]]) -> None:
        self.schemas = schemas
        self.compiled: dict[tuple[str, str], Check] = {}

    def compile_file(self, file: str) -> Check:
        return self.ref(file, "#")

    def ref(self, base: str, ref: str) -> Check:
        file, _, pointer = ref.partition("#")
        file = file or base
        key = (file, pointer)
        if key in self.compiled:
            return self.compiled[key]
        if file not in self.schemas:
            raise _Unsupported(ref)
        target: Any = self.schemas[file]
        for part in filter(None, pointer.split("/")):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        # a placeholder first, so that a schema referring to itself compiles
        cell: list[Check] = []
        self.compiled[key] = lambda v: cell[0](v)
        check = self.schema(target, file)
        cell.append(check)
        self.compiled[key] = check
        return check

    def schema(self, s: Any, base: str) -> Check:
        if s is True:
            return lambda v: True
        if s is False or not isinstance(s, dict):
            raise _Unsupported(s)
        unknown = set(s) - _ANNOTATIONS - _KNOWN
        if unknown:
            raise _Unsupported(unknown)
        checks: list[Check] = []
        if "$ref" in s:
            checks.append(self.ref(base, s["$ref"]))
        # One type of string, object or array (the common case): the check of that type's
        # keywords tests the type itself, one call per value instead of three.
        only = s.get("type") if s.get("type") in ("string", "object", "array") else None
        string = self.string_check(s, only == "string")
        obj = self.object_check(s, base, only == "object")
        arr = self.array_check(s, base, only == "array")
        typed = {"string": string or ("enum" in s), "object": obj, "array": arr}.get(only)
        if "type" in s and not typed:
            checks.append(_type_check(s["type"]))
        if "enum" in s:
            options = s["enum"]
            if not all(isinstance(o, str) for o in options):
                raise _Unsupported(options)
            allowed = frozenset(options)
            checks.append(lambda v: type(v) is str and v in allowed)
        if string:
            checks.append(string if only == "string" else
                          lambda v: type(v) is not str or string(v))
        numeric = self.number_check(s)
        if numeric:
            checks.append(
                lambda v: type(v) is bool or not isinstance(v, _NUMBER_TYPES) or numeric(v))
        if obj:
            checks.append(obj if only == "object" else lambda v: type(v) is not dict or obj(v))
        if arr:
            checks.append(arr if only == "array" else lambda v: type(v) is not list or arr(v))
        return _all_of(checks)

    @staticmethod
    def string_check(s: dict[str, Any], typed: bool) -> Check | None:
        """The string keywords of ``s``; ``typed``: the check also tests that it is text."""
        pattern = re.compile(s["pattern"]).search if "pattern" in s else None
        low = s.get("minLength", 0)
        high = s.get("maxLength")
        if pattern is None and not low and high is None:
            return None

        def check(v: str) -> bool:
            if typed and type(v) is not str:
                return False
            n = len(v)
            if n < low or (high is not None and n > high):
                return False
            return pattern is None or pattern(v) is not None

        return check

    @staticmethod
    def number_check(s: dict[str, Any]) -> Check | None:
        low, high = s.get("minimum"), s.get("maximum")
        if low is None and high is None:
            return None
        return lambda v: (low is None or v >= low) and (high is None or v <= high)

    def object_check(self, s: dict[str, Any], base: str, typed: bool) -> Check | None:
        keys = ("properties", "patternProperties", "additionalProperties", "required",
                "propertyNames", "minProperties")
        if not any(k in s for k in keys):
            return None
        props = {k: self.schema(v, base) for k, v in (s.get("properties") or {}).items()}
        patterns = [(re.compile(p).search, self.schema(v, base))
                    for p, v in (s.get("patternProperties") or {}).items()]
        extra = s.get("additionalProperties", True)
        extra_check = None if extra is True or extra is False else self.schema(extra, base)
        closed = extra is False
        required = tuple(s.get("required", ()))
        names = self.schema(s["propertyNames"], base) if "propertyNames" in s else None
        min_props = s.get("minProperties", 0)

        if closed and not patterns and names is None:
            def closed_check(v: dict[str, Any]) -> bool:  # keys known, nothing else allowed
                if (typed and type(v) is not dict) or len(v) < min_props:
                    return False
                for k in required:
                    if k not in v:
                        return False
                for k, x in v.items():
                    c = props.get(k)
                    if c is None or not c(x):
                        return False
                return True

            return closed_check

        def check(v: dict[str, Any]) -> bool:
            if (typed and type(v) is not dict) or len(v) < min_props:
                return False
            for k in required:
                if k not in v:
                    return False
            for k, x in v.items():
                if names is not None and not names(k):
                    return False
                c = props.get(k)
                if c is not None:
                    if not c(x):
                        return False
                    continue
                matched = False
                for search, pc in patterns:
                    if search(k) is not None:
                        matched = True
                        if not pc(x):
                            return False
                if matched:
                    continue
                if closed or (extra_check is not None and not extra_check(x)):
                    return False
            return True

        return check

    def array_check(self, s: dict[str, Any], base: str, typed: bool) -> Check | None:
        keys = ("items", "minItems", "maxItems", "uniqueItems")
        if not any(k in s for k in keys):
            return None
        item = self.schema(s["items"], base) if "items" in s else None
        low, high = s.get("minItems", 0), s.get("maxItems")
        unique = s.get("uniqueItems", False)

        def check(v: list[Any]) -> bool:
            if typed and type(v) is not list:
                return False
            n = len(v)
            if n < low or (high is not None and n > high):
                return False
            # only lists of text are judged here for uniqueness; others take the exact path
            if unique and (not all(type(x) is str for x in v) or len(set(v)) != n):
                return False
            if item is not None:
                for x in v:
                    if not item(x):
                        return False
            return True

        return check


_KNOWN = frozenset(
    {"$ref", "type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum",
     "properties", "patternProperties", "additionalProperties", "required", "propertyNames",
     "minProperties", "items", "minItems", "maxItems", "uniqueItems"}
)
_PY_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}


def _all_of(checks: list[Check]) -> Check:
    """A check that passes when each of ``checks`` does (in order, stopping at the first that
    fails); no generator per value for the usual one to three."""
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda v: a(v) and b(v)
    if len(checks) == 3:
        a, b, c = checks
        return lambda v: a(v) and b(v) and c(v)
    first, *rest = checks
    return lambda v: first(v) and all(c(v) for c in rest)


def _type_check(spec: str | list[str]) -> Check:
    names = [spec] if isinstance(spec, str) else list(spec)
    if any(n not in _PY_TYPES for n in names):
        raise _Unsupported(spec)
    exact = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
    if all(n in exact for n in names):
        allowed = frozenset(exact[n] for n in names)
        return lambda v: type(v) in allowed
    tests = [_PY_TYPES[n] for n in names]
    return lambda v: any(t(v) for t in tests)
