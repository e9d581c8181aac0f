"""The report as one self-contained HTML page: inline CSS and SVG, no scripts, no external assets."""

from __future__ import annotations

from vlmtui.engine.session_log import SCHEMA_VERSION
from vlmtui.reports import tables
from vlmtui.reports.chart import memory_chart_svg
from vlmtui.reports.model import Report
from vlmtui.reports.scatter import accuracy_scatter_svg
from vlmtui.reports.table import escape, to_html
from vlmtui.text import plural
from vlmtui.units import format_bytes
from vlmtui.vocab import RESULT_STATUSES, CaseStatus, counts_text

REPORT_STATUSES = (*RESULT_STATUSES, CaseStatus.NOT_RUN, CaseStatus.INTERRUPTED)
"""The statuses a report's cells can hold."""


def _status_css() -> str:
    """One rule per status, coloured as the vocabulary shows it (bold where its terminal style is)."""
    rules = []
    for status in REPORT_STATUSES:
        look = status.look
        bold = ";font-weight:bold" if "bold" in look.style.split() else ""
        rules.append(f".{status.css_class}{{color:{look.colour}{bold}}}")
    return "".join(rules)


_LAYOUT_CSS = """
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em;color:#1f2328}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:3px 7px;vertical-align:top}
th{background:#f6f8fa;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.out{font-family:ui-monospace,Menlo,monospace;font-size:12px;max-width:30em;overflow-wrap:anywhere}
.meta{color:#57606a}svg{background:#fff;border:1px solid #d0d7de}svg text{font:11px sans-serif;fill:#57606a}
"""
CSS = _LAYOUT_CSS + _status_css() + "\n"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG; no scripts, no external assets)."""
    counts = report.counts()
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>vlmtui report: {escape(report.suite)}</title><style>{CSS}</style></head><body>",
        f"<h1>vlmtui report: {escape(report.suite)}</h1>",
        f'<p class="meta">Log <code>{escape(report.log_path)}</code> · {len(report.sessions)} session(s) · '
        f"{plural(sum(counts.values()), 'case')}: {escape(counts_text(counts))}</p>",
    ]
    if report.bad_lines:
        parts.append(f"<p><strong>{report.bad_lines} unreadable line(s) in the log were skipped.</strong></p>")
    if report.scored:
        parts += ["<h2>Leaderboard</h2>", f'<p class="meta">{escape(tables.LEADERBOARD_NOTE)}</p>',
                  *to_html(tables.leaderboard_table(report)), "<h2>Accuracy against speed</h2>",
                  accuracy_scatter_svg(tables.standings(report))]
    parts += ["<h2>Per-model summary</h2>", *to_html(tables.summary_table(report))]
    if report.repeats:
        parts += ["<h2>Repeats</h2>", f'<p class="meta">{tables.REPEATS_NOTE}</p>',
                  *to_html(tables.repeats_table(report))]
    parts += ["<h2>Memory over time</h2>", memory_chart_svg(report)]
    parts += ["<h2>Cases</h2>", *to_html(tables.cases_table(report))]
    if report.conversations:
        parts += ["<h2>Conversations</h2>", f'<p class="meta">{escape(tables.TURNS_NOTE)}</p>',
                  *to_html(tables.turns_table(report))]
    parts.append("<h2>Guard events</h2>")
    parts += to_html(tables.guard_table(report)) if report.guard_actions else [f"<p>{tables.NO_GUARD_EVENTS}</p>"]
    parts.append("<h2>Machine and versions</h2><ul>")
    for key, value in report.machine.items():
        parts.append(f"<li>{escape(key)}: {escape(value)}</li>")
    source = f" ({report.budget_source})" if report.budget_source else ""
    parts.append(f"<li>budget: {escape(format_bytes(report.budget_bytes) + source)}; "
                 f"{escape(tables.thresholds_text(report))}</li>")
    for session in report.sessions:
        parts.append(f"<li>{escape(tables.session_line(session))}</li>")
    parts.append("</ul>")
    if report.loads:
        parts += to_html(tables.loads_table(report))
    parts.append(f'<p class="meta">Written by vlmtui from log schema {SCHEMA_VERSION}.</p></body></html>')
    return "\n".join(parts) + "\n"
