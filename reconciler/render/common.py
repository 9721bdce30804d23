"""What every renderer shares: the summary sentence, grouping, attribute-level differences and
operations written the way an Exchange admin would type them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from deepdiff import DeepDiff

from reconciler.model import location_label
from reconciler.plan.plan import Change, Operation, Plan
from reconciler.safe import PLAN_LIMIT, cut, visible
from reconciler.words import plural

MARKERS = {"create": "+", "update": "~", "delete": "-", "move": ">", "unmanaged": "?"}
VERBS = {"create": "will be created", "update": "will be updated in place",
         "delete": "will be deleted", "move": "moves", "unmanaged": "is not managed"}
SYMBOLS = {"create": "create", "update": "update in place", "delete": "delete",
           "move": "move to another site (no Exchange call)",
           "unmanaged": "unmanaged: live, declared nowhere, never changed"}
UNMANAGED_HINT = ("Live, declared nowhere: reported, never changed. Import one into YAML "
                  "(reconciler import) to manage it, or set the customer's policy prune: true "
                  "to delete such mailboxes.")
UNMANAGED_NOTE_PREFIX = "declared nowhere;"


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a renderer knows beyond the plan: the ``--changed-since`` ref and how many
    resources it put in scope, and where a change's source line can be linked."""

    changed_since: str | None = None
    in_scope: int | None = None
    source_url: str | None = None  # e.g. https://github.com/o/r/blob/<sha>/; + "path#Lline"

    def link(self, source: str) -> str | None:
        """The URL of a change's ``file:line`` at the pull request's head, when known."""
        if not self.source_url:
            return None
        file, _, line = source.rpartition(":")
        return f"{self.source_url}{file}#L{line}" if file and line.isdigit() else None


def summary_line(plan: Plan) -> str:
    """Terraform's closing sentence, with moves and unmanaged resources added."""
    s = plan.summary
    return (f"Plan: {s['create']} to add, {s['update']} to change, {s['delete']} to destroy, "
            f"{s['move']} to move; {s['unmanaged']} unmanaged.")


def legend(plan: Plan) -> str:
    """The symbols a plan uses, one a line with its meaning (only those that appear)."""
    used = [a for a in MARKERS if plan.summary[a]]
    return "\n".join(["Symbols:"] + [f"  {MARKERS[a]} {SYMBOLS[a]}" for a in used])


def no_changes_sentence(context: RenderContext) -> str:
    """What "No changes." means here: with --changed-since, only what changed was planned."""
    if context.changed_since is None:
        return "The live mailboxes match the desired state."
    if not context.in_scope:
        return (f"No YAML changed since {context.changed_since}, so nothing was compared; "
                "a plan without --changed-since compares every resource.")
    return (f"The {plural(context.in_scope, 'resource')} whose YAML changed since "
            f"{context.changed_since} match live Exchange.")


def change_verb(change: Change) -> str:
    """What happens to the resource, a move's origin included."""
    if change.action == "move" and change.moved_from:
        return f"moves here from {location_label(change.moved_from)}"
    if change.moved_from:
        return f"{VERBS[change.action]} (moved from {location_label(change.moved_from)})"
    return VERBS[change.action]


def own_notes(change: Change) -> list[str]:
    """A change's notes, less the standard one an unmanaged change carries (the closing
    section says it once)."""
    return [n for n in change.notes if not (change.action == "unmanaged"
                                            and n.startswith(UNMANAGED_NOTE_PREFIX))]


def grouped(changes: list[Change]) -> Iterator[tuple[tuple[str, str], list[Change]]]:
    """Changes grouped by (customer, site), in address order."""
    ordered = sorted(changes, key=lambda c: (c.customer, c.site, c.address))
    for key, items in groupby(ordered, key=lambda c: (c.customer, c.site)):
        yield key, list(items)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of an attribute-level difference: ``+`` added, ``-`` removed, ``~`` changed."""

    marker: str
    text: str


def value_text(value: Any) -> str:
    """A setting's value as a reviewer reads it: no JSON ``null``, strings unquoted unless
    quotes are needed to see them (empty, or spaces at an end)."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        value = cut(value, PLAN_LIMIT)  # a reviewer reads a long value's start and its length
        plain = value and value == value.strip() and "\n" not in value and value != "(unset)"
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v) for v in value) if value else "(none)"
    return str(value)


def _grant_text(attributes: Mapping[str, Any]) -> str:
    return "; ".join(f"{k} {value_text(v)}" for k, v in sorted(attributes.items()))


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    if all(isinstance(i, Mapping) and "user" in i for i in items):
        return {i["user"]: {k: v for k, v in i.items() if k != "user"} for i in items}
    return None


def _whole_lines(marker: str, key: str, value: Any) -> list[Line]:
    """A setting shown whole (a created, deleted or unmanaged resource): lists and mappings one
    item per line, so that a reviewer sees each grant and member on its own line."""
    if isinstance(value, list) and value:
        keyed = _keyed(value)
        items = ([f"{user}: {_grant_text(attrs)}" for user, attrs in sorted(keyed.items())]
                 if keyed is not None else [value_text(v) for v in value])
        return [Line(marker, f"{key}:")] + [Line(marker, f"  {item}") for item in items]
    if isinstance(value, Mapping) and value:
        return [Line(marker, f"{key}:")] + [Line(marker, f"  {k}: {value_text(v)}")
                                            for k, v in value.items()]
    return [Line(marker, f"{key}: {value_text(value)}")]


