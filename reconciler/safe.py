"""Data made harmless before anyone reads it: on a terminal, in a log, in a CI job.

Every string that came from YAML, a plan file or Exchange passes through here on its way out.
A terminal obeys escape sequences (an auto-reply of ``ESC[1A ESC[2K`` erases the lines above
it, hiding a change from its reviewer); the GitHub Actions runner obeys any output line that
starts with ``::`` (``::warning file=...::``, ``::add-mask::``, ``::stop-commands::``). So:

- :func:`visible` shows control characters as text (``\\x1b``): C0 (newline and tab kept only
  inside a multi-line block), DEL, C1, and the Unicode controls that reorder or hide text;
  a value longer than a reader can take in is cut, saying how long it was;
- :func:`defuse` makes sure no line of an output starts with ``::``, whatever put it there;
- :func:`annotation` writes a GitHub workflow command with its properties and message escaped
  the way the runner decodes them;
- :func:`json_text` keeps JSON byte-exact as data while escaping what a terminal would obey;
- :class:`LogFormatter` does the same for every log line.

Markdown and HTML renderers keep their own escaping; they call :func:`visible` for the
control characters as well.
"""

from __future__ import annotations

import logging
import re

# Characters that are cut from a value beyond this length in one-line messages (errors, logs,
# progress); a plan shows values up to PLAN_LIMIT so that a reviewer reads a real message whole.
LIMIT = 200
PLAN_LIMIT = 2_000
# A whole message line (error, log record) is never longer than this.
LINE_LIMIT = 4_000

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_SEPARATORS = "\u2028\u2029\u0085"
_CONTROL = "\x00-\x1f\x7f-\x9f" + _BIDI + _SEPARATORS
_ANY_CONTROL = re.compile(f"[{_CONTROL}]")
# The same without tab and newline, for a block of several lines.
_CONTROL_BUT_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}{_SEPARATORS}]")
# A line the Actions runner would read as a workflow command: it trims leading white space.
_COMMAND_LINE = re.compile(r"^([ \t]*):(?=:)", re.MULTILINE)
# Escape sequences this program writes itself (colours, redrawing its own progress line).
_OWN_SEQUENCES = re.compile(r"\x1b\[(?:0|1|2|31|32|33|36)m|\r\x1b\[2K")
_LONG_WORD = re.compile(rf"\S{{{LIMIT + 1},}}")
# JSON leaves these raw with ensure_ascii=False; outside C0 they are not escaped by json.dumps.
_JSON_RAW = re.compile(f"[\x7f-\x9f{_BIDI}{_SEPARATORS}]")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def cut(text: str, limit: int = LIMIT) -> str:
    """``text`` whole when it is at most ``limit`` characters, else its start and its length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def visible(value: object, *, limit: int | None = LIMIT, multiline: bool = False) -> str:
    """``value`` as text in which every control character is shown, not obeyed.

    With ``multiline``, newlines and tabs stay (a block of several lines), but no line may
    start a workflow command. The cut happens before escaping, so its count is the value's own.
    """
    text = value if isinstance(value, str) else str(value)
    if limit is not None:
        text = cut(text, limit)
    if multiline:
        text = text.replace("\r\n", "\n")
        return defuse(_CONTROL_BUT_LINES.sub(lambda m: _escape(m.group()), text))
    return _ANY_CONTROL.sub(lambda m: _escape(m.group()), text)


def defuse(text: str) -> str:
    """``text`` with no line starting ``::`` (after blanks): the first ``:`` is shown as
    ``\\x3a``, so the line reads the same and the runner ignores it."""
    return _COMMAND_LINE.sub(r"\1\\x3a", text)


def message(text: str, *, limit: int = LINE_LIMIT) -> str:
    """A line of prose that quotes data (an error, a warning): one line, controls shown, any
    run of more than :data:`LIMIT` non-blank characters cut, the whole at most ``limit``."""
    text = _LONG_WORD.sub(lambda m: cut(m.group()), text)
    return visible(text, limit=limit)


def message_lines(text: str) -> str:
    """Prose of several lines (an error listing what is wrong): each line as :func:`message`,
    the lines kept, none starting a workflow command."""
    return defuse("\n".join(message(line) for line in text.split("\n")))


def screen(text: str, *, multiline: bool = True) -> str:
    """Output about to be written, as the last line of defence: only this program's own
    colour and progress sequences survive; every other control character is shown, and no
    line starts a workflow command."""
    parts = _OWN_SEQUENCES.split(text)
    own = _OWN_SEQUENCES.findall(text)
    out = [visible(parts[0], limit=None, multiline=multiline)]
    for seq, part in zip(own, parts[1:], strict=True):
        out += [seq, visible(part, limit=None, multiline=multiline)]
    return defuse("".join(out))


def json_text(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with DEL, C1 and the Unicode
    controls also written as ``\\uXXXX`` escapes: the same data, nothing a terminal obeys.
    They can only occur inside JSON strings, where the escape means the same character."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# --- GitHub workflow commands ------------------------------------------------------------------


def _annotation_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _annotation_property(text: str) -> str:
    return _annotation_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, text: str, *, file: str | None = None, line: int | None = None,
               col: int | None = None, title: str | None = None) -> str:
    """A workflow command (``::error file=...,line=...::message``) that GitHub shows on the
    pull request's diff. Properties and message are escaped as the runner decodes them, and
    control characters are shown, so no value can end the command or start another."""
    props = []
    if file:
        props.append(f"file={_annotation_property(visible(file, limit=None))}")
    if line:
        props.append(f"line={int(line)}")
    if col:
        props.append(f"col={int(col)}")
    if title:
        props.append(f"title={_annotation_property(visible(title))}")
    body = _annotation_data(message(text))
    return f"::{level} {','.join(props)}::{body}" if props else f"::{level}::{body}"


# --- logging ----------------------------------------------------------------------------------


class LogFormatter(logging.Formatter):
    """Log lines with the record's message made :func:`message`-safe; a traceback (at -vv)
    keeps its lines but shows control characters and starts no workflow command."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = message(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return visible(super().formatException(ei), limit=None, multiline=True)

    def formatStack(self, stack_info: str) -> str:
        return visible(super().formatStack(stack_info), limit=None, multiline=True)
