"""The plan as Markdown for a pull-request comment: a one-line summary first, a table per
customer and site, then each change in a collapsible section under its customer and site
(destructive ones open), each linking to the YAML line that causes it, and the unmanaged
resources in one closing section. Kept under GitHub's comment limit by summarising the tail."""

from __future__ import annotations

import html

from reconciler.model import site_label
from reconciler.plan.plan import Change, Plan
from reconciler.plan.tenant_rules import is_destructive as counted_as_destructive
from reconciler.render.common import (
    MARKERS,
    SYMBOLS,
    UNMANAGED_HINT,
    RenderContext,
    attribute_lines,
    change_verb,
    grouped,
    no_changes_sentence,
    own_notes,
    powershell,
    summary_line,
)
from reconciler.safe import PLAN_LIMIT, message, visible
from reconciler.words import plural

GITHUB_COMMENT_LIMIT = 65_536
# Headroom for the truncation notice and a sticky-comment marker a workflow may add.
BUDGET = GITHUB_COMMENT_LIMIT - 2_000
# Calls that lose data or take access away: a reviewer must see them without a click.
DESTRUCTIVE_CMDLETS = frozenset({
    "Remove-Mailbox", "Disable-Mailbox", "Remove-DistributionGroup", "Remove-MailboxPermission",
    "Remove-RecipientPermission", "Remove-MailboxFolderPermission",
    "Remove-DistributionGroupMember"})
UNMANAGED_ROWS = 200


def inline(text: str, *, cell: bool = False) -> str:
    """Data inside Markdown prose, HTML or a table cell (``cell``): controls shown, long
    values cut, no HTML, and in a cell no column break."""
    escaped = html.escape(visible(text), quote=False)
    return escaped.replace("|", "\\|") if cell else escaped


def is_destructive(change: Change) -> bool:
    """What the safety limits count as destructive, and what takes access away or converts a
    mailbox: shown open."""
    return counted_as_destructive(change) or any(
        op.cmdlet in DESTRUCTIVE_CMDLETS or (op.cmdlet == "Set-Mailbox" and "Type" in op.parameters)
        for op in change.operations)


def render_markdown(plan: Plan, *, title: str = "Reconciler plan", limit: int = BUDGET,
                    context: RenderContext | None = None) -> str:
    context = context or RenderContext()
    text = "\n".join(_head(plan, title, context))
    closing = [*_unmanaged_section(plan), "", f"Plan checksum: `{plan.checksum}`", ""]
    budget = limit - len("\n".join(closing)) - 300
    shown = 0
    for (customer, site), changes in grouped(plan.actionable):
        heading = f"\n\n#### {inline(customer)} / {inline(site_label(site))}\n"
        for i, change in enumerate(changes):
            section = (heading if i == 0 else "") + _section(change, context)
            if len(text) + len(section) > budget:
                break
            text += section
            shown += 1
        else:
            continue
        break
    if shown < len(plan.actionable):
        rest = plan.actionable[shown:]
        text += (f"\n\n**{plural(len(rest), 'more change')} not shown** to stay within the "
                 f"comment limit ({_counts(rest)}); the full plan is in the plan file.\n")
    return text + "\n".join(["", "", *closing])


def _head(plan: Plan, title: str, context: RenderContext) -> list[str]:
    if plan.has_changes:
        first = f"**{summary_line(plan)}**"
        destructive = sum(1 for c in plan.actionable if is_destructive(c))
        if destructive:
            first += f" :warning: {plural(destructive, 'destructive change')}, shown open below."
    else:
        first = f"**No changes.** {no_changes_sentence(context)}"
    head = [f"### {title}", "", first, ""]
    head += [f"> :no_entry: **Refused:** {inline(message(refusal.message))}"
             for refusal in plan.refusals]
    head += [f"> :warning: {inline(message(warning))}" for warning in plan.warnings]
    if plan.refusals or plan.warnings:
        head.append("")
    if not plan.has_changes:
        return head
    used = [a for a in MARKERS if plan.summary[a]]
    head += ["Symbols: " + " · ".join(f"`{MARKERS[a]}` {SYMBOLS[a]}" for a in used), ""]
    head += ["| customer | site | add | change | destroy | move | unmanaged |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (customer, site), changes in grouped(plan.changes):
        counts = {a: sum(1 for c in changes if c.action == a) for a in MARKERS}
        head.append(f"| {_cell(customer)} | {_cell(site_label(site))} | {counts['create']} | "
                    f"{counts['update']} | {counts['delete']} | {counts['move']} | "
                    f"{counts['unmanaged']} |")
    s = plan.summary
    head.append(f"| **total** | | **{s['create']}** | **{s['update']}** | **{s['delete']}** | "
                f"**{s['move']}** | **{s['unmanaged']}** |")
    return head


def _unmanaged_section(plan: Plan) -> list[str]:
    unmanaged = [c for c in plan.changes if c.action == "unmanaged"]
    if not unmanaged:
        return []
    notes = any(own_notes(c) for c in unmanaged)
    out = ["", f"#### Unmanaged ({len(unmanaged)})", "", UNMANAGED_HINT, "",
           "| customer | site | type | address | name |" + (" note |" if notes else ""),
           "|---|---|---|---|---|" + ("---|" if notes else "")]
    for change in unmanaged[:UNMANAGED_ROWS]:
        name = (change.before or {}).get("name") or ""
        note = f" {_cell('; '.join(own_notes(change)))} |" if notes else ""
        out.append(f"| {_cell(change.customer)} | {_cell(site_label(change.site))} | "
                   f"{_cell(change.type)} | `{_code(change.id)}` | {_cell(str(name))} |{note}")
    if len(unmanaged) > UNMANAGED_ROWS:
        out += ["", f"…and {len(unmanaged) - UNMANAGED_ROWS} more, in the plan file."]
    return out


def _cell(text: str) -> str:
    return inline(text, cell=True)


def _code(text: str) -> str:
    """Data in a code span inside a table cell: shown as typed, no backtick or pipe to end it."""
    return visible(text).replace("`", "'").replace("|", "\\|")


def _counts(changes: list[Change]) -> str:
    parts = []
    for action in MARKERS:
        n = sum(1 for c in changes if c.action == action)
        if n:
            parts.append(f"{n} {action}")
    return ", ".join(parts)


def _section(change: Change, context: RenderContext) -> str:
    marker = MARKERS[change.action]
    summary = (f"<code>{marker} {inline(change.type)} {inline(change.id)}</code> "
               f"{inline(change_verb(change))}")
    if change.source:
        link = context.link(change.source)
        summary += (f" · <a href=\"{html.escape(visible(link, limit=None))}\">"
                    f"{inline(change.source)}</a>" if link
                    else f" · <code>{inline(change.source)}</code>")
    body = [f"{line.marker} {line.text}" for line in attribute_lines(change)]
    body += [f"# {visible(note, limit=PLAN_LIMIT)}" for note in own_notes(change)]
    if change.action == "move" and not body:
        body = [f"# located at {visible(site_label(change.site))} now; no Exchange call is "
                "needed"]
    opened = " open" if is_destructive(change) else ""
    out = [f"\n<details{opened}><summary>{summary}</summary>\n", "```diff"]
    out += [line.replace("```", "'''") for line in body]
    out.append("```")
    if change.operations:
        out += ["", f"{plural(len(change.operations), 'Exchange call')}:", "", "```powershell"]
        out += [powershell(op).replace("```", "'''") for op in change.operations]
        out.append("```")
    out.append("</details>")
    return "\n".join(out)
