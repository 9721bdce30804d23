"""Reading one YAML file into plain data while remembering where every value came from.

The C parser composes the document into nodes (which carry positions); a small walker turns
the nodes into plain dicts, lists and scalars, the shape JSON Schema validates. Positions are
kept in a side table keyed by the identity of each dict and list, so the data itself stays plain
and cheap, and any value can still be traced back to its file, line and column.

Only the YAML core types are accepted (no tags that build objects), and the input is bounded:
a size limit on the file, a depth limit, and a limit on how many nodes aliases may expand to
(a "billion laughs" document fails with a clear error instead of exhausting memory).
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import Problem
from reconciler.model import SourceRef

try:  # the C parser is much faster; the pure-Python one gives the same nodes
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


class _Composer(_Loader):  # type: ignore[misc,valid-type]
    """The composer, with tags left to the walker. It asks the resolver about every node (three
    calls into Python each, most of them for plain text); here those are C callables that
    return at once: ``resolve`` keeps its arguments in a slice (``tag.step`` is what the
    parser says about the scalar's style), and the walker resolves only the plain scalars that
    can be something else than text. Explicit tags (``!!str``, ``!secret``) stay as written."""

    resolve = slice  # (kind, value, implicit)
    descend_resolver = slice  # (parent, index): nothing to do without path resolvers
    ascend_resolver = tuple  # ()


MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 64
# A node reached through an alias counts again each time: this bounds what a file may expand to
# regardless of how it is written. Ten times the file's own size leaves real files far below it.
MIN_NODE_BUDGET = 100_000
# The same in bytes of text: one 1 MB string reused through 2,000 aliases is 2 GB once every
# renderer has written it out. Four times the file's size, at least 8 MiB.
MIN_BYTE_BUDGET = 8 * 1024 * 1024
BYTE_BUDGET_FACTOR = 4

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_MERGE = "tag:yaml.org,2002:merge"
_constructor = yaml.SafeLoader("")  # only its scalar constructors are used
_resolver = yaml.resolver.Resolver()
# The first characters of the plain scalars that the YAML core schema may read as something
# else than text (a number, a date, true, null...); every other plain scalar is text (the core
# schema has no resolver for any first character, which would be under None).
_MAYBE_TYPED = frozenset(k for k in _resolver.yaml_implicit_resolvers if k)
# Resolved tags of the plain scalars seen most ('FullAccess' asks the resolver about false):
# bounded, the values of one repository repeat.
_PLAIN_TAGS: dict[str, str] = {}
_PLAIN_TAGS_MAX = 4096


class YamlError(Exception):
    """A file that is not acceptable YAML; carries the problems found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


# Where one dict or list was written, as the parser counts (0-based lines and columns): the
# container's own line and column, then for a list each item's, for a dict each key's and then
# each value's (in the dict's order). Flat rows of ints are cheap to build for every container and
# to store in the parse cache; a position becomes a SourceRef only when something asks for it.
Row = list[int]


@dataclass
class YamlDocument:
    """A file's plain data plus the positions of its dicts and lists."""

    file: str  # as it should appear in messages
    data: Any
    marks: dict[int, Row] = field(default_factory=dict)  # id(dict or list) -> its row

    def _at(self, row: Row, i: int) -> SourceRef:
        return SourceRef(self.file, row[i] + 1, row[i + 1] + 1)

    def ref(self, node: Node) -> SourceRef:
        mark = node.start_mark
        return SourceRef(self.file, mark.line + 1, mark.column + 1)

    def where(self, value: Any) -> SourceRef | None:
        """The position of a dict or list of this document."""
        row = self.marks.get(id(value))
        return self._at(row, 0) if row is not None else None

    def key_ref(self, mapping: dict[str, Any], key: str) -> SourceRef | None:
        """The position of ``key`` in ``mapping`` (of the mapping when not found)."""
        return self._pair_ref(mapping, key, False)

    def value_ref(self, mapping: dict[str, Any], key: str) -> SourceRef | None:
        """The position of the value under ``key`` in ``mapping``."""
        return self._pair_ref(mapping, key, True)

    def _pair_ref(self, mapping: dict[str, Any], key: str, value: bool) -> SourceRef | None:
        row = self.marks.get(id(mapping))
        if row is None:
            return None
        if key in mapping:
            # The row follows the dict's order; mappings are small and this is asked rarely.
            i = 2 + 2 * list(mapping).index(key) + (2 * len(mapping) if value else 0)
            if i + 1 < len(row):
                return self._at(row, i)
        return self._at(row, 0)

    def item_ref(self, sequence: list[Any], index: int) -> SourceRef | None:
        """The position of item ``index`` of ``sequence``."""
        row = self.marks.get(id(sequence))
        if row is None:
            return None
        i = 2 + 2 * index
        return self._at(row, i if index >= 0 and i + 1 < len(row) else 0)

    def item_refs(self, sequence: list[Any]) -> list[SourceRef | None]:
        """The position of each item of ``sequence``, in order."""
        row = self.marks.get(id(sequence))
        if row is None or len(row) != 2 + 2 * len(sequence):
            return [self.item_ref(sequence, i) for i in range(len(sequence))]
        file = self.file
        return [SourceRef(file, row[i] + 1, row[i + 1] + 1) for i in range(2, len(row), 2)]

    def path_ref(self, path: list[str | int] | tuple[str | int, ...]) -> SourceRef:
        """The position of the value at ``path`` (keys and indexes), as near as it exists."""
        value: Any = self.data
        best = self.where(value) or SourceRef(self.file, 1, 1)
        for step in path:
            if isinstance(value, dict) and isinstance(step, str) and step in value:
                best = self.value_ref(value, step) or best
                value = value[step]
            elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
                best = self.item_ref(value, step) or best
                value = value[step]
            else:
                break
        return best


def read_yaml(path: str, display: str) -> YamlDocument:
    """Read ``path`` (named ``display`` in messages) into a :class:`YamlDocument`.

    Raises :class:`YamlError` for anything that is not a single, plain YAML document.
    """
    return parse_yaml(read_bytes(path, display), display)


def read_bytes(path: str, display: str, within: str | None = None) -> bytes:
    """The bytes of ``path`` (up to one past the size limit); :class:`YamlError` if unreadable,
    or, with ``within`` (a real path), if what was opened lies outside that folder."""
    try:
        # Non-blocking, then checked: a FIFO put where a file was expected must not hang us.
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise _error(display, 1, 1, "not a regular file; a YAML file is expected here")
            if within is not None and not _opened_within(f.fileno(), path, within):
                raise _error(display, 1, 1, f"{os.path.basename(path)} is a link to a place "
                             "outside the repository; it is not read (copy what it should "
                             "hold into the repository)")
            return f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise YamlError([Problem(f"cannot read the file: {e.strerror or e}",
                                 SourceRef(display, 1, 1))]) from None


def _opened_within(fd: int, path: str, within: str) -> bool:
    """Whether the file open as ``fd`` lies in the folder ``within``. The file itself is asked
    (Linux names it in /proc), not its name, which a link swapped in since may now lead out."""
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc: the name's target, as near as this system tells
        opened = os.path.realpath(path)
    return opened == within or opened.startswith(within.rstrip(os.sep) + os.sep)


def parse_yaml(raw: bytes, display: str) -> YamlDocument:
    """Parse the bytes of a file named ``display``; see :func:`read_yaml`."""
    if len(raw) > MAX_FILE_BYTES:
        raise _error(display, 1, 1,
                     f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; "
                     "split it into several files")
    text = _decode(raw, display)
    if "\t" in text:
        _check_tabs(text, display)
    try:
        root = yaml.compose(text, Loader=_Composer)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise _error(display, line, col, _yaml_message(e)) from None
    except yaml.YAMLError as e:
        raise _error(display, 1, 1, f"not valid YAML: {e}") from None
    except RecursionError:
        raise _error(display, 1, 1, "the YAML is nested too deeply") from None
    if root is None:
        raise _error(display, 1, 1, "the file is empty (it holds no YAML document)")
    doc = YamlDocument(display, None)
    if "&" in text:  # anchors, so perhaps aliases: a value may be repeated, or contain itself
        walker: _Walker = _AliasWalker(doc, max(MIN_NODE_BUDGET, 10 * len(raw)),
                                       max(MIN_BYTE_BUDGET, BYTE_BUDGET_FACTOR * len(raw)))
    else:  # each node is met once: the document is no larger than its text
        walker = _Walker(doc)
    doc.data = walker.value(root)
    if walker.problems:
        raise YamlError(walker.problems)
    return doc


def _decode(raw: bytes, display: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _error(display, 1, 1, "the file is UTF-16; save it as UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = raw[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise _error(display, line, col,
                     f"the file is not UTF-8 (byte 0x{raw[e.start]:02x} cannot be read); "
                     "save it as UTF-8") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise _error(display, line, 1, "the file holds a NUL character; is it a binary file?")
    return text


def _check_tabs(text: str, display: str) -> None:
    """YAML forbids tabs for indentation; name the first such line plainly."""
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.lstrip(" ")
        if stripped.startswith("\t"):
            raise _error(display, number, len(line) - len(stripped) + 1,
                         "a tab is used for indentation; YAML allows only spaces there "
                         "(set your editor to insert spaces)")


def _yaml_message(e: yaml.MarkedYAMLError) -> str:
    problem = (e.problem or "").strip()
    context = (e.context or "").strip()
    if "found character '\\t'" in problem:
        return "a tab character where YAML does not allow one; use spaces"
    if "expected a single document" in context or "but found another document" in problem:
        return "the file holds more than one YAML document ('---'); keep one per file"
    if "mapping values are not allowed" in problem:
        return ("a ':' where a value was expected; put quotes around text that contains ': ' "
                "or check the indentation of this line")
    if "could not find expected ':'" in problem:
        return "a key without ':' after it; write 'key: value' (check the indentation)"
    text = f"{context}, {problem}" if context and problem else context or problem
    return f"not valid YAML: {text or e}"


def _error(display: str, line: int, col: int, message: str) -> YamlError:
    return YamlError([Problem(message, SourceRef(display, line, col))])


class _Walker:
    """Turns composed nodes into plain data, recording positions (see :data:`Row`).

    A scalar that is plain text (most of them) is taken in the loop over its container, without
    a call of its own; the rest go through :meth:`scalar`."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.marks = doc.marks
        self.problems: list[Problem] = []

    def fail(self, node: Node, message: str) -> None:
        self.problems.append(Problem(message, self.doc.ref(node)))

    def value(self, node: Node) -> Any:
        """The document's top node."""
        if node.__class__ is ScalarNode:
            return self.scalar(node)
        return self.container(node, 0)

    def container(self, node: Node, depth: int) -> Any:
        if depth >= MAX_DEPTH:
            self.fail(node, f"the YAML is nested more than {MAX_DEPTH} levels deep")
            return None
        cls = node.__class__
        if cls is MappingNode:
            return self.mapping(node, depth)
        if cls is SequenceNode:
            return self.sequence(node, depth)
        self.fail(node, "unexpected YAML node")  # pragma: no cover - only three node kinds
        return None

    def sequence(self, node: SequenceNode, depth: int) -> list[Any]:
        tag = node.tag
        if tag.__class__ is not slice and tag != _SEQ:
            self.fail(node, f"the tag {tag} is not allowed; write a plain list")
        mark = node.start_mark
        row = [mark.line, mark.column]
        items = self.values(node.value, depth, row)
        self.marks[id(items)] = row
        return items

    def mapping(self, node: MappingNode, depth: int) -> dict[str, Any]:
        tag = node.tag
        if tag.__class__ is not slice and tag != _MAP:
            self.fail(node, f"the tag {tag} is not allowed; write a plain mapping")
        mark = node.start_mark
        row = [mark.line, mark.column]
        taken: dict[str, Node] = {}  # key -> its value's node
        for key_node, value_node in node.value:
            if key_node.__class__ is not ScalarNode:
                self.fail(key_node, "a key must be plain text, not a list or mapping")
                continue
            key = key_node.value
            if (key in taken or key == "<<") and self.odd_key(node, key_node, taken):
                continue
            taken[key] = value_node
            mark = key_node.start_mark
            row += (mark.line, mark.column)
        result = dict(zip(taken, self.values(taken.values(), depth, row), strict=True))
        self.marks[id(result)] = row
        return result

    def values(self, nodes: Iterable[Node], depth: int, row: Row) -> list[Any]:
        """The values of ``nodes`` (a list's items, a mapping's values), their positions
        added to ``row``."""
        out = []
        for node in nodes:
            if node.__class__ is ScalarNode:
                tag, value = node.tag, node.value
                if tag.__class__ is not slice or (
                        tag.step[0] and (not value or value[0] in _MAYBE_TYPED)):
                    value = self.scalar(node)
            else:
                value = self.container(node, depth + 1)
            out.append(value)
            mark = node.start_mark
            row += (mark.line, mark.column)
        return out

    def odd_key(self, node: MappingNode, key_node: ScalarNode, taken: dict[str, Node]) -> bool:
        """Whether ``key_node`` is a merge key or a repeated key (then reported)."""
        if _tag(key_node) == _MERGE:
            self.fail(key_node, "merge keys ('<<') are not supported; "
                                "use a template for shared settings")
            return True
        key = key_node.value
        if key not in taken:
            return False
        first = next(k for k, _ in node.value if k.value == key)
        self.fail(key_node, f"the key '{key}' appears twice in this mapping "
                            f"(first at line {first.start_mark.line + 1}); keep one")
        return True

    def scalar(self, node: ScalarNode) -> Any:
        tag = _tag(node)
        if tag == _STR:
            return node.value
        if tag not in _SCALAR_TAGS:
            self.fail(node, f"the tag {tag} is not allowed; write plain values")
            return None
        if tag == "tag:yaml.org,2002:timestamp":
            return _timestamp(node)
        try:
            return _constructor.yaml_constructors[tag](_constructor, node)
        except (ValueError, yaml.YAMLError):
            return node.value


class _AliasWalker(_Walker):
    """For a document with anchors, where an alias may repeat a value any number of times (a
    "billion laughs" document) or name a mapping or list that contains it. Every node counts
    each time it is reached, against a budget of nodes and one of bytes of text; only the first
    overrun is reported."""

    def __init__(self, doc: YamlDocument, budget: int, byte_budget: int) -> None:
        super().__init__(doc)
        self.budget = budget
        self.byte_budget = self.byte_limit = byte_budget
        self.exhausted = False
        self.active: set[int] = set()  # containers being walked: an alias to one is a cycle

    def over_budget(self, node: Node, what: str) -> None:
        """Once per document, at the node where the expansion budget ran out."""
        if not self.exhausted:
            self.exhausted = True
            self.fail(node, f"{what} (aliases repeated over and over?); write it out plainly")

    def container(self, node: Node, depth: int) -> Any:
        children = [v for _, v in node.value] if node.__class__ is MappingNode else node.value
        self.budget -= 1
        for child in children:  # its scalars count here, the containers in their own turn
            if child.__class__ is ScalarNode:
                self.budget -= 1
                self.byte_budget -= len(child.value)
                if self.byte_budget < 0:
                    self.over_budget(child, f"the document expands to more than "
                                            f"{self.byte_limit // (1024 * 1024)} MiB of text")
                    return None
        if self.budget < 0:
            self.over_budget(node, "the document expands to too many values")
            return None
        key = id(node)
        if key in self.active:
            self.fail(node, "an alias refers to the mapping or list that contains it")
            return None
        self.active.add(key)
        try:
            return super().container(node, depth)
        finally:
            self.active.discard(key)


def _tag(node: Node) -> str:
    """The node's tag, resolved as the YAML core schema does (see :class:`_Composer`)."""
    tag = node.tag
    if tag.__class__ is not slice:
        return tag
    if node.__class__ is not ScalarNode:
        return _MAP if node.__class__ is MappingNode else _SEQ
    value = node.value
    if not tag.step[0]:  # quoted, or a block scalar: text
        return _STR
    resolved = _PLAIN_TAGS.get(value)
    if resolved is None:
        resolved = _resolver.resolve(ScalarNode, value, tag.step)
        if len(_PLAIN_TAGS) < _PLAIN_TAGS_MAX:
            _PLAIN_TAGS[value] = resolved
    return resolved


def _timestamp(node: ScalarNode) -> str:
    """A timestamp with a time zone becomes ISO-8601 UTC text; anything else stays as written
    (so that the schema can say what is expected)."""
    try:
        value = _constructor.construct_yaml_timestamp(node)
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, yaml.YAMLError):  # 2026-02-30; past year 9999 in UTC
        pass
    return str(node.value)
