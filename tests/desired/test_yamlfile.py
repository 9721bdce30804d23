"""The YAML walker: plain data typed as the YAML core schema reads it, and the line and column
of every key, value and item."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.desired.yamlfile import YamlError, parse_yaml

SCALARS = """\
text: FullAccess
false_word: False
no_word: no
quoted: '1'
double: "true"
number: 12
hex: 0x1F
float: .5
exponent: 1e3
empty:
tilde: ~
null_word: null
time: 2026-12-20T01:00:00+01:00
date: 2026-12-20
non_specific: ! 12
explicit_text: !!str 5
explicit_int: !!int "7"
block: |
  two
  lines
folded: >
  one
  line
inf: .inf
plus: +3
octal: 0o17
"""


def test_scalars_are_typed_as_the_core_schema_reads_them() -> None:
    data = parse_yaml(SCALARS.encode(), "f.yaml").data
    # What the YAML library itself makes of the same text, with two documented exceptions: a
    # time with a zone becomes UTC text, and a date stays as written (for the schema to judge).
    expected = yaml.safe_load(SCALARS)
    expected["time"] = "2026-12-20T00:00:00Z"
    expected["date"] = "2026-12-20"
    assert isinstance(yaml.safe_load("d: 2026-12-20")["d"], dt.date)
    assert data == expected
    assert [type(data[k]) for k in ("text", "false_word", "no_word", "quoted", "number", "float",
                                     "empty", "explicit_text", "explicit_int")] \
        == [str, bool, bool, str, int, float, type(None), str, int]


def test_every_key_value_and_item_has_its_line_and_column() -> None:
    text = "a:\n  - {user: x@y.z, access: [FullAccess, SendAs]}\n  - 7\nb: c\n"
    doc = parse_yaml(text.encode(), "f.yaml")
    top = doc.data
    first = top["a"][0]
    at = lambda ref: (ref.file, ref.line, ref.column)  # noqa: E731
    assert at(doc.where(top)) == ("f.yaml", 1, 1)
    assert at(doc.key_ref(top, "b")) == ("f.yaml", 4, 1)
    assert at(doc.value_ref(top, "b")) == ("f.yaml", 4, 4)
    assert at(doc.item_ref(top["a"], 1)) == ("f.yaml", 3, 5)
    assert at(doc.value_ref(first, "access")) == ("f.yaml", 2, 27)
    assert at(doc.item_ref(first["access"], 1)) == ("f.yaml", 2, 40)
    # Asked for what is not there: the container's own position.
    assert at(doc.value_ref(first, "role")) == ("f.yaml", 2, 5)
    assert at(doc.item_ref(top["a"], 5)) == ("f.yaml", 2, 3)
    assert at(doc.path_ref(["a", 0, "access", 0])) == ("f.yaml", 2, 28)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("a: !!python/name:os.system x\n", 1, "tag"),
    ("a:\n  b: !secret x\n", 2, "tag"),
    ("a: !!set {x}\n", 1, "not allowed"),
    ("a: !!seq {x: 1}\n", 1, "plain mapping"),
    ("a:\n  <<: {x: 1}\n", 2, "merge keys"),
    ("a: 1\nb: 2\na: 3\n", 3, "appears twice"),
    ("a: &x [1, *x]\n", 1, "contains it"),
    ("? [k]\n: v\n", 1, "plain text"),
])
def test_what_is_not_plain_data_is_refused_with_its_line(text: str, line: int,
                                                         words: str) -> None:
    with pytest.raises(YamlError) as e:
        parse_yaml(text.encode(), "f.yaml")
    assert [p.source.line for p in e.value.problems] == [line]
    assert words in e.value.problems[0].message


def test_a_quoted_merge_key_is_a_plain_key() -> None:
    assert parse_yaml(b"'<<': 1\n", "f.yaml").data == {"<<": 1}


def test_aliases_within_the_budget_repeat_their_value_with_its_positions() -> None:
    doc = parse_yaml(b"a: &x {k: [1, 2]}\nb: *x\n", "f.yaml")
    assert doc.data == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}}
    assert doc.data["a"] is not doc.data["b"]
    assert doc.item_ref(doc.data["b"]["k"], 1).line == 1


_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
_PLAIN = st.one_of(_TEXT, st.integers(-10**6, 10**6), st.booleans(), st.none(),
                   st.floats(allow_nan=False), st.sampled_from(
                       ["no", "Yes", "~", "0x1F", "1e3", "1_000", ".inf", "2026-12-20", "<<",
                        "12:30", "0o17", "+3", "-", "FullAccess", "null", "Off"]))
_DATA = st.recursive(_PLAIN, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(_TEXT, _DATA, max_size=5), flow=st.booleans())
def test_what_the_walker_reads_is_what_yaml_reads(data: dict, flow: bool) -> None:
    # Text that YAML would read as a date stays text here; no such text is written unquoted.
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    expected = yaml.safe_load(text)
    assert parse_yaml(text.encode(), "f.yaml").data == expected
