"""The report as GitHub-flavoured Markdown: headings, the report's tables, machine and sessions as a list."""

from __future__ import annotations

from vlmtui.reports import tables
from vlmtui.reports.model import Report
from vlmtui.reports.table import md_cell, to_markdown
from vlmtui.text import clean, plural
from vlmtui.units import format_bytes
from vlmtui.vocab import counts_text


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown."""
    out: list[str] = [f"# vlmtui report: {md_cell(report.suite, 200)}", ""]
    counts = report.counts()
    out.append(f"Log `{clean(report.log_path)}` · {len(report.sessions)} session(s) · "
               f"{plural(sum(counts.values()), 'case')}: {counts_text(counts)}")
    if report.bad_lines:
        out += ["", f"**{report.bad_lines} unreadable line(s) in the log were skipped.**"]
    if report.scored:
        out += ["", "## Leaderboard", "", tables.LEADERBOARD_NOTE, "", *to_markdown(tables.leaderboard_table(report))]
    out += ["", "## Per-model summary", "", *to_markdown(tables.summary_table(report))]
    if report.repeats:
        out += ["", "## Repeats", "", tables.REPEATS_NOTE, "", *to_markdown(tables.repeats_table(report))]
    out += ["", "## Cases", "", *to_markdown(tables.cases_table(report))]
    if report.conversations:
        out += ["", "## Conversations", "", tables.TURNS_NOTE, "", *to_markdown(tables.turns_table(report))]
    out += ["", "## Guard events", ""]
    out += to_markdown(tables.guard_table(report)) if report.guard_actions else [tables.NO_GUARD_EVENTS]
    out += ["", "## Machine and versions", ""]
    for key, value in report.machine.items():
        out.append(f"- {md_cell(str(key))}: {md_cell(str(value), 200)}")
    source = f" ({md_cell(report.budget_source)})" if report.budget_source else ""
    out.append(f"- budget: {format_bytes(report.budget_bytes)}{source}; {tables.thresholds_text(report)}")
    for session in report.sessions:
        out.append(f"- {md_cell(tables.session_line(session), 300)}")
    if report.loads:
        out += ["", *to_markdown(tables.loads_table(report))]
    return "\n".join(out) + "\n"
