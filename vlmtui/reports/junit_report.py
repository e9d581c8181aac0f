"""The report as JUnit XML for CI: one <testsuite> per model, each non-warm-up case once at its latest attempt.

passed → a plain <testcase>; failed → <failure>; crashed, aborted and interrupted → <error>; skipped and
not run → <skipped>. Valid against the schema Jenkins' xunit plugin checks reports with (junit-10.xsd,
jenkinsci/xunit-plugin; a copy is tests/fixtures/junit-10.xsd): ``skipped`` is counted on each <testsuite>
only (<testsuites> may not carry it), and a <testcase> may hold no <properties>, so a scored case's scores
are its suite's properties named after the case (``smol/vqa/2000:score.vqa`` = 0.6), as are a
conversation's turns (``…:turn.1.status``); the turns are also written out in the case's <system-out>.
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


def _testcase(suite: ET.Element, props: ET.Element, row: CaseRow) -> str:
    """Add one case's <testcase> (its scores and turns to the suite's ``props``); returns its child element's
    name ("" for a pass)."""
    case = ET.SubElement(suite, "testcase", classname=_x(row.model), name=_x(row.case_id), time=f"{row.time_s:.3f}")
    if row.scores.scored:
        _score_properties(props, row)
    if row.turns:
        _turn_properties(props, row)
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
    out = _turns_text(row) if row.turns else row.output
    if out:
        ET.SubElement(case, "system-out").text = _x(out)
    return element


def _property(props: ET.Element, row: CaseRow, name: str, value: str) -> None:
    """One property of a case, on its suite, named ``<case id>:<name>``."""
    ET.SubElement(props, "property", name=_x(f"{row.case_id}:{name}"), value=_x(value))


def _score_properties(props: ET.Element, row: CaseRow) -> None:
    """A scored case's properties: each metric's score (``…:score.vqa``), why one is missing, the item."""
    scores = row.scores
    for name, value in (("dataset", scores.dataset), ("item_id", scores.item_id),
                        ("answer_type", scores.answer_type), ("primary_metric", scores.primary)):
        if value:
            _property(props, row, name, value)
    for metric in scores.metrics:
        score = scores.scores.get(metric)
        _property(props, row, f"score.{metric}", "" if score is None else f"{score:g}")
    for metric, reason in scores.errors.items():
        _property(props, row, f"score_error.{metric}", excerpt(reason, 500))
    if row.judging is not None:
        _property(props, row, "judged_case_id", row.judging.case_id)


def _turn_properties(props: ET.Element, row: CaseRow) -> None:
    """A conversation's turns: each one's status and, where measured, its gen tok/s and TTFT."""
    for turn in row.turns:
        _property(props, row, f"turn.{turn.number}.status", str(turn.status))
        for name, value in (("gen_tps", turn.metrics.gen_tps), ("ttft_s", turn.metrics.ttft_s)):
            if value is not None:
                _property(props, row, f"turn.{turn.number}.{name}", f"{value:g}")


def _turns_text(row: CaseRow) -> str:
    """A conversation as the CI log shows it: each turn's status, prompt, answer and why it failed."""
    lines = []
    for turn in row.turns:
        lines.append(f"turn {turn.number} [{turn.status}] {turn.prompt}")
        if turn.output:
            lines.append(f"  answer: {turn.output}")
        if turn.why:
            lines.append(f"  why: {turn.why}")
    return "\n".join(lines)


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
            element = _testcase(suite, props, row)
            if element:
                counts[_TOTALS[element]] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{suite_time:.3f}")
        total_time += suite_time
    for key, value in totals.items():
        if key != "skipped":  # junit-10.xsd allows skipped on <testsuite> only
            root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
