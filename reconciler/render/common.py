"""What every renderer shares: the summary sentence, grouping, attribute-level differences and
operations written the way an Exchange admin would type them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from deepdiff import DeepDiff

from reconciler.plan.plan import Change, Operation, Plan

MARKERS = {"create": "+", "update": "~", "delete": "-", "move": ">", "unmanaged": "?"}
VERBS = {"create": "will be created", "update": "will be updated in place",
         "delete": "will be deleted", "move": "moves", "unmanaged": "is not managed"}


def summary_line(plan: Plan) -> str:
    """Terraform's closing sentence, with moves and unmanaged resources added."""
    s = plan.summary
    return (f"Plan: {s['create']} to add, {s['update']} to change, {s['delete']} to destroy, "
            f"{s['move']} to move; {s['unmanaged']} unmanaged.")


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


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    if all(isinstance(i, Mapping) and "user" in i for i in items):
        return {i["user"]: {k: v for k, v in i.items() if k != "user"} for i in items}
    return None


def attribute_lines(change: Change) -> list[Line]:
    """The attribute-level difference of a change, setting by setting."""
    before, after = change.before or {}, change.after or {}
    lines: list[Line] = []
    if change.action in ("create", "delete", "unmanaged"):
        marker = "+" if change.action == "create" else "-" if change.action == "delete" else " "
        for key, value in (after if change.action == "create" else before).items():
            lines.append(Line(marker, f"{key} = {_fmt(value)}"))
        return lines
    for key in change.changed_keys:
        old, new = before.get(key), after.get(key)
        if isinstance(old, list) and isinstance(new, list):
            old_k, new_k = _keyed(old), _keyed(new)
            if (old_k is not None and new_k is not None) or (not old and new_k) or (
                    not new and old_k):
                old_k, new_k = old_k or {}, new_k or {}
                lines.append(Line("~", f"{key}:"))
                for user in sorted(set(old_k) | set(new_k)):
                    if user not in old_k:
                        lines.append(Line("+", f"  {user} {_fmt(new_k[user])}"))
                    elif user not in new_k:
                        lines.append(Line("-", f"  {user} {_fmt(old_k[user])}"))
                    elif old_k[user] != new_k[user]:
                        lines.append(Line("~", f"  {user} {_fmt(old_k[user])} -> "
                                               f"{_fmt(new_k[user])}"))
                continue
            lines.append(Line("~", f"{key}:"))
            for item in sorted(set(map(_fmt, new)) - set(map(_fmt, old))):
                lines.append(Line("+", f"  {item}"))
            for item in sorted(set(map(_fmt, old)) - set(map(_fmt, new))):
                lines.append(Line("-", f"  {item}"))
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            diff = DeepDiff(old, new, verbose_level=2)
            lines.append(Line("~", f"{key}:"))
            for path, delta in sorted(diff.get("values_changed", {}).items()):
                lines.append(Line("~", f"  {_path(path)}: {_fmt(delta['old_value'])} -> "
                                       f"{_fmt(delta['new_value'])}"))
            for path, value in sorted(diff.get("dictionary_item_added", {}).items()):
                lines.append(Line("+", f"  {_path(path)}: {_fmt(value)}"))
            for path, value in sorted(diff.get("dictionary_item_removed", {}).items()):
                lines.append(Line("-", f"  {_path(path)}: {_fmt(value)}"))
            # A list inside a setting (a room's booking delegates): each item added or gone.
            for kind, marker in (("iterable_item_added", "+"), ("iterable_item_removed", "-")):
                for path, value in sorted(diff.get(kind, {}).items()):
                    lines.append(Line(marker, f"  {_path(path).rsplit('[', 1)[0]}: "
                                              f"{_fmt(value)}"))
            for path, delta in sorted(diff.get("type_changes", {}).items()):
                lines.append(Line("~", f"  {_path(path)}: {_fmt(delta['old_value'])} -> "
                                       f"{_fmt(delta['new_value'])}"))
            continue
        lines.append(Line("~", f"{key}: {_fmt(old)} -> {_fmt(new)}"))
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
    text = str(value)
    return "'" + text.replace("'", "''") + "'"


def powershell(op: Operation) -> str:
    """An operation as the PowerShell line an Exchange admin would recognise."""
    parts = [op.cmdlet]
    for name, value in op.parameters.items():
        if value is True and name not in ("AutoMapping", "DeliverToMailboxAndForward"):
            parts.append(f"-{name}")
        elif isinstance(value, bool):
            parts.append(f"-{name}:{_ps_value(value)}")
        else:
            parts.append(f"-{name} {_ps_value(value)}")
    return " ".join(parts)
