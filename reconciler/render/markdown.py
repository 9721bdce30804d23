"""The plan as Markdown for a pull-request comment: a summary table first, then each change in a
collapsible section, kept under GitHub's comment limit by summarising the tail."""

from __future__ import annotations

from reconciler.plan.plan import Change, Plan
from reconciler.render.common import MARKERS, VERBS, attribute_lines, grouped, powershell

GITHUB_COMMENT_LIMIT = 65_536
# Headroom for the truncation notice and a sticky-comment marker a workflow may add.
BUDGET = GITHUB_COMMENT_LIMIT - 2_000


def render_markdown(plan: Plan, *, title: str = "Reconciler plan",
                    limit: int = BUDGET) -> str:
    head: list[str] = [f"### {title}", ""]
    s = plan.summary
    if not plan.has_changes:
        head += ["**No changes.** The live mailboxes match the desired state.", ""]
    head += ["| customer | site | add | change | destroy | move | unmanaged |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (customer, site), changes in grouped(plan.changes):
        counts = {a: sum(1 for c in changes if c.action == a) for a in MARKERS}
        head.append(f"| {customer} | {site} | {counts['create']} | {counts['update']} | "
                    f"{counts['delete']} | {counts['move']} | {counts['unmanaged']} |")
    head.append(f"| **total** | | **{s['create']}** | **{s['update']}** | **{s['delete']}** | "
                f"**{s['move']}** | **{s['unmanaged']}** |")
    head.append("")
    for refusal in plan.refusals:
        head.append(f"> :no_entry: **Refused:** {refusal.message}")
    for warning in plan.warnings:
        head.append(f"> :warning: {warning}")
    if plan.refusals or plan.warnings:
        head.append("")

    # Blank lines around: GitHub renders Markdown after a closing HTML tag only past one.
    tail = ["", "", f"Plan checksum: `{plan.checksum}`", ""]
    text = "\n".join(head)
    budget = limit - len("\n".join(tail)) - 200
    shown = 0
    for change in plan.changes:
        section = _section(change)
        if len(text) + len(section) > budget:
            break
        text += section
        shown += 1
    if shown < len(plan.changes):
        rest = plan.changes[shown:]
        text += (f"\n\n**{len(rest)} more change(s) not shown** to stay within the comment "
                 f"limit ({_counts(rest)}); the full plan is in the plan file.\n")
    return text + "\n".join(tail)


def _counts(changes: list[Change]) -> str:
    parts = []
    for action in MARKERS:
        n = sum(1 for c in changes if c.action == action)
        if n:
            parts.append(f"{n} {action}")
    return ", ".join(parts)


def _section(change: Change) -> str:
    marker = MARKERS[change.action]
    summary = f"<code>{marker} {change.address}</code> {VERBS[change.action]}"
    if change.moved_from:
        summary += f" (moved from <code>{change.moved_from}</code>)"
    body = [f"{line.marker} {line.text}" for line in attribute_lines(change)]
    body += [f"# {note}" for note in change.notes]
    if change.action == "move" and not body:
        body = [f"# located at {change.site} now; no Exchange call is needed"]
    out = [f"\n<details><summary>{summary}</summary>\n", "```diff"]
    out += [line.replace("```", "'''") for line in body]
    out.append("```")
    if change.operations:
        out += ["", "```powershell"]
        out += [powershell(op).replace("```", "'''") for op in change.operations]
        out.append("```")
    out.append("</details>")
    return "\n".join(out)
