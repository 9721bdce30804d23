"""The plan as text for a terminal, in the manner of Terraform."""

from __future__ import annotations

from reconciler.plan.plan import Change, Plan
from reconciler.render.common import (
    MARKERS,
    VERBS,
    attribute_lines,
    grouped,
    powershell,
    summary_line,
)

COLOURS = {"+": "32", "-": "31", "~": "33", ">": "36", "?": "2", " ": "0"}
# Above this many changes, each is one line: a reviewer needs the shape of a large plan first.
CONCISE_ABOVE = 50


def _paint(text: str, marker: str, colour: bool) -> str:
    if not colour or marker not in COLOURS:
        return text
    return f"\x1b[{COLOURS[marker]}m{text}\x1b[0m"


def render_text(plan: Plan, *, colour: bool = False, show_operations: bool = True,
                concise: bool | None = None) -> str:
    out: list[str] = []
    if concise is None:
        concise = len(plan.changes) > CONCISE_ABOVE
    if not plan.has_changes:
        out.append(_paint("No changes.", "+", colour)
                   + " The live mailboxes match the desired state.")
        out.append("")
    for warning in plan.warnings:
        out.append(_paint(f"Warning: {warning}", "~", colour))
    if plan.warnings:
        out.append("")
    for (customer, site), changes in grouped(plan.changes):
        out.append(f"# {customer} / {'(customer level)' if site == '-' else site}")
        for change in changes:
            out.extend(_change_lines(change, colour, show_operations and not concise, concise))
        out.append("")
    for refusal in plan.refusals:
        out.append(_paint(f"Refused: {refusal.message}", "-", colour))
    if plan.refusals:
        out.append("")
    out.append(summary_line(plan))
    return "\n".join(out) + "\n"


def _change_lines(change: Change, colour: bool, show_operations: bool,
                  concise: bool) -> list[str]:
    marker = MARKERS[change.action]
    head = f"  {marker} {change.type} {change.id}"
    detail = VERBS[change.action]
    if change.moved_from:
        detail += f" (moved from {change.moved_from})"
    lines = [_paint(head, marker, colour) + f"  {detail}"]
    if concise:
        return lines
    for line in attribute_lines(change):
        lines.append(_paint(f"      {line.marker} {line.text}", line.marker, colour))
    for note in change.notes:
        lines.append(f"      # {note}")
    if show_operations and change.operations:
        lines.append(f"      {len(change.operations)} Exchange call(s):")
        lines.extend(f"        {powershell(op)}" for op in change.operations)
    return lines
