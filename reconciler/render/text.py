"""The plan as text for a terminal, in the manner of Terraform: the symbols first, then the
changes grouped by customer and site, each naming the YAML line that causes it, then the
unmanaged resources in a section of their own, then one summary line."""

from __future__ import annotations

from reconciler.model import site_label
from reconciler.plan.plan import Change, Plan
from reconciler.render.common import (
    MARKERS,
    UNMANAGED_HINT,
    RenderContext,
    attribute_lines,
    change_verb,
    grouped,
    legend,
    no_changes_sentence,
    own_notes,
    powershell,
    summary_line,
)
from reconciler.safe import screen
from reconciler.words import plural

COLOURS = {"+": "32", "-": "31", "~": "33", ">": "36", "?": "2", " ": "0"}
# Above this many changes, each is one line: a reviewer needs the shape of a large plan first.
CONCISE_ABOVE = 50


def _paint(text: str, marker: str, colour: bool) -> str:
    if not colour or marker not in COLOURS:
        return text
    return f"\x1b[{COLOURS[marker]}m{text}\x1b[0m"


def render_text(plan: Plan, *, colour: bool = False, show_operations: bool = True,
                concise: bool | None = None, context: RenderContext | None = None) -> str:
    context = context or RenderContext()
    if concise is None:
        concise = len(plan.changes) > CONCISE_ABOVE
    out: list[str] = []
    if not plan.has_changes:
        out += [_paint("No changes.", "+", colour) + " " + no_changes_sentence(context), ""]
    elif plan.changes:
        out += [*legend(plan).split("\n"), ""]
    out += [_paint(f"Warning: {w}", "~", colour) for w in plan.warnings]
    out += [""] if plan.warnings else []
    for (customer, site), changes in grouped(plan.actionable):
        out.append(f"# {customer} / {site_label(site)}")
        for change in changes:
            out.extend(_change_lines(change, colour, show_operations and not concise, concise))
        out.append("")
    out += _unmanaged_section(plan, colour)
    out += [_paint(f"Refused: {refusal.message}", "-", colour) for refusal in plan.refusals]
    out += [""] if plan.refusals else []
    if plan.has_changes:
        out.append(summary_line(plan))
    # Every line quotes data (ids, names, notes, values): each is shown, never obeyed, and a
    # newline inside one cannot start a line of its own; only the colours above survive.
    return "\n".join(screen(line, multiline=False) for line in out).rstrip("\n") + "\n"


def _unmanaged_section(plan: Plan, colour: bool) -> list[str]:
    unmanaged = [c for c in plan.changes if c.action == "unmanaged"]
    if not unmanaged:
        return []
    out = [f"Unmanaged ({len(unmanaged)}). {UNMANAGED_HINT}"]
    for (customer, site), changes in grouped(unmanaged):
        for change in changes:
            name = (change.before or {}).get("name")
            line = f"  ? {customer} / {site_label(site)}: {change.type} {change.id}"
            out.append(_paint(line, "?", colour) + (f"  ({name})" if name else ""))
            out.extend(f"      # {note}" for note in own_notes(change))
    return [*out, ""]


def _change_lines(change: Change, colour: bool, show_operations: bool,
                  concise: bool) -> list[str]:
    marker = MARKERS[change.action]
    head = f"  {marker} {change.type} {change.id}"
    detail = change_verb(change)
    detail += f"  [{change.source}]" if change.source else (
        "  [declared nowhere]" if change.action == "delete" else "")
    lines = [_paint(head, marker, colour) + f"  {detail}"]
    if concise:
        return lines
    for line in attribute_lines(change):
        lines.append(_paint(f"      {line.marker} {line.text}", line.marker, colour))
    for note in own_notes(change):
        lines.append(f"      # {note}")
    if show_operations and change.operations:
        lines.append(f"      {plural(len(change.operations), 'Exchange call')}:")
        lines.extend(f"        {powershell(op)}" for op in change.operations)
    return lines
