"""The report as JUnit XML for CI: one <testsuite> per model, each non-warm-up case once at its latest attempt.

passed → a plain <testcase>; failed → <failure>; crashed, aborted and interrupted → <error>; skipped and
not run → <skipped>. A scored case's <testcase> carries its scores as <properties> (``score.vqa`` = 0.6).
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from typing import Any

from vlmtui.reports.model import CaseRow, Report
from vlmtui.text import clean, excerpt
from vlmtui.vocab import CaseStatus

_ELEMENTS = {
    CaseStatus.PASSED: "",
    CaseStatus.FAILED: "failure",
    CaseStatus.CRASHED: "error",
    CaseStatus.ABORTED: "error",
    CaseStatus.INTERRUPTED: "error",
    CaseStatus.SKIPPED: "skipped",
    CaseStatus.NOT_RUN: "skipped",
}
"""The child element of a case's <testcase>; a status not listed (one still running) is an <error>."""
_TOTALS = {"failure": "failures", "error": "errors", "skipped": "skipped"}
# XML 1.0 allows only these characters; model output can hold anything (random weights emit \x15).
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: Any) -> str:
    """Text XML 1.0 can hold (ElementTree escapes markup but not forbidden control characters)."""
    return _XML_INVALID.sub("\ufffd", clean(str(text)))


def _failure_text(row: CaseRow) -> str:
    lines = [f"{row.status} (attempt {row.attempts}): {row.error}"]
    if row.output:
        lines.append(f"output: {row.output}")
    return "\n".join(lines)


def _testcase(suite: ET.Element, row: CaseRow) -> str:
    """Add one case's <testcase>; returns its child element's name ("" for a pass)."""
    case = ET.SubElement(suite, "testcase", classname=_x(row.model), name=_x(row.case_id), time=f"{row.time_s:.3f}")
    if row.scores.scored:
        _score_properties(case, row)
    status = str(row.status)
    message = _x(excerpt(row.error, 500)) or status
    element = _ELEMENTS.get(row.status, "error")
    if element == "failure":
        ET.SubElement(case, "failure", message=message, type=status).text = _x(_failure_text(row))
    elif element == "skipped":
        ET.SubElement(case, "skipped", message=message)
    elif element == "error" and row.status in _ELEMENTS:
        ET.SubElement(case, "error", message=message, type=status.replace(" ", "-")).text = _x(_failure_text(row))
    elif element == "error":
        ET.SubElement(case, "error", message=message, type=_x(status))
    if row.output:
        ET.SubElement(case, "system-out").text = _x(row.output)
    return element


def _score_properties(case: ET.Element, row: CaseRow) -> None:
    """A scored case's ``<properties>``: each metric's score (``score.vqa``), why one is missing, the item."""
    props = ET.SubElement(case, "properties")
    scores = row.scores
    for name, value in (("dataset", scores.dataset), ("item_id", scores.item_id),
                        ("answer_type", scores.answer_type), ("primary_metric", scores.primary)):
        if value:
            ET.SubElement(props, "property", name=name, value=_x(value))
    for metric in scores.metrics:
        score = scores.scores.get(metric)
        ET.SubElement(props, "property", name=_x(f"score.{metric}"), value="" if score is None else f"{score:g}")
    for metric, reason in scores.errors.items():
        ET.SubElement(props, "property", name=_x(f"score_error.{metric}"), value=_x(excerpt(reason, 500)))
    if row.judging is not None:
        ET.SubElement(props, "property", name="judged_case_id", value=_x(row.judging.case_id))


def render_junit(report: Report) -> str:
    """JUnit XML: one <testsuite> per model (backend, device, dtype and versions as properties)."""
    root = ET.Element("testsuites", name=_x(f"vlmtui {report.suite}"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    by_model: dict[str, list[CaseRow]] = {}
    for row in report.cases:
        if not row.warmup:
            by_model.setdefault(row.model, []).append(row)
    host = str(report.machine.get("host", ""))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(report.started_at)) if report.started_at else ""
    loads = {load.model: load for load in report.loads}
    for model, rows in by_model.items():
        suite = ET.SubElement(root, "testsuite", name=_x(model), hostname=_x(host), timestamp=stamp)
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="backend", value=_x(rows[0].backend))
        load = loads.get(model)
        if load is not None:
            for prop, text in (("device", load.device), ("dtype", load.dtype)):
                if text:
                    ET.SubElement(props, "property", name=prop, value=_x(text))
            for name, version in load.versions.items():
                ET.SubElement(props, "property", name=_x(f"version.{name}"), value=_x(version))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite_time = 0.0
        for row in rows:
            counts["tests"] += 1
            suite_time += row.time_s
            element = _testcase(suite, row)
            if element:
                counts[_TOTALS[element]] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{suite_time:.3f}")
        total_time += suite_time
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
