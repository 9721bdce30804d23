"""The part of Exchange's OPATH ``-Filter`` syntax the emulator understands.

``-Filter "(PrimarySmtpAddress -eq 'ann@contoso.com') -or (EmailAddresses -eq 'x@y')"``: terms
``Property -eq 'value'`` or ``-ne``, joined by ``-and`` / ``-or`` (``-and`` binds tighter), with
parentheses and ``-not``. Values are quoted with ' (a quote inside doubled, '') or "; a bare
word is taken as written. Comparison ignores letter case, as Exchange's does; a multi-valued
property (EmailAddresses) matches when any of its values does, with or without the ``smtp:``
prefix. Anything else is refused as Exchange refuses a filter it cannot parse, rather than
guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(r"""\s*(?:(\()|(\))|(-and|-or|-not|-eq|-ne)\b|'((?:[^']|'')*)'|"([^"]*)"|"""
                    r"""([A-Za-z0-9_.@:{}\\-]+))""", re.IGNORECASE)


class FilterError(ValueError):
    """The filter is not one the emulator (or Exchange) can parse."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    at = 0
    text = text.rstrip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise FilterError(f"Invalid filter syntax near position {at}: {text[at:at + 20]!r}")
        at = match.end()
        opened, closed, operator, single, double, word = match.groups()
        if opened:
            out.append(("(", "("))
        elif closed:
            out.append((")", ")"))
        elif operator:
            out.append(("op", operator.lower()))
        elif single is not None:
            out.append(("value", single.replace("''", "'")))
        elif double is not None:
            out.append(("value", double))
        else:
            out.append(("word", word))
    return out


def _strip(value: str) -> str:
    return value[5:] if value[:5].lower() == "smtp:" else value


def _term(prop: str, negate: bool, wanted: str) -> Predicate:
    low = wanted.lower()

    def test(row: Mapping[str, Any]) -> bool:
        key = next((k for k in row if k.lower() == prop), None)
        value = row.get(key) if key is not None else None
        values = value if isinstance(value, list) else [value]
        hit = any(v is not None and (str(v).lower() == low or _strip(str(v)).lower() == low)
                  for v in values)
        return hit != negate
    return test


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("Invalid filter syntax: the filter ends too early")
        self.at += 1
        return token

    def either(self) -> Predicate:
        return self._joined("-or", self.both, any)

    def both(self) -> Predicate:
        return self._joined("-and", self.single, all)

    def _joined(self, word: str, inner: Callable[[], Predicate],
                combine: Callable[[Iterable[bool]], bool]) -> Predicate:
        parts = [inner()]
        while self.peek() == ("op", word):
            self.take()
            parts.append(inner())
        return parts[0] if len(parts) == 1 else lambda row: combine(p(row) for p in parts)

    def single(self) -> Predicate:
        kind, text = self.take()
        if (kind, text) == ("op", "-not"):
            inner = self.single()
            return lambda row: not inner(row)
        if kind == "(":
            inner = self.either()
            if self.take()[0] != ")":
                raise FilterError("Invalid filter syntax: a '(' is not closed")
            return inner
        if kind != "word":
            raise FilterError(f"Invalid filter syntax: expected a property name, found {text!r}")
        operator = self.take()
        if operator not in (("op", "-eq"), ("op", "-ne")):
            raise FilterError(f"The emulator supports only -eq and -ne, not {operator[1]!r}")
        value_kind, value = self.take()
        if value_kind not in ("value", "word"):
            raise FilterError(f"Invalid filter syntax: expected a value after {text}")
        return _term(text.lower(), operator[1] == "-ne", value)


def equalities(text: str) -> list[tuple[str, str]] | None:
    """The (property, value) pairs of a filter that is only ``-eq`` terms joined by ``-or``
    (lower-case property names), else None: such a filter can be answered from an index."""
    pairs: list[tuple[str, str]] = []
    tokens = [t for t in _tokens(str(text)) if t[0] not in ("(", ")")]
    for at in range(0, len(tokens), 4):
        term = tokens[at:at + 4]
        if len(term) < 3 or term[0][0] != "word" or term[1] != ("op", "-eq") \
                or term[2][0] not in ("value", "word") \
                or (len(term) == 4 and term[3] != ("op", "-or")):
            return None
        pairs.append((term[0][1].lower(), term[2][1]))
    return pairs or None


def compile_filter(text: str) -> Predicate:
    """A predicate over a row (a dict of properties) for the OPATH filter ``text``."""
    parser = _Parser(_tokens(str(text)))
    predicate = parser.either()
    if parser.peek() is not None:
        raise FilterError(f"Invalid filter syntax: unexpected {parser.peek()[1]!r}")  # type: ignore[index]
    return predicate

