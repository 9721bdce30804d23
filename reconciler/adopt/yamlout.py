"""Writing entries into resource files, keeping everything already there byte for byte.

New entries are rendered by ruamel.yaml in the style of the example repository (block lists,
one flow mapping per grant). An existing file is parsed with ruamel.yaml's round-trip loader
only to learn where each top-level list ends; the new entries are then inserted there as text,
so that comments, blank lines, quoting and key order outside the added entries stay exactly as
they were, whatever ruamel would have re-emitted.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from reconciler.errors import ReconcilerError

# Short records read best on one line each: grants, and forwarding.
_FLOW_ITEMS = ("permissions", "calendar_permissions")
_FLOW_MAPPINGS = ("forwarding",)
_FLOW_LISTS = ("access", "rights", "owners", "members")


def _yaml() -> YAML:
    yaml = YAML()
    yaml.width = 4096  # never fold a long message over two lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _styled(value: Any, key: str | None = None) -> Any:
    """Plain data as ruamel nodes with the repository's flow/block style; ``key`` is the
    mapping key the value sits under (list items inherit their list's key)."""
    if isinstance(value, Mapping):
        out = CommentedMap((k, _styled(v, str(k))) for k, v in value.items())
        if key in _FLOW_ITEMS or key in _FLOW_MAPPINGS:
            out.fa.set_flow_style()
        return out
    if isinstance(value, list):
        seq = CommentedSeq(_styled(v, key) for v in value)
        if key in _FLOW_LISTS or not value:
            seq.fa.set_flow_style()
        return seq
    return value


def dump(document: Mapping[str, Any]) -> str:
    """A document as YAML text in the repository's style."""
    stream = io.StringIO()
    _yaml().dump(_styled(document), stream)
    return stream.getvalue()


def new_file(header: str, document: Mapping[str, Any]) -> str:
    return header + dump(document)


def _parse(text: str, name: str) -> CommentedMap:
    try:
        data = YAML().load(text)
    except YAMLError as e:
        raise ReconcilerError(f"{name}: cannot be parsed to add entries ({e})") from e
    if data is None:
        return CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ReconcilerError(f"{name}: not a mapping of resource lists; cannot add entries")
    return data


def append_entries(text: str, additions: Mapping[str, Sequence[Mapping[str, Any]]],
                   name: str = "file") -> str:
    """``text`` with ``additions`` (list key -> new entries) appended to its lists; a list the
    file lacks is added at its end. Everything else is kept byte for byte."""
    data = _parse(text, name)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    top_keys = list(data.keys())
    insertions: list[tuple[int, str]] = []  # (line index to insert before, text)
    appended: dict[str, Sequence[Mapping[str, Any]]] = {}
    for key, entries in additions.items():
        if not entries:
            continue
        if key not in data:
            appended[key] = entries
            continue
        value = data[key]
        key_line = data.lc.key(key)[0]
        following = [data.lc.key(k)[0] for k in top_keys if data.lc.key(k)[0] > key_line]
        region_end = min(following) if following else len(lines)
        if value is None:
            dash_col, at = 2, key_line + 1
        elif isinstance(value, CommentedSeq) and not value.fa.flow_style() and len(value):
            first_line, first_col = value.lc.item(0)
            dash_col = lines[first_line].rfind("-", 0, first_col)
            if dash_col < 0:
                raise ReconcilerError(f"{name}: cannot tell how the list {key} is indented")
            at = _end_of_block(lines, key_line + 1, region_end)
        else:
            raise ReconcilerError(
                f"{name}: {key} is written as a flow list ({key}: [...]); write it as a block "
                f"list (one '- ' item per line) so that entries can be added to it")
        body = dump({key: list(entries)}).splitlines(keepends=True)[1:]
        shift = dash_col - 2
        body = [(" " * shift + line) if shift > 0 and line.strip() else
                (line[-shift:] if shift < 0 else line) for line in body]
        insertions.append((at, "".join(body)))
    for at, chunk in sorted(insertions, reverse=True):
        lines.insert(at, chunk)
    out = "".join(lines)
    if appended:
        if out and not out.endswith("\n\n"):
            out += "\n"
        out += dump(appended)
    _check(out, data, additions, name)
    return out


def _end_of_block(lines: list[str], start: int, end: int) -> int:
    """Where a top-level list's items end: after its last line that is neither blank nor a
    comment at column 0 (such comments introduce what follows)."""
    last = start
    for i in range(start, end):
        stripped = lines[i].strip()
        if not stripped or (stripped.startswith("#") and not lines[i][0].isspace()):
            continue
        last = i + 1
    return last


def _check(out: str, before: CommentedMap, additions: Mapping[str, Sequence[Any]],
           name: str) -> None:
    """The result must parse, and hold every old entry and every new one, in that order."""
    after = _parse(out, name)
    for key, entries in additions.items():
        old = list(before.get(key) or [])
        new = list(after.get(key) or [])
        if len(new) != len(old) + len(entries) or new[:len(old)] != old:
            raise ReconcilerError(f"{name}: adding entries to {key} went wrong; the file was "
                                  f"not changed")
