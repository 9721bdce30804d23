"""A drift report as one self-contained HTML page for people.

Everything is inline (CSS, an SVG chart); no script, no external resource, and a
Content-Security-Policy that forbids both, so the page can be mailed, attached to a CI run or
opened from disk. Every piece of text from the tenant or the YAML is HTML-escaped: a display
name like ``<script>`` is shown, never run.

Layout: the summary per customer and site at the top (a table and a stacked bar chart), then
each drifted resource, grouped by customer and site, with its attribute-level difference.
"""

from __future__ import annotations

from html import escape

from reconciler.drift.render import drift_lines
from reconciler.drift.report import (
    ADVICE,
    CHANGED_OUTSIDE_GIT,
    CLASSES,
    EXPLANATIONS,
    LABELS,
    NOT_YET_APPLIED,
    PENDING_PROPAGATION,
    SECURITY_FINDING,
    UNMANAGED,
    DriftItem,
    DriftReport,
)
from reconciler.model import location_label, site_label

COLOURS = {
    CHANGED_OUTSIDE_GIT: "#c0392b",
    NOT_YET_APPLIED: "#2e6fba",
    PENDING_PROPAGATION: "#b7950b",
    UNMANAGED: "#7f8c8d",
    SECURITY_FINDING: "#8e44ad",
}
LINE_CLASSES = {"+": "add", "-": "del", "~": "chg", " ": "ctx"}

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2329;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px}
h3{font-size:1.05em;margin:18px 0 6px}
.lead{margin:0 0 16px;font-size:1.05em}
table{border-collapse:collapse;background:#fff;margin:8px 0}
th,td{border:1px solid #d5d9de;padding:4px 10px;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
tfoot td{font-weight:600}
.badge{display:inline-block;border-radius:3px;padding:0 6px;color:#fff;font-size:.85em;
margin-right:6px}
.legend span{margin-right:14px;white-space:nowrap}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;
vertical-align:-1px}
details{background:#fff;border:1px solid #d5d9de;border-radius:4px;margin:6px 0;padding:6px 10px}
summary{cursor:pointer}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{margin:8px 0 2px;padding:8px;background:#f3f4f6;overflow-x:auto}
.add{color:#1e7e34}.del{color:#b02a37}.chg{color:#8a6d00}.ctx{color:#444}
.note{color:#555;margin:2px 0}
.warn{background:#fff8e1;border-left:4px solid #b7950b;padding:6px 10px;margin:6px 0}
.clean{background:#e8f5e9;border-left:4px solid #1e7e34;padding:8px 12px}
svg text{font:12px system-ui,sans-serif;fill:#1d2329}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _site_name(site: str) -> str:
    return site_label(site)


def render_html(report: DriftReport, *, title: str = "Drift report",
                made_at: str | None = None) -> str:
    """The report as one self-contained page; ``made_at`` (ISO-8601 UTC) says when."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # No script and nothing fetched: only inline styles and inline images may load.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'; img-src data:">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="lead">{_e(report.summary_line())}</p>',
        *([f'<p class="note">Made at {_e(made_at)}.</p>'] if made_at else []),
        _legend(),
    ]
    parts += _records(report)
    parts += [f'<div class="warn">{_e(w)}</div>' for w in report.warnings]
    parts.append('<h2 id="summary">Summary per customer and site</h2>')
    parts.append(_summary_table(report))
    parts.append(_chart(report))
    if not report.items:
        parts.append('<p class="clean">No drift: the live mailboxes match the desired '
                     "state.</p>")
    else:
        parts.append('<h2 id="differences">Differences</h2>')
        parts.append('<p class="note">Changed outside git: <code class="add">+</code> added '
                     'outside git, <code class="del">-</code> removed outside git. Otherwise '
                     'each difference reads live &rarr; YAML: <code class="del">-</code> only '
                     'live, <code class="add">+</code> only in YAML, <code class="chg">a -&gt; '
                     'b</code> live value, then YAML value.</p>')
        for (customer, site), items in report.by_site():
            parts.append(f"<h3>{_e(customer)} / {_e(_site_name(site))}</h3>")
            parts += [_item(item) for item in items]
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _badge(drift_class: str) -> str:
    return (f'<span class="badge" style="background:{COLOURS[drift_class]}">'
            f"{_e(LABELS[drift_class])}</span>")


def _legend() -> str:
    spans = "".join(
        f'<span><i class="swatch" style="background:{COLOURS[c]}"></i>'
        f"<b>{_e(LABELS[c])}</b>: {_e(EXPLANATIONS[c])}. What to do: {_e(ADVICE[c])}.</span>"
        for c in CLASSES)
    return f'<p class="legend">{spans}</p>'


def _records(report: DriftReport) -> list[str]:
    out = []
    for cid in sorted(report.records):
        record = report.records[cid]
        if record.commit:
            out.append(f'<p class="note">Last applied for <b>{_e(cid)}</b>: '
                       f"<code>{_e(record.ref)}</code> at <code>{_e(record.commit[:12])}</code>"
                       f"</p>")
    return out


def _summary_table(report: DriftReport) -> str:
    head = "".join(f"<th>{_e(LABELS[c])}</th>" for c in CLASSES)
    rows = []
    totals = dict.fromkeys(CLASSES, 0)
    for row in report.site_summary():
        cells = "".join(f"<td>{row[c]}</td>" for c in CLASSES)
        rows.append(f"<tr><td>{_e(row['customer'])}</td><td>{_e(_site_name(row['site']))}</td>"
                    f"{cells}</tr>")
        for c in CLASSES:
            totals[c] += row[c]
    foot = "".join(f"<td>{totals[c]}</td>" for c in CLASSES)
    return (f"<table><thead><tr><th>customer</th><th>site</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody>"
            f"<tfoot><tr><td>total</td><td></td>{foot}</tr></tfoot></table>")


def _chart(report: DriftReport) -> str:
    """A horizontal stacked bar per customer and site: how many differences of each class."""
    rows = report.site_summary()
    label_width, bar_width, row_height, top = 220, 520, 24, 8
    biggest = max((sum(r[c] for c in CLASSES) for r in rows), default=0) or 1
    height = top * 2 + row_height * max(len(rows), 1)
    width = label_width + bar_width + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="Differences per customer and site, by class">']
    for i, row in enumerate(rows):
        y = top + i * row_height
        label = f"{row['customer']} / {_site_name(row['site'])}"
        out.append(f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end">'
                   f"{_e(label)}</text>")
        x = float(label_width)
        total = 0
        for c in CLASSES:
            count = row[c]
            if not count:
                continue
            w = bar_width * count / biggest
            out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_height - 6}" '
                       f'fill="{COLOURS[c]}"><title>{_e(label)}: {count} '
                       f"{_e(LABELS[c])}</title></rect>")
            x += w
            total += count
        out.append(f'<text x="{x + 6:.1f}" y="{y + 16}">{total}</text>')
    out.append("</svg>")
    return "".join(out)


def _item(item: DriftItem) -> str:
    change = item.change
    head = f"{_badge(item.drift_class)}<code>{_e(change.type)} {_e(change.id)}</code>"
    if change.moved_from:
        where = _e(location_label(change.moved_from))
        head += f" <span class=\"note\">(located at {where} live)</span>"
    lines = "\n".join(
        f'<span class="{LINE_CLASSES.get(line.marker, "ctx")}">{_e(line.marker)} '
        f"{_e(line.text)}</span>" for line in drift_lines(item))
    body = [f"<pre>{lines}</pre>"] if lines else []
    body += [f'<p class="note">{_e(note)}</p>' for note in change.notes]
    if change.source:
        body.append(f'<p class="note">Declared at <code>{_e(change.source)}</code></p>')
    return f"<details open><summary>{head}</summary>{''.join(body)}</details>"
