"""Reports of a session log: Markdown, one self-contained HTML file, JSON and JUnit XML.

Every format renders the same ``Report`` (``model.build_report``): each planned case once, at its latest
attempt. Model output and errors are untrusted text: cut to one line for tables and escaped for the
format they land in. Library code returns text; the CLI prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vlmtui.reports.html_report import render_html
from vlmtui.reports.json_report import render_json
from vlmtui.reports.junit_report import render_junit
from vlmtui.reports.md_report import render_markdown
from vlmtui.reports.model import Report, build_report
from vlmtui.reports.records import LogError, SessionRecords, load_log

FORMATS = ("md", "html", "json", "junit")
_RENDERERS: dict[str, Callable[[Report], str]] = {
    "md": render_markdown, "html": render_html, "json": render_json, "junit": render_junit,
}


class ReportError(LogError):
    """A report that cannot be written (bad format, unwritable file); ``str()`` is one line."""


def render_report(data: SessionRecords, fmt: str) -> str:
    """The report of a loaded log in ``fmt`` (md, html, json or junit)."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ReportError(f"unknown report format {fmt!r} (use one of {', '.join(FORMATS)})")
    return renderer(build_report(data))


def write_report(log: str | Path, fmt: str, output: str | Path) -> Path:
    """Read the log and write its report to the file ``output``; returns the file's path."""
    text = render_report(load_log(log), fmt)
    path = Path(output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    return path