def _list_lines(key: str, old: list[Any], new: list[Any]) -> list[Line]:
    lines = [Line("~", f"{key}:")]
    old_k, new_k = _keyed(old), _keyed(new)
    if (old_k is not None or not old) and (new_k is not None or not new):
        old_k, new_k = old_k or {}, new_k or {}
        for user in sorted(set(old_k) | set(new_k)):
            if user not in old_k:
                lines.append(Line("+", f"  {user}: {_grant_text(new_k[user])}"))
            elif user not in new_k:
                lines.append(Line("-", f"  {user}: {_grant_text(old_k[user])}"))
            elif old_k[user] != new_k[user]:
                lines.append(Line("~", f"  {user}: {_grant_text(old_k[user])} -> "
                                       f"{_grant_text(new_k[user])}"))
        return lines
    old_t, new_t = {value_text(v) for v in old}, {value_text(v) for v in new}
    lines += [Line("+", f"  {item}") for item in sorted(new_t - old_t)]
    lines += [Line("-", f"  {item}") for item in sorted(old_t - new_t)]
    return lines


def _mapping_lines(key: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Line]:
    # A list inside a setting (a room's booking delegates) is a set: each item added or gone.
    lists = sorted(k for k in {*old, *new}
                   if isinstance(old.get(k), list) or isinstance(new.get(k), list))
    diff = DeepDiff({k: v for k, v in old.items() if k not in lists},
                    {k: v for k, v in new.items() if k not in lists}, verbose_level=2)
    lines = [Line("~", f"{key}:")]
    for path, delta in sorted({**diff.get("values_changed", {}),
                               **diff.get("type_changes", {})}.items()):
        lines.append(Line("~", f"  {_path(path)}: {value_text(delta['old_value'])} -> "
                               f"{value_text(delta['new_value'])}"))
    for path, value in sorted(diff.get("dictionary_item_added", {}).items()):
        lines.append(Line("+", f"  {_path(path)}: {value_text(value)}"))
    for path, value in sorted(diff.get("dictionary_item_removed", {}).items()):
        lines.append(Line("-", f"  {_path(path)}: {value_text(value)}"))
    for name in lists:
        had = {value_text(v) for v in old.get(name) or ()}
        has = {value_text(v) for v in new.get(name) or ()}
        lines += [Line("+", f"  {name}: {item}") for item in sorted(has - had)]
        lines += [Line("-", f"  {name}: {item}") for item in sorted(had - has)]
    return lines


def _safe_lines(lines: list[Line]) -> list[Line]:
    """Values, keys and principals are data: shown, never obeyed (controls as ``\\x1b``),
    and a line cut when absurdly long."""
    return [Line(line.marker, visible(line.text, limit=2 * PLAN_LIMIT)) for line in lines]


def attribute_lines(change: Change) -> list[Line]:
    """The attribute-level difference of a change, setting by setting, safe to print."""
    return _safe_lines(_attribute_lines(change))


def _attribute_lines(change: Change) -> list[Line]:
    before, after = change.before or {}, change.after or {}
    if change.action in ("create", "delete", "unmanaged"):
        marker = "+" if change.action == "create" else "-" if change.action == "delete" else " "
        whole = after if change.action == "create" else before
        return [line for key, value in whole.items() for line in _whole_lines(marker, key, value)]
    lines: list[Line] = []
    for key in change.changed_keys:
        old, new = before.get(key), after.get(key)
        if (isinstance(old, list | type(None)) and isinstance(new, list)) or (
                isinstance(old, list) and new is None):
            lines += _list_lines(key, old or [], new or [])
        elif isinstance(old, Mapping) and isinstance(new, Mapping):
            lines += _mapping_lines(key, old, new)
        else:
            lines.append(Line("~", f"{key}: {value_text(old)} -> {value_text(new)}"))
    return lines


def _path(deepdiff_path: str) -> str:
    return deepdiff_path.removeprefix("root").replace("['", ".").replace("']", "").lstrip(".")


def _ps_value(value: Any) -> str:
    if value is True:
        return "$true"
    if value is False:
        return "$false"
    if value is None:
        return "$null"
    if isinstance(value, Mapping):
        parts = [f"{k}=" + ",".join(_ps_value(x) for x in v)
                 for k, v in value.items() if not k.startswith("@")]
        return "@{" + "; ".join(parts) + "}"
    if isinstance(value, list):
        return ",".join(_ps_value(v) for v in value)
    if isinstance(value, int):
        return str(value)
    text = cut(str(value), PLAN_LIMIT)
    return "'" + text.replace("'", "''") + "'"


def powershell(op: Operation) -> str:
    """An operation as the PowerShell line an Exchange admin would recognise, every control
    character in it shown (a message's escape sequences must not redraw the terminal)."""
    parts = [op.cmdlet]
    for name, value in op.parameters.items():
        if value is True and name not in ("AutoMapping", "DeliverToMailboxAndForward"):
            parts.append(f"-{name}")
        elif isinstance(value, bool):
            parts.append(f"-{name}:{_ps_value(value)}")
        else:
            parts.append(f"-{name} {_ps_value(value)}")
    return visible(" ".join(parts), limit=None)
