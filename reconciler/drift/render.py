"""A drift report as text for a terminal, and as Markdown for an issue.

The attribute-level difference of each item is the plan's own (render/common.attribute_lines):
``-`` is live only, ``+`` is YAML only, ``a -> b`` is live -> YAML.
"""

from __future__ import annotations

from reconciler.drift.report import (
    CHANGED_OUTSIDE_GIT,
    CLASSES,
    EXPLANATIONS,
    LABELS,
    DriftItem,
    DriftReport,
)
from reconciler.model import location_label, site_label
from reconciler.render.common import Line, attribute_lines
from reconciler.render.markdown import BUDGET, inline
from reconciler.safe import PLAN_LIMIT, message, visible
from reconciler.words import plural

LEGEND = ("Changed outside git: '+' added outside git, '-' removed outside git. Otherwise "
          "each difference reads live -> YAML: '-' only live, '+' only in YAML.")
OUTSIDE = {"-": ("+", "added outside git"), "+": ("-", "removed outside git")}


def drift_lines(item: DriftItem) -> list[Line]:
    """The item's attribute-level difference. Changed outside git, it reads as what happened
    in Exchange: a grant someone added in the portal is '+ ... (added outside git)', not a
    red '-' that reads as removed."""
    lines = attribute_lines(item.change)
    if item.drift_class != CHANGED_OUTSIDE_GIT or item.change.action != "update":
        return lines
    out = []
    for line in lines:
        marker, what = OUTSIDE.get(line.marker, (line.marker, ""))
        out.append(Line(marker, f"{line.text}  ({what})" if what and line.text.startswith(" ")
                        else line.text))
    return out


def _site(site: str) -> str:
    return visible(site_label(site))


def _head(item: DriftItem) -> str:
    change = item.change
    text = f"{visible(change.type)} {visible(change.id)}"
    if change.moved_from:
        text += f" (located at {visible(change.moved_from)} live)"
    return text


def render_text(report: DriftReport) -> str:
    out: list[str] = [report.summary_line(), ""]
    for warning in report.warnings:
        out.append(f"Warning: {message(warning)}")
    if report.warnings:
        out.append("")
    for cid in sorted(report.records):
        record = report.records[cid]
        if record.commit:
            out.append(f"Last applied ({visible(cid)}): {visible(record.ref)} at "
                       f"{visible(record.commit[:12])}")
    if any(r.commit for r in report.records.values()):
        out.append("")
    if report.items:
        out += [LEGEND, ""]
    for (customer, site), items in report.by_site():
        out.append(f"# {visible(customer)} / {_site(site)}")
        for item in items:
            out.append(f"  [{LABELS[item.drift_class]}] {_head(item)}")
            out.extend(f"      {line.marker} {line.text}"
                       for line in drift_lines(item))
            out.extend(f"      # {visible(note, limit=PLAN_LIMIT)}"
                       for note in item.change.notes)
            if item.change.source:
                out.append(f"      # declared at {visible(item.change.source)}")
        out.append("")
    if report.items:
        out.append(report.summary_line())
    return "\n".join(out).rstrip("\n") + "\n"


def render_markdown(report: DriftReport, *, title: str = "Drift report",
                    limit: int = BUDGET) -> str:
    """Markdown for an issue body: a table per customer and site, then each item collapsed;
    kept under GitHub's size limit by summarising the tail."""
    head = [f"### {title}", "", report.summary_line(), ""]
    head += ["| customer | site | " + " | ".join(LABELS[c] for c in CLASSES) + " |",
             "|---|---|" + "---:|" * len(CLASSES)]
    for row in report.site_summary():
        head.append(f"| {inline(row['customer'], cell=True)} | "
                    f"{inline(row['site'], cell=True)} | "
                    + " | ".join(str(row[c]) for c in CLASSES) + " |")
    head.append("")
    head += [f"- **{LABELS[c]}**: {EXPLANATIONS[c]}" for c in CLASSES]
    head.append("")
    for cid in sorted(report.records):
        record = report.records[cid]
        if record.commit:
            head.append(f"Last applied for `{_code(cid)}`: `{_code(record.ref)}` at "
                        f"`{_code(record.commit[:12])}`")
    head += [f"> :warning: {inline(message(w))}" for w in report.warnings]
    head.append("")
    text = "\n".join(head)
    shown = 0
    for item in report.items:
        section = _section(item)
        if len(text) + len(section) > limit - 300:
            break
        text += section
        shown += 1
    if shown < len(report.items):
        text += (f"\n\n**{plural(len(report.items) - shown, 'more difference')} not shown** "
                 f"to stay within the size limit; run `reconciler drift --format json` for all.\n")
    return text + "\n"


def _code(text: str) -> str:
    """Data inside a Markdown code span, which shows entities as typed: no backtick to end it."""
    return visible(text).replace("`", "'")


def _section(item: DriftItem) -> str:
    change = item.change
    summary = (f"<code>{inline(change.address)}</code> "
               f"<b>{LABELS[item.drift_class]}</b>")
    body = [f"{line.marker} {line.text}" for line in drift_lines(item)]
    body += [f"# {visible(note, limit=PLAN_LIMIT)}" for note in change.notes]
    if change.moved_from:
        body.append(f"# located at {visible(location_label(change.moved_from))} live")
    out = [f"\n<details><summary>{summary}</summary>\n", "```diff"]
    out += [line.replace("```", "'''") for line in body]
    out += ["```", "</details>"]
    return "\n".join(out)
